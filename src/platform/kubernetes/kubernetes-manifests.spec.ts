import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1PodSpec } from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { BerthConfig } from '../../config/berth-config';
import { parseEnvironment } from '../../config/environment';
import { SessionKind } from '../../sessions/session-status';
import { makeSessionPod } from './kubernetes-objects';

/**
 * The manifests in k8s/ cannot be applied here (no cluster can run on the
 * project's machines), so they are checked against the official schemas and
 * against the code they configure.
 */

const K8S_DIR = join(__dirname, '../../../k8s');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // Free-form YAML: the schema test below is what checks its shape.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

function load(file: string): Manifest[] {
  return (loadAll(readFileSync(join(K8S_DIR, file), 'utf8')) as Manifest[]).filter(Boolean);
}

const manifestFiles = readdirSync(K8S_DIR).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml');
const all = manifestFiles.flatMap((file) => load(file).map((doc) => ({ file, doc })));

function find(kind: string, name: string): Manifest {
  const found = all.find(({ doc }) => doc.kind === kind && doc.metadata.name === name)?.doc;
  if (!found) throw new Error(`no ${kind} ${name} in k8s/`);
  return found;
}

/** The Pod Security "restricted" profile, the checks that apply to what we deploy. */
function restrictedViolations(spec: V1PodSpec): string[] {
  const problems: string[] = [];
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push('host namespaces');
  const podContext = spec.securityContext ?? {};
  for (const volume of spec.volumes ?? []) {
    const allowed = ['emptyDir', 'configMap', 'secret', 'projected', 'downwardAPI', 'persistentVolumeClaim', 'ephemeral', 'csi'];
    const types = Object.keys(volume).filter((key) => key !== 'name');
    if (!types.every((type) => allowed.includes(type))) problems.push(`volume ${volume.name}: ${types.join(',')}`);
  }
  for (const container of spec.containers) {
    const context = container.securityContext ?? {};
    if (context.privileged) problems.push(`${container.name}: privileged`);
    if (context.allowPrivilegeEscalation !== false) problems.push(`${container.name}: allowPrivilegeEscalation`);
    if (!(context.capabilities?.drop ?? []).includes('ALL')) problems.push(`${container.name}: capabilities not dropped`);
    if ((context.capabilities?.add ?? []).some((cap) => cap !== 'NET_BIND_SERVICE')) problems.push(`${container.name}: capabilities added`);
    if ((context.runAsNonRoot ?? podContext.runAsNonRoot) !== true) problems.push(`${container.name}: runAsNonRoot`);
    if ((context.runAsUser ?? podContext.runAsUser) === 0) problems.push(`${container.name}: runAsUser 0`);
    const seccomp = context.seccompProfile?.type ?? podContext.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') problems.push(`${container.name}: seccompProfile`);
    if ((container.ports ?? []).some((port) => port.hostPort)) problems.push(`${container.name}: hostPort`);
  }
  return problems;
}

describe('k8s/ manifests', () => {
  const labelled = all.map(({ file, doc }) => [`${file}: ${doc.kind} ${doc.metadata?.name}`, doc] as const);
  it.each(labelled)('%s validates against the official schema', (_label, doc) => {
    const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
    expect(Model).toBeDefined();
    expect(() => new Model(doc as never).validate()).not.toThrow();
  });

  it('the kustomization applies every manifest except the Secret template', () => {
    const [kustomization] = load('kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(manifestFiles.filter((file) => file !== 'secret.example.yaml').sort());
  });

  const configMap = find('ConfigMap', 'berth-config');
  const secret = find('Secret', 'berth-secrets');
  const config = new BerthConfig(parseEnvironment({ ...configMap.data, ...secret.stringData }));

  it('the ConfigMap and Secret template make a valid Kubernetes-platform configuration', () => {
    expect(config.platform.kind).toBe('kubernetes');
    expect(config.platform.kubernetes.inCluster).toBe(true);
    expect(config.runWorkerInApi).toBe(false);
  });

  it('the service account may manage sessions in the namespace the config names, and the Deployments run as it', () => {
    const role = find('Role', 'berth-session-manager');
    const binding = find('RoleBinding', 'berth-session-manager');
    const account = find('ServiceAccount', 'berth');
    expect(role.metadata.namespace).toBe(config.platform.kubernetes.namespace);
    expect(binding.metadata.namespace).toBe(config.platform.kubernetes.namespace);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }]);
    for (const name of ['berth-api', 'berth-worker']) {
      const deployment = find('Deployment', name);
      expect(deployment.metadata.namespace).toBe(account.metadata.namespace);
      expect(deployment.spec.template.spec.serviceAccountName).toBe(account.metadata.name);
      expect(deployment.spec.template.spec.automountServiceAccountToken).not.toBe(false);
    }
  });

  it('runs the API and the worker with the right commands, image and environment', () => {
    const api = find('Deployment', 'berth-api');
    const worker = find('Deployment', 'berth-worker');
    expect(api.spec.replicas).toBe(2);
    expect(api.spec.template.spec.containers[0]).toMatchObject({ image: 'berth/api:latest', command: ['node', 'dist/src/main.js'] });
    expect(worker.spec.template.spec.containers[0]).toMatchObject({ image: 'berth/api:latest', command: ['node', 'dist/src/worker.js'] });
    for (const deployment of [api, worker]) {
      for (const [key, value] of Object.entries(deployment.spec.selector.matchLabels)) {
        expect(deployment.spec.template.metadata.labels[key]).toBe(value);
      }
      expect(deployment.spec.template.spec.containers[0].envFrom).toEqual([
        { configMapRef: { name: configMap.metadata.name } },
        { secretRef: { name: secret.metadata.name } },
      ]);
    }
  });

  it('probes the API on GET /health at the port it listens on, and its Service and CALLBACK_URL point there', () => {
    const api = find('Deployment', 'berth-api');
    const container = api.spec.template.spec.containers[0];
    const httpPort = container.ports.find((port: { name: string }) => port.name === 'http');
    expect(httpPort.containerPort).toBe(config.http.port);
    expect(container.readinessProbe.httpGet).toEqual({ path: '/health', port: 'http' });

    const service = find('Service', 'berth-api');
    for (const [key, value] of Object.entries(service.spec.selector)) expect(api.spec.template.metadata.labels[key]).toBe(value);
    expect(service.spec.ports[0].targetPort).toBe('http');
    const callback = new URL(config.callbackUrl);
    expect(callback.hostname).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc`);
    expect(Number(callback.port)).toBe(service.spec.ports[0].port);
    expect(callback.pathname).toBe('/api/v1/callbacks');
  });

  it('lets session pods be reached only from the berth namespace, on the session port', () => {
    const policy = find('NetworkPolicy', 'berth-sessions-ingress');
    const sessionPod = makeSessionPod('x', { sessionId: 'id', kind: SessionKind.Terminal, image: 'i', env: {} }, config, {});
    expect(policy.metadata.namespace).toBe(config.platform.kubernetes.namespace);
    for (const [key, value] of Object.entries(policy.spec.podSelector.matchLabels)) expect(sessionPod.metadata!.labels![key]).toBe(value);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toEqual([
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': find('Deployment', 'berth-api').metadata.namespace } } }],
        ports: [{ protocol: 'TCP', port: config.platform.docker.containerPort }],
      },
    ]);
  });

  it('every pod, session pods included, passes the Pod Security "restricted" profile the namespaces enforce', () => {
    for (const name of ['berth', config.platform.kubernetes.namespace]) {
      expect(find('Namespace', name).metadata.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
    }
    const sessionPod = makeSessionPod('x', { sessionId: 'id', kind: SessionKind.Terminal, image: 'i', env: {} }, config, {});
    expect(restrictedViolations(sessionPod.spec!)).toEqual([]);
    for (const name of ['berth-api', 'berth-worker']) expect(restrictedViolations(find('Deployment', name).spec.template.spec)).toEqual([]);
    // The checker is not vacuous.
    expect(restrictedViolations({ containers: [{ name: 'c', securityContext: { privileged: true } }] })).toContain('c: privileged');
  });
});
