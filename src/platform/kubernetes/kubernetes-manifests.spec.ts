import { readdirSync, readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { join } from 'node:path';
import type { V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { BerthConfig } from '../../config/berth-config';
import { EnvironmentVariables, OPTIONAL_VARIABLES, parseEnvironment } from '../../config/environment';
import { SessionKind } from '../../sessions/session-status';
import { PersistentVolume, SessionContainerSpec } from '../container-platform';
import { makeSessionPod, sessionNetworkEnv } from './kubernetes-objects';

/**
 * The manifests in k8s/ cannot be applied here (no cluster can run on the
 * project's machines), so they are checked against the official schemas and
 * against the code they configure.
 */

const K8S_DIR = join(__dirname, '../../../k8s');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
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
  'networking.k8s.io/v1/Ingress': Ingress,
};

/** Templates to copy and edit, not applied by the kustomization. */
const TEMPLATES = ['secret.example.yaml', 'ingress.example.yaml'];

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

  it('the kustomization applies every manifest except the templates', () => {
    const [kustomization] = load('kustomization.yaml');
    for (const template of TEMPLATES) expect(manifestFiles).toContain(template);
    expect([...kustomization.resources].sort()).toEqual(manifestFiles.filter((file) => !TEMPLATES.includes(file)).sort());
  });

  const configMap = find('ConfigMap', 'berth-config');
  const secret = find('Secret', 'berth-secrets');
  const config = new BerthConfig(parseEnvironment({ ...configMap.data, ...secret.stringData }));

  const apiDeployment = find('Deployment', 'berth-api');
  const gatewayDeployment = find('Deployment', 'berth-gateway');
  const workerDeployment = find('Deployment', 'berth-worker');
  const apiService = find('Service', 'berth-api');
  const gatewayService = find('Service', 'berth-gateway');

  /** The container port a Service's targetPort names, in the Deployment it selects. */
  function targetContainerPort(service: Manifest, deployment: Manifest): number {
    for (const [key, value] of Object.entries(service.spec.selector)) expect(deployment.spec.template.metadata.labels[key]).toBe(value);
    const target = service.spec.ports[0].targetPort;
    const port = deployment.spec.template.spec.containers[0].ports.find(
      (candidate: { name: string; containerPort: number }) => candidate.name === target || candidate.containerPort === target,
    );
    expect(port).toBeDefined();
    return port.containerPort;
  }

  /** Whether a NetworkPolicy peer selects the pods of this Deployment. */
  function selectsDeployment(peer: { namespaceSelector?: Manifest['spec']; podSelector?: Manifest['spec'] }, deployment: Manifest): boolean {
    const namespaceOk = Object.entries(peer.namespaceSelector?.matchLabels ?? { x: 'unset' }).every(
      ([key, value]) => key === 'kubernetes.io/metadata.name' && value === deployment.metadata.namespace,
    );
    const podLabels = deployment.spec.template.metadata.labels;
    const podOk = !!peer.podSelector && Object.entries(peer.podSelector.matchLabels ?? {}).every(([key, value]) => podLabels[key] === value);
    return namespaceOk && podOk;
  }

  it('the ConfigMap and Secret template make a valid Kubernetes-platform configuration, with the gateway on its own', () => {
    expect(config.platform.kind).toBe('kubernetes');
    expect(config.platform.kubernetes.inCluster).toBe(true);
    expect(config.platform.kubernetes.storageClass).toBe('');
    expect(config.runWorkerInApi).toBe(false);
    expect(config.gateway.embedded).toBe(false);
    expect(config.http.publicUrl).toBe('https://berth.example.com');
    expect(config.gateway.sessionUrlTemplate).toBe('https://{id}.sessions.example.com');
  });

  it('the ConfigMap names only variables Berth reads (a misspelt one would be silently ignored)', () => {
    const known = new Set([...Object.keys(new EnvironmentVariables()), ...OPTIONAL_VARIABLES]);
    expect(Object.keys(configMap.data).filter((key) => !known.has(key))).toEqual([]);
    // The per-kind limits, under their current names.
    for (const key of ['TERMINAL_MEMORY_MB', 'TERMINAL_CPUS', 'TERMINAL_PIDS_LIMIT', 'TERMINAL_TMPFS_MB', 'BROWSER_IMAGE', 'BROWSER_MEMORY_MB']) {
      expect(Object.keys(configMap.data)).toContain(key);
    }
    expect(config.terminal.resources.memoryBytes).toBe(Number(configMap.data.TERMINAL_MEMORY_MB) * 1024 * 1024);
    expect(config.browser.resources.memoryBytes).toBe(Number(configMap.data.BROWSER_MEMORY_MB) * 1024 * 1024);
  });

  it('the service account may manage sessions in the namespace the config names, and the API and worker run as it', () => {
    const role = find('Role', 'berth-session-manager');
    const binding = find('RoleBinding', 'berth-session-manager');
    const account = find('ServiceAccount', 'berth');
    expect(role.metadata.namespace).toBe(config.platform.kubernetes.namespace);
    expect(binding.metadata.namespace).toBe(config.platform.kubernetes.namespace);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }]);
    for (const deployment of [apiDeployment, workerDeployment]) {
      expect(deployment.metadata.namespace).toBe(account.metadata.namespace);
      expect(deployment.spec.template.spec.serviceAccountName).toBe(account.metadata.name);
      expect(deployment.spec.template.spec.automountServiceAccountToken).not.toBe(false);
    }
    // No per-session Services any more; claims for persistent volumes instead.
    const resources = role.rules.flatMap((rule: { resources: string[] }) => rule.resources);
    expect(resources).not.toContain('services');
    expect(role.rules).toContainEqual({ apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['create', 'get', 'list', 'delete'] });
  });

  it('the gateway never gets a Kubernetes API token', () => {
    const podSpec = gatewayDeployment.spec.template.spec;
    expect(podSpec.automountServiceAccountToken).toBe(false);
    expect(podSpec.serviceAccountName ?? 'default').not.toBe(find('ServiceAccount', 'berth').metadata.name);
  });

  it('runs the API, the gateway and the worker with the right commands, image and environment', () => {
    expect(apiDeployment.spec.replicas).toBe(2);
    expect(apiDeployment.spec.template.spec.containers[0]).toMatchObject({ image: 'berth/api:latest', command: ['node', 'dist/src/main.js'] });
    expect(gatewayDeployment.spec.template.spec.containers[0]).toMatchObject({ image: 'berth/api:latest', command: ['node', 'dist/src/gateway.js'] });
    expect(workerDeployment.spec.template.spec.containers[0]).toMatchObject({ image: 'berth/api:latest', command: ['node', 'dist/src/worker.js'] });
    for (const deployment of [apiDeployment, gatewayDeployment, workerDeployment]) {
      expect(deployment.metadata.namespace).toBe('berth');
      for (const [key, value] of Object.entries(deployment.spec.selector.matchLabels)) {
        expect(deployment.spec.template.metadata.labels[key]).toBe(value);
      }
      expect(deployment.spec.template.spec.containers[0].envFrom).toEqual([
        { configMapRef: { name: configMap.metadata.name } },
        { secretRef: { name: secret.metadata.name } },
      ]);
    }
    // Three Deployments, three distinct sets of pods.
    const components = [apiDeployment, gatewayDeployment, workerDeployment].map((d) => d.spec.selector.matchLabels['app.kubernetes.io/component']);
    expect(new Set(components).size).toBe(3);
  });

  it('probes the API on GET /health at the port it listens on, and its Service and CALLBACK_URL point there', () => {
    const container = apiDeployment.spec.template.spec.containers[0];
    const httpPort = container.ports.find((port: { name: string }) => port.name === 'http');
    expect(httpPort.containerPort).toBe(config.http.port);
    expect(container.readinessProbe.httpGet).toEqual({ path: '/health', port: 'http' });

    expect(targetContainerPort(apiService, apiDeployment)).toBe(config.http.port);
    const callback = new URL(config.callbackUrl);
    expect(callback.hostname).toBe(`${apiService.metadata.name}.${apiService.metadata.namespace}.svc`);
    expect(Number(callback.port)).toBe(apiService.spec.ports[0].port);
    expect(callback.pathname).toBe('/api/v1/callbacks');
  });

  it('the gateway listens on GATEWAY_PORT, is probed there over TCP, and forwards API traffic to the API Service', () => {
    const container = gatewayDeployment.spec.template.spec.containers[0];
    expect(targetContainerPort(gatewayService, gatewayDeployment)).toBe(config.gateway.port);
    expect(container.readinessProbe.tcpSocket).toEqual({ port: 'http' });
    expect(container.ports.find((port: { name: string }) => port.name === 'http').containerPort).toBe(config.gateway.port);
    const upstream = new URL(config.gateway.apiUpstream);
    expect(upstream.hostname).toBe(`${apiService.metadata.name}.${apiService.metadata.namespace}.svc`);
    expect(Number(upstream.port)).toBe(apiService.spec.ports[0].port);
  });

  describe('ingress.example.yaml', () => {
    const ingress = find('Ingress', 'berth');
    const publicHost = new URL(config.http.publicUrl).hostname;
    const sessionHost = new URL(config.gateway.sessionUrlTemplate.replace('{id}', 'x')).hostname.replace(/^x\./, '*.');

    it('routes PUBLIC_URL and every session origin, and nothing else, to the gateway Service', () => {
      expect(sessionHost).toBe('*.sessions.example.com');
      expect(ingress.spec.rules.map((rule: { host: string }) => rule.host).sort()).toEqual([publicHost, sessionHost].sort());
      for (const rule of ingress.spec.rules) {
        expect(rule.http.paths).toEqual([
          {
            path: '/',
            pathType: 'Prefix',
            backend: { service: { name: gatewayService.metadata.name, port: { name: gatewayService.spec.ports[0].name } } },
          },
        ]);
      }
      expect(ingress.metadata.namespace).toBe(gatewayService.metadata.namespace);
    });

    it('terminates TLS for both host names (PUBLIC_URL and the session template are https)', () => {
      expect(config.http.publicUrl.startsWith('https://')).toBe(true);
      const covered = ingress.spec.tls.flatMap((tls: { hosts: string[]; secretName: string }) => {
        expect(tls.secretName).toEqual(expect.any(String));
        return tls.hosts;
      });
      expect(covered.sort()).toEqual([publicHost, sessionHost].sort());
    });

    it('lets uploads as large as BROWSER_MAX_UPLOAD_MB through', () => {
      const limit = ingress.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '';
      expect(parseInt(limit, 10)).toBeGreaterThanOrEqual(config.browser.maxUploadBytes / (1024 * 1024));
    });
  });

  describe('session NetworkPolicies', () => {
    const ingressPolicy = find('NetworkPolicy', 'berth-sessions-ingress');
    const egressPolicy = find('NetworkPolicy', 'berth-sessions-egress');
    const sessionPod = makeSessionPod('x', sessionSpec(config, SessionKind.Terminal), config, sessionNetworkEnv(config));

    it('both select every session pod, in the sessions namespace', () => {
      for (const policy of [ingressPolicy, egressPolicy]) {
        expect(policy.metadata.namespace).toBe(config.platform.kubernetes.namespace);
        expect(Object.keys(policy.spec.podSelector.matchLabels).length).toBeGreaterThan(0);
        for (const [key, value] of Object.entries(policy.spec.podSelector.matchLabels)) expect(sessionPod.metadata!.labels![key]).toBe(value);
      }
      expect(ingressPolicy.spec.policyTypes).toEqual(['Ingress']);
      expect(egressPolicy.spec.policyTypes).toEqual(['Egress']);
    });

    it('admits only the gateway and API pods, only on the agent port', () => {
      expect(ingressPolicy.spec.ingress).toHaveLength(1);
      const [rule] = ingressPolicy.spec.ingress;
      expect(rule.ports).toEqual([{ protocol: 'TCP', port: config.platform.docker.containerPort }]);
      expect(sessionPod.spec!.containers[0].ports![0].containerPort).toBe(config.platform.docker.containerPort);
      expect(rule.from).toHaveLength(2);
      for (const peer of rule.from) expect(Object.keys(peer).sort()).toEqual(['namespaceSelector', 'podSelector']);
      expect(rule.from.filter((peer: never) => selectsDeployment(peer, gatewayDeployment))).toHaveLength(1);
      expect(rule.from.filter((peer: never) => selectsDeployment(peer, apiDeployment))).toHaveLength(1);
      expect(rule.from.some((peer: never) => selectsDeployment(peer, workerDeployment))).toBe(false);
    });

    it('lets sessions resolve names through the cluster DNS and call back the API pods on their port', () => {
      const rules = egressPolicy.spec.egress as { to: Manifest['spec'][]; ports?: { protocol: string; port: number }[] }[];
      const dns = rules.find((rule) => rule.to.some((peer) => peer.podSelector?.matchLabels?.['k8s-app'] === 'kube-dns'))!;
      expect(dns.to).toEqual([
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
      ]);
      expect(dns.ports).toEqual([
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ]);
      const callback = rules.find((rule) => rule.to.some((peer) => selectsDeployment(peer, apiDeployment)))!;
      expect(callback.to).toHaveLength(1);
      // CALLBACK_URL's Service forwards to this container port; policies see the pod's port.
      expect(callback.ports).toEqual([{ protocol: 'TCP', port: targetContainerPort(apiService, apiDeployment) }]);
      expect(rules.some((rule) => rule.to.some((peer) => selectsDeployment(peer, gatewayDeployment)))).toBe(false);
    });

    describe('internet egress', () => {
      const blocks = (egressPolicy.spec.egress as { to: { ipBlock?: { cidr: string; except?: string[] } }[]; ports?: unknown }[])
        .filter((rule) => rule.to.some((peer) => peer.ipBlock))
        .map((rule) => {
          expect(rule.ports).toBeUndefined();
          return rule.to.map((peer) => peer.ipBlock!);
        })
        .flat();

      /** What the CNI decides for a destination address under the ipBlock peers. */
      function allowed(address: string): boolean {
        const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
        return blocks.some(({ cidr, except = [] }) => {
          const [network, prefix] = cidr.split('/');
          if ((isIP(network) === 6 ? 'ipv6' : 'ipv4') !== family) return false;
          const inside = new BlockList();
          inside.addSubnet(network, Number(prefix), family);
          const excluded = new BlockList();
          for (const range of except) {
            const [exceptNetwork, exceptPrefix] = range.split('/');
            excluded.addSubnet(exceptNetwork, Number(exceptPrefix), family);
          }
          return inside.check(address, family) && !excluded.check(address, family);
        });
      }

      it('covers all of IPv4 and IPv6, with only ranges inside them excepted', () => {
        expect(blocks.map((block) => block.cidr).sort()).toEqual(['0.0.0.0/0', '::/0']);
      });

      it.each(['8.8.8.8', '1.1.1.1', '140.82.112.3', '2001:4860:4860::8888', '2606:4700:4700::1111'])('reaches the public address %s', (address) => {
        expect(allowed(address)).toBe(true);
      });

      it.each([
        ['the metadata service', '169.254.169.254'],
        ['NodeLocal DNSCache and other link-local', '169.254.20.10'],
        ['a 10/8 pod or service', '10.96.0.1'],
        ['a 172.16/12 address', '172.20.5.4'],
        ['a 192.168/16 node', '192.168.1.10'],
        ['CGNAT (Alibaba metadata)', '100.100.100.200'],
        ['AWS IPv6 metadata', 'fd00:ec2::254'],
        ['GCP IPv6 metadata', 'fd20:ce::254'],
        ['an IPv6 unique-local pod', 'fd12:3456::1'],
        ['IPv6 link-local', 'fe80::1'],
        ['IPv4-mapped metadata', '::ffff:169.254.169.254'],
        ['IPv4-mapped private', '::ffff:10.0.0.1'],
        ['NAT64 metadata', '64:ff9b::a9fe:a9fe'],
        ['NAT64 private', '64:ff9b::a00:1'],
        ['NAT64 CGNAT', '64:ff9b::6464:64c8'],
        ['NAT64 172.16/12', '64:ff9b::ac14:504'],
        ['NAT64 192.168/16', '64:ff9b::c0a8:10a'],
      ])('does not reach %s (%s)', (_what, address) => {
        expect(allowed(address)).toBe(false);
      });

      it('still reaches public IPv4 through NAT64', () => {
        expect(allowed('64:ff9b::808:808')).toBe(true);
      });
    });
  });

  it('every pod, session pods of both kinds and with volumes included, passes the Pod Security "restricted" profile the namespaces enforce', () => {
    for (const name of ['berth', config.platform.kubernetes.namespace]) {
      expect(find('Namespace', name).metadata.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
    }
    const workspace: PersistentVolume = { name: 'w', mountPath: '/home/berth', purpose: 'workspace', sizeBytes: 1 << 30 };
    const profile: PersistentVolume = { name: 'p', mountPath: '/home/berth/profile', purpose: 'profile', sizeBytes: 1 << 30 };
    const sessionPods: V1Pod[] = [
      makeSessionPod('t', sessionSpec(config, SessionKind.Terminal), config, {}),
      makeSessionPod('tw', sessionSpec(config, SessionKind.Terminal, [workspace]), config, {}),
      makeSessionPod('b', sessionSpec(config, SessionKind.Browser), config, {}),
      makeSessionPod('bp', sessionSpec(config, SessionKind.Browser, [profile]), config, {}),
    ];
    for (const pod of sessionPods) expect(restrictedViolations(pod.spec!)).toEqual([]);
    for (const deployment of [apiDeployment, gatewayDeployment, workerDeployment]) {
      expect(restrictedViolations(deployment.spec.template.spec)).toEqual([]);
    }
    // The checker is not vacuous.
    expect(restrictedViolations({ containers: [{ name: 'c', securityContext: { privileged: true } }] })).toContain('c: privileged');
    expect(restrictedViolations({ containers: [], volumes: [{ name: 'h', hostPath: { path: '/' } }] })).toContain('volume h: hostPath');
  });
});

/** What a kind's profile would ask for, from the configuration under test. */
function sessionSpec(config: BerthConfig, kind: SessionKind, volumes: PersistentVolume[] = []): SessionContainerSpec {
  const settings = kind === SessionKind.Browser ? config.browser : config.terminal;
  return { sessionId: 'id', kind, image: settings.image, env: {}, resources: settings.resources, stopGraceSeconds: 3, volumes };
}
