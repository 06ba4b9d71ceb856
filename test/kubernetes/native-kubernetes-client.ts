import type { KubernetesClient } from '../../src/platform/kubernetes/kubernetes-client';

/**
 * Loads @kubernetes/client-node with Node's own module loader, bypassing
 * jest's CommonJS registry, which cannot evaluate ES modules (Node >= 20.19
 * can, through require). For use in a jest.mock factory:
 *
 *   jest.mock('@kubernetes/client-node', () =>
 *     jest.requireActual('../../../test/kubernetes/native-kubernetes-client').loadNativeKubernetesClient(),
 *   );
 *
 * jest hands test code a patched `module` whose createRequire returns jest's
 * require, but the Module class it exposes still has Node's real loader.
 */
export function loadNativeKubernetesClient(): KubernetesClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Module } = require('node:module') as {
    Module: (new (id: string) => { paths: string[]; require(id: string): unknown }) & {
      _nodeModulePaths(from: string): string[];
    };
  };
  const loader = new Module(__filename);
  loader.paths = Module._nodeModulePaths(__dirname);
  return loader.require('@kubernetes/client-node') as KubernetesClient;
}
