import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { PersistentVolumeClaim, Pod } from 'kubernetes-models/v1';

/**
 * A small stand-in for the Kubernetes API server, speaking the core/v1
 * endpoints the Kubernetes platform adapter uses (pods, pods/log,
 * persistentvolumeclaims) with the real request and response shapes: objects
 * with server-set metadata, Status objects for errors, label selectors and
 * continue tokens on lists, delete preconditions, bearer-token
 * authentication, RBAC over the rules of a Role, and the pvc-protection
 * finalizer (a claim deleted while a pod uses it stays, terminating, until
 * no pod does). No cluster can run on the project's machines; this is what
 * the adapter's tests talk to instead.
 */

/** What the StorageObjectInUseProtection admission plugin puts on every claim. */
export const PVC_PROTECTION_FINALIZER = 'kubernetes.io/pvc-protection';

type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    finalizers?: string[];
    [key: string]: unknown;
  };
  spec?: unknown;
  status?: unknown;
};

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  body: unknown;
  /** The status code the fake answered with. */
  status: number;
}

export interface RbacRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface FakeKubernetesApiOptions {
  token: string;
  /** When set, only these rules in this namespace are allowed (as for a Role bound to the caller). */
  rbac?: { namespace: string; rules: RbacRule[] };
}

type Resource = 'pods' | 'persistentvolumeclaims';

const KINDS: Record<Resource, { kind: string; validate: (object: KubeObject) => void }> = {
  pods: { kind: 'Pod', validate: (object) => new Pod(object as never).validate() },
  persistentvolumeclaims: { kind: 'PersistentVolumeClaim', validate: (object) => new PersistentVolumeClaim(object as never).validate() },
};

const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

interface Fault {
  method: string;
  path: RegExp;
  code: number;
  reason: string;
  message: string;
}

export class FakeKubernetesApi {
  readonly requests: RecordedRequest[] = [];
  /** `resource:verb` pairs that were allowed and used, across resets. */
  readonly exercised = new Set<string>();
  private readonly store: Record<Resource, Map<string, KubeObject>> = { pods: new Map(), persistentvolumeclaims: new Map() };
  /** Open `?watch=true` requests: each gets a JSON line per change of what it selects. */
  private readonly watchers = new Set<{ resource: Resource; namespace: string; matches: (object: KubeObject) => boolean; response: ServerResponse }>();
  private readonly logs = new Map<string, string>();
  private faults: Fault[] = [];
  private resourceVersion = 1000;
  private server?: Server;

  constructor(private readonly options: FakeKubernetesApiOptions) {}

  async listen(): Promise<string> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error) => {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end(JSON.stringify(status(500, 'InternalError', String(error))));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.endWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  reset(): void {
    this.endWatches();
    this.requests.length = 0;
    this.store.pods.clear();
    this.store.persistentvolumeclaims.clear();
    this.logs.clear();
    this.faults = [];
  }

  /** The next request matching method and path gets this error Status instead. */
  failNext(method: string, path: RegExp, code: number, reason: string, message: string): void {
    this.faults.push({ method, path, code, reason, message });
  }

  /** Puts an object (a V1Pod, a V1PersistentVolumeClaim) as if someone else or an earlier attempt had created it. */
  put(resource: Resource, namespace: string, object: object): KubeObject {
    const stored = this.stamp(resource, namespace, structuredClone(object) as KubeObject);
    this.store[resource].set(`${namespace}/${stored.metadata.name}`, stored);
    this.notify(resource, 'ADDED', stored);
    return stored;
  }

  /** Ends every open watch, as an API server does when its watch timeout passes. */
  endWatches(): void {
    for (const watcher of this.watchers) watcher.response.end();
    this.watchers.clear();
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  private notify(resource: Resource, type: 'ADDED' | 'MODIFIED' | 'DELETED', object: KubeObject): void {
    for (const watcher of this.watchers) {
      if (watcher.resource !== resource || object.metadata.namespace !== watcher.namespace || !watcher.matches(object)) continue;
      watcher.response.write(JSON.stringify({ type, object }) + '\n');
    }
  }

  get(resource: Resource, namespace: string, name: string): KubeObject | undefined {
    return this.store[resource].get(`${namespace}/${name}`);
  }

  all(resource: Resource): KubeObject[] {
    return [...this.store[resource].values()];
  }

  /** What the kubelet would report. */
  setPodStatus(namespace: string, name: string, podStatus: Record<string, unknown>): void {
    const pod = this.get('pods', namespace, name);
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    pod.status = podStatus;
    pod.metadata.resourceVersion = String(++this.resourceVersion);
    this.notify('pods', 'MODIFIED', pod);
    this.releaseClaims(namespace);
  }

  setLog(namespace: string, name: string, text: string): void {
    this.logs.set(`${namespace}/${name}`, text);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://fake');
    const raw = await readBody(request);
    const body = raw ? JSON.parse(raw) : undefined;
    const record: RecordedRequest = {
      method: request.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      authorization: request.headers.authorization,
      body,
      status: 0,
    };
    this.requests.push(record);
    const send = (code: number, payload: unknown, contentType = 'application/json') => {
      record.status = code;
      response.writeHead(code, { 'content-type': contentType });
      response.end(typeof payload === 'string' ? payload : JSON.stringify(payload));
    };

    if (request.headers.authorization !== `Bearer ${this.options.token}`) {
      return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    }
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/(pods|persistentvolumeclaims)(?:\/([^/]+))?(\/log)?$/.exec(url.pathname);
    const [, namespace, resource, name, log] = (match ?? []) as unknown as [string, string, Resource, string | undefined, string | undefined];
    if (!match || (log && resource !== 'pods')) return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const verb = record.method === 'GET' && !name && url.searchParams.get('watch') === 'true' ? 'watch' : verbOf(record.method, name);
    const rbacResource = log ? `${resource}/log` : resource;

    const denial = this.authorize(namespace, rbacResource, verb);
    if (denial) return send(403, status(403, 'Forbidden', denial));
    this.exercised.add(`${rbacResource}:${verb}`);

    const fault = this.faults.find((candidate) => candidate.method === record.method && candidate.path.test(url.pathname));
    if (fault) {
      this.faults.splice(this.faults.indexOf(fault), 1);
      return send(fault.code, status(fault.code, fault.reason, fault.message));
    }

    const store = this.store[resource];
    const key = `${namespace}/${name}`;
    const notFound = () => send(404, status(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource }));

    switch (verb) {
      case 'create': {
        const object = body as KubeObject;
        const problem = this.invalid(resource, object);
        if (problem) {
          return send(422, status(422, 'Invalid', `${KINDS[resource].kind} "${object?.metadata?.name}" is invalid: ${problem}`));
        }
        if (store.has(`${namespace}/${object.metadata.name}`)) {
          const details = { name: object.metadata.name, kind: resource };
          return send(409, status(409, 'AlreadyExists', `${resource} "${object.metadata.name}" already exists`, details));
        }
        const stored = this.put(resource, namespace, object);
        return send(201, stored);
      }
      case 'get': {
        const object = store.get(key);
        if (!object) return notFound();
        if (log) return send(200, this.logs.get(key) ?? '', 'text/plain');
        return send(200, object);
      }
      case 'list':
        return send(200, this.list(resource, namespace, url.searchParams));
      case 'watch': {
        // Without a resourceVersion a watch starts with an ADDED event for everything it selects.
        record.status = 200;
        response.writeHead(200, { 'content-type': 'application/json' });
        const requirements = parseSelector(url.searchParams.get('labelSelector') ?? '');
        const watcher = { resource, namespace, matches: (object: KubeObject) => requirements.every((m) => m(object.metadata.labels ?? {})), response };
        this.watchers.add(watcher);
        response.on('close', () => this.watchers.delete(watcher));
        for (const object of store.values()) {
          if (object.metadata.namespace === namespace && watcher.matches(object)) response.write(JSON.stringify({ type: 'ADDED', object }) + '\n');
        }
        return;
      }
      case 'delete': {
        const object = store.get(key);
        if (!object) return notFound();
        const preconditionUid = (body as { preconditions?: { uid?: string } } | undefined)?.preconditions?.uid;
        if (preconditionUid && preconditionUid !== object.metadata.uid) {
          return send(
            409,
            status(409, 'Conflict', `Precondition failed: UID in precondition: ${preconditionUid}, UID in object meta: ${object.metadata.uid}`),
          );
        }
        if (resource === 'persistentvolumeclaims' && this.claimInUse(namespace, object.metadata.name)) {
          // The pvc-protection finalizer holds it: terminating, still there.
          object.metadata.deletionTimestamp ??= timestamp();
          return send(200, object);
        }
        store.delete(key);
        this.notify(resource, 'DELETED', object);
        if (resource === 'pods') this.releaseClaims(namespace);
        return send(200, { ...object, metadata: { ...object.metadata, deletionTimestamp: timestamp() } });
      }
      default:
        return send(405, status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
    }
  }

  private authorize(namespace: string, resource: string, verb: string): string | null {
    const rbac = this.options.rbac;
    if (!rbac) return null;
    const allowed =
      namespace === rbac.namespace &&
      rbac.rules.some((rule) => rule.apiGroups.includes('') && rule.resources.includes(resource) && rule.verbs.includes(verb));
    if (allowed) return null;
    const [base, sub] = resource.split('/');
    return (
      `${base} is forbidden: User "system:serviceaccount:berth:berth" cannot ${verb} resource "${base}"` +
      `${sub ? ` subresource "${sub}"` : ''} in API group "" in the namespace "${namespace}"`
    );
  }

  private invalid(resource: Resource, object: KubeObject | undefined): string | null {
    if (!object?.metadata?.name) return 'metadata.name: Required value';
    if (object.kind !== KINDS[resource].kind) return `kind: Invalid value: "${object.kind}"`;
    if (!DNS_1123_SUBDOMAIN.test(object.metadata.name) || object.metadata.name.length > 253) {
      return `metadata.name: Invalid value: "${object.metadata.name}"`;
    }
    try {
      KINDS[resource].validate(object);
    } catch (error) {
      return (error as Error).message;
    }
    return null;
  }

  private list(resource: Resource, namespace: string, query: URLSearchParams) {
    const requirements = parseSelector(query.get('labelSelector') ?? '');
    const matching = [...this.store[resource].values()]
      .filter((object) => object.metadata.namespace === namespace)
      .filter((object) => requirements.every((matches) => matches(object.metadata.labels ?? {})))
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const offset = Number(query.get('continue') ? Buffer.from(query.get('continue')!, 'base64url').toString() : 0);
    const limit = Number(query.get('limit') ?? 0) || matching.length;
    const items = matching.slice(offset, offset + limit).map(({ apiVersion: _v, kind: _k, ...rest }) => rest);
    const next = offset + limit < matching.length ? Buffer.from(String(offset + limit)).toString('base64url') : undefined;
    return {
      kind: `${KINDS[resource].kind}List`,
      apiVersion: 'v1',
      metadata: { resourceVersion: String(this.resourceVersion), ...(next ? { continue: next } : {}) },
      items,
    };
  }

  /** A pod that has not finished names the claim (what the pvc-protection controller checks). */
  private claimInUse(namespace: string, claimName: string): boolean {
    return [...this.store.pods.values()].some((pod) => {
      if (pod.metadata.namespace !== namespace) return false;
      const phase = (pod.status as { phase?: string } | undefined)?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return false;
      const volumes = (pod.spec as { volumes?: { persistentVolumeClaim?: { claimName?: string } }[] } | undefined)?.volumes ?? [];
      return volumes.some((volume) => volume.persistentVolumeClaim?.claimName === claimName);
    });
  }

  /** The finalizer lets go of terminating claims no pod uses any more. */
  private releaseClaims(namespace: string): void {
    for (const [key, claim] of this.store.persistentvolumeclaims) {
      if (claim.metadata.namespace !== namespace || !claim.metadata.deletionTimestamp) continue;
      if (!this.claimInUse(namespace, claim.metadata.name)) this.store.persistentvolumeclaims.delete(key);
    }
  }

  private stamp(resource: Resource, namespace: string, object: KubeObject): KubeObject {
    object.metadata = {
      ...object.metadata,
      namespace,
      uid: object.metadata.uid ?? randomUUID(),
      resourceVersion: String(++this.resourceVersion),
      creationTimestamp: (object.metadata.creationTimestamp as string | undefined) ?? timestamp(),
    };
    if (resource === 'pods') {
      object.status ??= { phase: 'Pending', qosClass: 'Burstable' };
    } else {
      // Pending until a pod using it is scheduled (WaitForFirstConsumer) or a volume is bound.
      object.status ??= { phase: 'Pending' };
      const finalizers = object.metadata.finalizers ?? [];
      if (!finalizers.includes(PVC_PROTECTION_FINALIZER)) object.metadata.finalizers = [...finalizers, PVC_PROTECTION_FINALIZER];
    }
    return object;
  }
}

function verbOf(method: string, name: string | undefined): string {
  switch (method) {
    case 'POST':
      return 'create';
    case 'GET':
      return name ? 'get' : 'list';
    case 'DELETE':
      return name ? 'delete' : 'deletecollection';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    default:
      return method.toLowerCase();
  }
}

/** Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated. */
function parseSelector(selector: string): ((labels: Record<string, string>) => boolean)[] {
  return selector
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const notEqual = /^([^!=]+)!=(.*)$/.exec(part);
      if (notEqual) return (labels) => labels[notEqual[1]] !== notEqual[2];
      const equal = /^([^!=]+)==?(.*)$/.exec(part);
      if (equal) return (labels) => labels[equal[1]] === equal[2];
      if (part.startsWith('!')) return (labels) => !(part.slice(1) in labels);
      return (labels) => part in labels;
    });
}

/** A metav1.Status, as the API server sends with every error. */
function status(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** RFC 3339 with second precision, as the API server writes timestamps. */
function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}
