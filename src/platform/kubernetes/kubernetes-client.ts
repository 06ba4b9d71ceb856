import type * as KubernetesClientModule from '@kubernetes/client-node';

export type KubernetesClient = typeof KubernetesClientModule;

let loaded: KubernetesClient | undefined;

/**
 * @kubernetes/client-node 1.x ships ES modules only. Compiled Berth is
 * CommonJS; Node >= 20.19 loads an ES module through require() natively, so a
 * plain require is all production needs. It is deferred to first use so that
 * importing this adapter (the platform module imports every adapter) costs
 * Docker installs nothing, and so test runners whose CommonJS sandbox cannot
 * evaluate ES modules (jest) only need the client where they use it: see
 * test/kubernetes/native-kubernetes-client.ts.
 */
export function kubernetesClient(): KubernetesClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('@kubernetes/client-node') as KubernetesClient;
  return loaded;
}
