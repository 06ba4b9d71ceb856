import { testConfig } from '../../../test/support/test-config';
import { BerthConfig } from '../../config/berth-config';
import { SessionKind } from '../../sessions/session-status';
import { LABELS, sessionContainerName } from '../container-platform';
import { buildContainerOptions } from './docker-container-options';

const spec = { sessionId: '7a3c1c9e-1f0e-4a51-9d0a-3f1a6b2c9d11', kind: SessionKind.Terminal, image: 'berth/terminal:latest', env: { BERTH_SESSION_ID: 'x' } };

describe('Docker container options', () => {
  const config = testConfig({ SESSION_MEMORY_MB: '128', SESSION_CPUS: '0.25', SESSION_PIDS_LIMIT: '64', BERTH_INSTANCE: 'prod' });
  const options = buildContainerOptions('prod-terminal-x', spec, config, { BERTH_PORT: '0' });

  it('hardens every session container', () => {
    expect(options.User).toBe('1000:1000');
    expect(options.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: 128 * 1024 * 1024,
      MemorySwap: 128 * 1024 * 1024,
      NanoCpus: 250_000_000,
      PidsLimit: 64,
      Init: false,
      RestartPolicy: { Name: 'no' },
    });
    expect(Object.keys(options.HostConfig!.Tmpfs!)).toEqual(['/tmp', '/home/berth']);
    expect(options.HostConfig!.Tmpfs!['/home/berth']).toMatch(/uid=1000,gid=1000/);
    expect(options.HostConfig!.Privileged).toBeUndefined();
  });

  it('labels the container with its owner and session', () => {
    expect(options.Labels).toEqual({
      [LABELS.managedBy]: 'berth',
      [LABELS.instance]: 'prod',
      [LABELS.sessionId]: spec.sessionId,
      [LABELS.kind]: 'terminal',
    });
  });

  it('passes the session env plus the platform network env', () => {
    expect(options.Env).toEqual(['BERTH_SESSION_ID=x', 'BERTH_PORT=0']);
  });

  it('uses the configured network mode', () => {
    expect(options.HostConfig!.NetworkMode).toBe('host');
    const compose = testConfig({ DOCKER_NETWORK: 'berth_sessions' });
    expect(buildContainerOptions('n', spec, compose, {}).HostConfig!.NetworkMode).toBe('berth_sessions');
  });

  it('names containers deterministically', () => {
    expect(sessionContainerName('prod', SessionKind.Terminal, spec.sessionId)).toBe(`prod-terminal-${spec.sessionId}`);
  });
});
