import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { NodeKind, OnConflict, OrderBy, createClient, type FlowDockClient, type LoginResult, type Node } from '@flowdock/sdk';
import type { UploadJob, UploadResult } from '../upload/queue';
import type { Api } from './api';
import type { FileNode, LoginOutcome } from './types';

const date = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);

/** `parentId`: the listed folder's, for an entry of a compact listing (which leaves its own out). */
function toNode(n: Node, parentId = ''): FileNode {
  return {
    id: n.id,
    parentId: n.parentId || parentId,
    name: n.name,
    kind: n.kind === NodeKind.FOLDER ? 'folder' : 'file',
    size: Number(n.size),
    created: date(n.createTime),
    modified: date(n.modifyTime),
    contentType: n.contentType,
    sha256: n.sha256,
  };
}

const outcome = (r: LoginResult): LoginOutcome => (r.signedIn ? { kind: 'ok' } : { kind: 'mfa', mfaToken: r.mfaToken });

const deviceName = (): string => (typeof navigator === 'undefined' ? 'browser' : navigator.userAgent.slice(0, 100));

/** The pages' Api over @flowdock/sdk: session, grpc-web clients, chunked uploads and FlowDockError all come from it. */
export function createSdkApi(baseUrl: string): Api {
  const expiredListeners = new Set<() => void>();
  const client: FlowDockClient = createClient({
    baseUrl,
    onSessionExpired: () => {
      for (const l of expiredListeners) l();
    },
  });
  const { auth, storage } = client;

  async function upload(job: UploadJob): Promise<UploadResult> {
    const { file } = job;
    let finishing = false;
    const opts = {
      parentId: job.parentId,
      name: job.relativePath ? undefined : file.name,
      relativePath: job.relativePath || undefined,
      onConflict:
        job.onConflict === 'rename' ? ('rename' as const) : job.onConflict === 'replace' ? ('new_version' as const) : ('fail' as const),
      contentType: file.type || undefined,
      signal: job.signal,
      // A couple of quick retries inside the SDK; longer outages are the queue's (it shows "retrying").
      maxRetries: 2,
      onCreated: (record: { uploadId: string }) => job.onUploadId(record.uploadId),
      onProgress: (p: { committedBytes: number; totalBytes: number }) => {
        job.onProgress(p.committedBytes);
        if (p.committedBytes >= p.totalBytes && !finishing) {
          finishing = true;
          job.onFinishing();
        }
      },
    };
    const blob = file as unknown as Blob;
    const result = job.resumeUploadId
      ? await client.resumeUpload(job.resumeUploadId, blob, opts)
      : await client.upload(blob, opts);
    return { nodeId: result.node.id };
  }

  const order = { name: OrderBy.NAME, size: OrderBy.SIZE, modified: OrderBy.MODIFIED } as const;

  return {
    register: async (email, password, displayName) => void (await auth.register({ email, password, displayName })),
    verifyEmail: async (token) => void (await auth.verifyEmail({ token })),
    resendVerification: async (email) => void (await auth.resendVerification({ email })),
    login: async (email, password) => outcome(await client.login(email, password, deviceName())),
    loginTotp: async (mfaToken, code) => outcome(await client.loginTotp(mfaToken, code)),
    restoreSession: () => client.restoreSession(),
    logout: () => client.logout(),
    me: async () => {
      const u = await auth.getMe({});
      return { id: u.id, email: u.email, displayName: u.displayName, totpEnabled: u.totpEnabled };
    },
    requestPasswordRecovery: async (email) => void (await auth.requestPasswordRecovery({ email })),
    resetPassword: async (token, newPassword) => void (await auth.resetPassword({ token, newPassword })),
    oidcProviders: async () => (await auth.listOidcProviders({})).providers,
    startOidc: async (provider, redirectUri) => (await auth.startOidcLogin({ provider, redirectUri })).authorizationUrl,
    finishOidc: async (state, code) => outcome(await client.finishOidcLogin(state, code, deviceName())),
    onSessionExpired: (listener) => {
      expiredListeners.clear();
      expiredListeners.add(listener);
    },
    listChildren: async (folderId, opts) => {
      const r = await storage.listChildren({
        folderId,
        orderBy: order[opts.sort],
        descending: opts.descending,
        pageToken: opts.pageToken ?? '',
        pageSize: opts.pageSize ?? 200,
        compact: true,
      });
      return { items: r.nodes.map((n) => toNode(n, r.parentId)), nextPageToken: r.nextPageToken };
    },
    getNode: async (id) => toNode(await storage.getNode({ nodeId: id })),
    getPath: async (id) => (await storage.getNodePath({ nodeId: id })).nodes.map((n) => toNode(n)),
    createFolder: async (parentId, name) => toNode(await storage.createFolder({ parentId, name })),
    rename: async (id, name) => toNode(await storage.updateNode({ nodeId: id, name })),
    move: async (id, parentId) => toNode(await storage.updateNode({ nodeId: id, parentId })),
    // A copy into the same folder (or onto a taken name) gets "name (1)": copying never refuses.
    copy: async (id, parentId) => toNode(await storage.copyNode({ nodeId: id, parentId, onConflict: OnConflict.RENAME })),
    remove: async (id) => void (await storage.deleteNode({ nodeId: id })),
    versions: async (fileId) =>
      (await storage.listVersions({ fileId })).versions.map((v) => ({
        id: v.id,
        number: Number(v.number),
        size: Number(v.size),
        sha256: v.sha256,
        created: date(v.createTime),
        current: v.current,
      })),
    restoreVersion: async (fileId, versionId) => void (await storage.restoreVersion({ fileId, versionId })),
    downloadUrl: (fileId, versionId) => client.downloadUrl(fileId, versionId ? { version: versionId } : undefined),
    quota: async () => {
      const q = await storage.getQuota({});
      return {
        used: Number(q.usedBytes),
        reserved: Number(q.reservedBytes),
        limit: Number(q.limitBytes),
        trash: Number(q.trashBytes),
        versions: Number(q.versionBytes),
      };
    },
    search: async (query, pageToken) => {
      const r = await storage.search({ query, pageToken: pageToken ?? '', pageSize: 100 });
      return { items: r.nodes.map((n) => toNode(n)), nextPageToken: r.nextPageToken };
    },
    upload,
    abortUpload: (uploadId) => client.abortUpload(uploadId),
  };
}
