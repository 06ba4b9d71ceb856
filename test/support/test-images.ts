import { execFileSync } from 'node:child_process';

/** Small images for failure-path tests, built locally from the same base as the session images. */
export const TEST_IMAGES = {
  /** Runs but never calls back: exercises the start timeout. */
  sleeper: { tag: 'berth-test/sleeper:1', dockerfile: 'FROM debian:bookworm-slim\nCMD ["sleep", "infinity"]\n' },
  /** Exits at once with a message: exercises "an image that fails to start". */
  crasher: {
    tag: 'berth-test/crasher:1',
    dockerfile: 'FROM debian:bookworm-slim\nCMD ["sh", "-c", "echo cannot open /dev/berth >&2; exit 3"]\n',
  },
} as const;

function imageExists(tag: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', tag], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function buildTestImages(): void {
  for (const { tag, dockerfile } of Object.values(TEST_IMAGES)) {
    if (imageExists(tag)) continue;
    execFileSync('docker', ['build', '--network', 'host', '-q', '-t', tag, '-'], { input: dockerfile, stdio: ['pipe', 'ignore', 'inherit'] });
  }
}

export { imageExists };
