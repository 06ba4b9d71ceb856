import { testConfig } from '../../../test/support/test-config';
import { Pod, Service } from 'kubernetes-models/v1';
import { BerthConfig } from '../../config/berth-config';
import { parseEnvironment } from '../../config/environment';
import { SessionKind } from '../../sessions/session-status';
import { SessionContainerSpec, sessionContainerName } from '../container-platform';
import { makeSessionPod, makeSessionService, quantityFromBytes, sessionNetworkEnv, sessionServiceName } from './kubernetes-objects';

const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function configFor(env: Record<string, string> = {}): BerthConfig {
  return testConfig({ CONTAINER_PLATFORM: 'kubernetes', ...env });
}

const spec: SessionContainerSpec = {
  sessionId: '0b6e3f5c-4a53-4f0e-9a0c-2f6f1c7d9e11',
  kind: SessionKind.Terminal,
  image: 'berth/terminal:latest',
  env: { BERTH_SESSION_ID: '0b6e3f5c-4a53-4f0e-9a0c-2f6f1c7d9e11', BERTH_CALLBACK_TOKEN: 'secret', BERTH_PORT: 'overridden' },
};

function build(env: Record<string, string> = {}) {
  const config = configFor(env);
  const podName = sessionContainerName(config.platform.instance, spec.kind, spec.sessionId);
  const serviceName = sessionServiceName(podName);
  const pod = makeSessionPod(podName, spec, config, sessionNetworkEnv(config));
  const service = makeSessionService(serviceName, spec, config, { name: podName, uid: '5d7c0a8e-1111-2222-3333-444455556666' });
  return { config, podName, serviceName, pod, service };
}

describe('makeSessionPod', () => {
  it('validates against the official Pod schema', () => {
    const { pod } = build();
    expect(() => new Pod(pod as never).validate()).not.toThrow();
  });

  it('the schema check is real: a malformed pod is rejected', () => {
    const { pod } = build();
    const broken = { ...pod, spec: { ...pod.spec, containers: [{ ...pod.spec!.containers[0], ports: [{ containerPort: 'http' }] }] } };
    expect(() => new Pod(broken as never).validate()).toThrow();
  });

  it('is hardened like the Docker container', () => {
    const { pod } = build();
    const podSpec = pod.spec!;
    const container = podSpec.containers[0];
    expect(podSpec.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.securityContext?.capabilities?.add).toBeUndefined();
    expect(podSpec.restartPolicy).toBe('Never');
    expect(podSpec.automountServiceAccountToken).toBe(false);
    expect(podSpec.enableServiceLinks).toBe(false);
    expect(podSpec.terminationGracePeriodSeconds).toBe(5);
    expect(podSpec.hostNetwork).toBeUndefined();
    expect(podSpec.hostPID).toBeUndefined();
  });

  it('mounts memory-backed emptyDirs sized like the Docker tmpfs on /tmp and the home directory', () => {
    const { pod } = build({ SESSION_TMPFS_MB: '32' });
    const volumes = Object.fromEntries(pod.spec!.volumes!.map((volume) => [volume.name, volume.emptyDir]));
    const mounts = Object.fromEntries(pod.spec!.containers[0].volumeMounts!.map((mount) => [mount.mountPath, mount.name]));
    expect(mounts).toEqual({ '/tmp': expect.any(String), '/home/berth': expect.any(String) });
    expect(volumes[mounts['/tmp']]).toEqual({ medium: 'Memory', sizeLimit: '32Mi' });
    expect(volumes[mounts['/home/berth']]).toEqual({ medium: 'Memory', sizeLimit: '32Mi' });
  });

  it('computes limits and requests from the configured memory and CPUs', () => {
    const { pod } = build({ SESSION_MEMORY_MB: '512', SESSION_CPUS: '1.5' });
    expect(pod.spec!.containers[0].resources).toEqual({
      limits: { cpu: '1500m', memory: '512Mi' },
      requests: { cpu: '150m', memory: '128Mi' },
    });
  });

  it('never rounds a tiny CPU limit down to zero', () => {
    const { pod } = build({ SESSION_CPUS: '0.01' });
    expect(pod.spec!.containers[0].resources).toMatchObject({ limits: { cpu: '10m' }, requests: { cpu: '1m' } });
  });

  it('labels the pod with the ownership labels', () => {
    const { pod, podName } = build({ BERTH_INSTANCE: 'prod-eu' });
    expect(pod.metadata).toEqual({
      name: podName,
      labels: {
        'berth.managed-by': 'berth',
        'berth.instance': 'prod-eu',
        'berth.session-id': spec.sessionId,
        'berth.session-kind': 'terminal',
        'app.kubernetes.io/managed-by': 'berth',
      },
    });
    for (const value of Object.values(pod.metadata!.labels!)) expect(value).toMatch(LABEL_VALUE);
    expect(podName).toBe(`prod-eu-terminal-${spec.sessionId}`);
    expect(podName).toMatch(DNS_1123_SUBDOMAIN);
  });

  it('passes the session env and lets the network env win', () => {
    const { pod } = build();
    const env = Object.fromEntries(pod.spec!.containers[0].env!.map((entry) => [entry.name, entry.value]));
    expect(env).toEqual({
      BERTH_SESSION_ID: spec.sessionId,
      BERTH_CALLBACK_TOKEN: 'secret',
      BERTH_LISTEN_HOST: '0.0.0.0',
      BERTH_PORT: '7681',
    });
    expect(pod.spec!.containers[0].ports).toEqual([{ name: 'http', containerPort: 7681, protocol: 'TCP' }]);
    expect(pod.spec!.containers[0].image).toBe('berth/terminal:latest');
  });
});

describe('makeSessionService', () => {
  it('validates against the official Service schema', () => {
    const { service } = build();
    expect(() => new Service(service as never).validate()).not.toThrow();
  });

  it('is a ClusterIP service selecting exactly the session pod, on the container port', () => {
    const { service, pod, podName } = build({ SESSION_CONTAINER_PORT: '8080' });
    expect(service.spec).toEqual({
      type: 'ClusterIP',
      selector: { 'berth.instance': 'berth', 'berth.session-id': spec.sessionId },
      ports: [{ name: 'http', protocol: 'TCP', port: 8080, targetPort: 8080 }],
    });
    // The selector must match the pod's labels, or the service routes nowhere.
    for (const [key, value] of Object.entries(service.spec!.selector!)) expect(pod.metadata!.labels![key]).toBe(value);
    expect(service.metadata!.labels).toEqual(pod.metadata!.labels);
    expect(service.metadata!.ownerReferences).toEqual([
      { apiVersion: 'v1', kind: 'Pod', name: podName, uid: '5d7c0a8e-1111-2222-3333-444455556666', controller: true },
    ]);
  });
});

describe('sessionServiceName', () => {
  it('reuses the pod name when it is a valid service name', () => {
    const name = `berth-terminal-${spec.sessionId}`;
    expect(sessionServiceName(name)).toBe(name);
  });

  it.each([
    ['too long', `a-very-long-instance-name-0123-terminal-${spec.sessionId}`],
    ['starting with a digit', `9lives-terminal-${spec.sessionId}`],
  ])('derives a deterministic valid name when the pod name is %s', (_why, podName) => {
    const name = sessionServiceName(podName);
    expect(name).toMatch(DNS_1035_LABEL);
    expect(name).toBe(sessionServiceName(podName));
    expect(name).not.toBe(sessionServiceName(podName.replace(/.$/, '0')));
  });
});

describe('quantityFromBytes', () => {
  it('writes whole mebibytes as Mi and anything else as bytes', () => {
    expect(quantityFromBytes(64 * 1024 * 1024)).toBe('64Mi');
    expect(quantityFromBytes(1000)).toBe('1000');
  });
});
