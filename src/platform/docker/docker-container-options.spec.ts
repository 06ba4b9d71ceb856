import { testConfig } from '../../../test/support/test-config';
import { SessionKind } from '../../sessions/session-status';
import { LABELS, SessionContainerSpec, sessionContainerName } from '../container-platform';
import { buildContainerOptions } from './docker-container-options';

describe('Docker container options', () => {
  const config = testConfig({ TERMINAL_MEMORY_MB: '128', TERMINAL_CPUS: '0.25', TERMINAL_PIDS_LIMIT: '64', BERTH_INSTANCE: 'prod' });
  const spec: SessionContainerSpec = {
    sessionId: '7a3c1c9e-1f0e-4a51-9d0a-3f1a6b2c9d11',
    kind: SessionKind.Terminal,
    image: 'berth/terminal:latest',
    env: { BERTH_SESSION_ID: 'x' },
    resources: config.terminal.resources,
    stopGraceSeconds: 3,
    volumes: [],
  };
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

  it("waits the kind's stop grace for a clean shutdown", () => {
    expect(options.StopTimeout).toBe(3);
    expect(options.StopSignal).toBe('SIGTERM');
  });

  it('mounts persistent volumes; a volume on the home replaces its tmpfs', () => {
    const profile = buildContainerOptions('n', { ...spec, volumes: [{ name: 'prod-profile-a-1', mountPath: '/home/berth/profile', purpose: 'profile', sizeBytes: 1 }] }, config, {});
    expect(profile.HostConfig!.Mounts).toEqual([{ Type: 'volume', Source: 'prod-profile-a-1', Target: '/home/berth/profile', ReadOnly: false }]);
    expect(Object.keys(profile.HostConfig!.Tmpfs!)).toEqual(['/tmp', '/home/berth']);
    const workspace = buildContainerOptions('n', { ...spec, volumes: [{ name: 'prod-ws', mountPath: '/home/berth', purpose: 'workspace', sizeBytes: 1 }] }, config, {});
    expect(Object.keys(workspace.HostConfig!.Tmpfs!)).toEqual(['/tmp']);
    expect(workspace.HostConfig!.Mounts![0]).toMatchObject({ Source: 'prod-ws', Target: '/home/berth' });
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

  it('publishes the agent port on the host only when asked (a network with inter-container traffic off)', () => {
    const isolated = testConfig({ DOCKER_NETWORK: 'berth-sessions', DOCKER_PUBLISH_HOST: '127.0.0.1' });
    const published = buildContainerOptions('n', spec, isolated, {}, { host: '127.0.0.1', port: 21234 });
    expect(published.ExposedPorts).toEqual({ '7681/tcp': {} });
    expect(published.HostConfig!.PortBindings).toEqual({ '7681/tcp': [{ HostIp: '127.0.0.1', HostPort: '21234' }] });
    expect(options.HostConfig!.PortBindings).toBeUndefined();
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
