import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { AuthService, type LoginResponse } from '../../../ts/src/gen/flowdock/auth/v1/auth_pb';
import {
  NodeKind,
  OnConflict,
  OrderBy,
  StorageService,
  UploadState,
  type Node,
  type Upload,
} from '../../../ts/src/gen/flowdock/storage/v1/storage_pb';
import { BadRequestSchema } from '../../../ts/src/gen/google/rpc/error_details_pb';
import type { UploadJob, UploadResult } from '../upload/queue';
import type { Api } from './api';
import type { ErrorKind, FileNode, LoginOutcome } from './types';

class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly field?: string,
    readonly signature?: string,
  ) {
    super(message);
  }
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ConnectError && err.cause instanceof ApiError) return err.cause;
  if (err instanceof TypeError) return new ApiError('unavailable', 'network');
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unknown && ce.cause instanceof TypeError) return new ApiError('unavailable', 'network');
  const violation = ce.findDetails(BadRequestSchema)[0]?.fieldViolations[0];
  const msg = ce.rawMessage;
  switch (ce.code) {
    case Code.Unauthenticated:
      return new ApiError('unauthenticated', msg);
    case Code.PermissionDenied:
      return new ApiError('permission', msg);
    case Code.NotFound:
      return new ApiError('not_found', msg);
    case Code.AlreadyExists:
      return new ApiError('conflict', msg);
    case Code.InvalidArgument:
      return new ApiError('invalid', violation?.description ?? msg, violation?.field);
    case Code.ResourceExhausted:
      if (/quota/.test(msg)) return new ApiError('quota', msg);
      if (/_bytes/.test(msg)) return new ApiError('too_large', msg);
      return new ApiError('rate_limited', msg);
    case Code.FailedPrecondition:
      return new ApiError('precondition', msg);
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return new ApiError('unavailable', msg);
    case Code.Canceled:
      return new ApiError('cancelled', msg);
    default:
      return new ApiError('internal', msg);
  }
}

const date = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);

function toNode(n: Node): FileNode {
  return {
    id: n.id,
    parentId: n.parentId,
    name: n.name,
    kind: n.kind === NodeKind.FOLDER ? 'folder' : 'file',
    size: Number(n.size),
    created: date(n.createTime),
    modified: date(n.modifyTime),
    contentType: n.contentType,
    sha256: n.sha256,
  };
}

const PUBLIC = new Set([
  'Register',
  'VerifyEmail',
  'ResendVerification',
  'Login',
  'LoginTotp',
  'Refresh',
  'RequestPasswordRecovery',
  'ResetPassword',
  'ListOidcProviders',
  'StartOidcLogin',
  'FinishOidcLogin',
]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createSdkApi(baseUrl: string): Api {
  // Memory only: a reload restores the session through the HttpOnly refresh cookie.
  let accessToken: string | undefined;
  let refreshToken: string | undefined;
  let refreshing: Promise<boolean> | undefined;
  const expiredListeners = new Set<() => void>();

  const auth: Interceptor = (next) => async (req) => {
    const method = req.method.name;
    req.header.set('x-flowdock-cookie-session', '1');
    if (PUBLIC.has(method)) return next(req);
    if (accessToken) req.header.set('authorization', `Bearer ${accessToken}`);
    try {
      return await next(req);
    } catch (err) {
      if (!(err instanceof ConnectError) || err.code !== Code.Unauthenticated) throw err;
      if (!(await refresh())) {
        for (const l of expiredListeners) l();
        throw err;
      }
      req.header.set('authorization', `Bearer ${accessToken}`);
      return next(req);
    }
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [auth], fetch: (i, init) => fetch(i, { ...init, credentials: 'same-origin' }) });
  const authClient = createClient(AuthService, transport);
  const storage = createClient(StorageService, transport);

  const accept = (r: LoginResponse): LoginOutcome => {
    if (r.mfaRequired) return { kind: 'mfa', mfaToken: r.mfaToken };
    accessToken = r.accessToken;
    refreshToken = r.refreshToken || undefined;
    return { kind: 'ok' };
  };

  function refresh(): Promise<boolean> {
    refreshing ??= (async () => {
      try {
        accept(await authClient.refresh({ refreshToken: refreshToken ?? '' }));
        return true;
      } catch {
        accessToken = undefined;
        refreshToken = undefined;
        return false;
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  }

  const call = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw toApiError(err);
    }
  };

  async function finish(uploadId: string, signal: AbortSignal): Promise<UploadResult> {
    let up: Upload = await storage.finishUpload({ uploadId }, { signal });
    while (up.state === UploadState.FINISHING) {
      await sleep(400);
      up = await storage.getUpload({ uploadId }, { signal });
    }
    if (up.state === UploadState.COMPLETED && up.node) return { nodeId: up.node.id };
    const virus = /^virus found: (.+?);/.exec(up.failure);
    if (virus) throw new ApiError('infected', up.failure, undefined, virus[1]);
    throw new ApiError('precondition', up.failure || 'the upload was refused');
  }

  async function upload(job: UploadJob): Promise<UploadResult> {
    const { file, signal } = job;
    let up: Upload | undefined;
    if (job.resumeUploadId) {
      try {
        up = await storage.getUpload({ uploadId: job.resumeUploadId }, { signal });
      } catch (err) {
        if (toApiError(err).kind !== 'not_found') throw err;
      }
      if (up && up.state === UploadState.COMPLETED && up.node) return { nodeId: up.node.id };
      if (up && up.state === UploadState.FAILED) up = undefined;
    }
    if (!up) {
      up = await storage.createUpload(
        {
          parentId: job.parentId,
          name: job.relativePath ? '' : file.name,
          relativePath: job.relativePath,
          size: BigInt(file.size),
          contentType: file.type,
          onConflict:
            job.onConflict === 'rename'
              ? OnConflict.RENAME
              : job.onConflict === 'replace'
                ? OnConflict.NEW_VERSION
                : OnConflict.FAIL,
        },
        { signal },
      );
      job.onUploadId(up.uploadId);
      if (up.state === UploadState.COMPLETED && up.node) return { nodeId: up.node.id };
    }
    if (up.state === UploadState.FINISHING) return finish(up.uploadId, signal);
    const chunk = Number(up.chunkSize) || 1 << 20;
    let offset = Number(up.committedSize);
    job.onProgress(offset);
    while (offset < file.size) {
      // One chunk at a time from disk: the file is never whole in memory.
      const data = new Uint8Array(await file.slice(offset, Math.min(file.size, offset + chunk)).arrayBuffer());
      try {
        const r = await storage.writeUploadChunk({ uploadId: up.uploadId, offset: BigInt(offset), data }, { signal });
        offset = Number(r.committedSize);
      } catch (err) {
        if (toApiError(err).kind !== 'precondition') throw err;
        // The server has more (or less) than we thought, e.g. a chunk landed before the connection dropped.
        offset = Number((await storage.getUpload({ uploadId: up.uploadId }, { signal })).committedSize);
      }
      job.onProgress(offset);
    }
    job.onFinishing();
    return finish(up.uploadId, signal);
  }

  const order = { name: OrderBy.NAME, size: OrderBy.SIZE, modified: OrderBy.MODIFIED } as const;

  return {
    register: (email, password, displayName) => call(async () => void (await authClient.register({ email, password, displayName }))),
    verifyEmail: (token) => call(async () => void (await authClient.verifyEmail({ token }))),
    resendVerification: (email) => call(async () => void (await authClient.resendVerification({ email }))),
    login: (email, password) =>
      call(async () => accept(await authClient.login({ email, password, deviceName: navigator.userAgent.slice(0, 100) }))),
    loginTotp: (mfaToken, code) => call(async () => accept(await authClient.loginTotp({ mfaToken, code }))),
    restoreSession: () => refresh(),
    logout: () =>
      call(async () => {
        try {
          if (accessToken) await authClient.logout({}, { headers: { authorization: `Bearer ${accessToken}` } });
        } finally {
          accessToken = undefined;
          refreshToken = undefined;
        }
      }),
    me: () =>
      call(async () => {
        const u = await authClient.getMe({});
        return { id: u.id, email: u.email, displayName: u.displayName, totpEnabled: u.totpEnabled };
      }),
    requestPasswordRecovery: (email) => call(async () => void (await authClient.requestPasswordRecovery({ email }))),
    resetPassword: (token, newPassword) => call(async () => void (await authClient.resetPassword({ token, newPassword }))),
    oidcProviders: () => call(async () => (await authClient.listOidcProviders({})).providers),
    startOidc: (provider, redirectUri) =>
      call(async () => (await authClient.startOidcLogin({ provider, redirectUri })).authorizationUrl),
    finishOidc: (state, code) =>
      call(async () => accept(await authClient.finishOidcLogin({ state, code, deviceName: navigator.userAgent.slice(0, 100) }))),
    onSessionExpired: (listener) => {
      expiredListeners.clear();
      expiredListeners.add(listener);
    },
    listChildren: (folderId, opts) =>
      call(async () => {
        const r = await storage.listChildren({
          folderId,
          orderBy: order[opts.sort],
          descending: opts.descending,
          pageToken: opts.pageToken ?? '',
          pageSize: opts.pageSize ?? 200,
        });
        return { items: r.nodes.map(toNode), nextPageToken: r.nextPageToken };
      }),
    getNode: (id) => call(async () => toNode(await storage.getNode({ nodeId: id }))),
    getPath: (id) => call(async () => (await storage.getNodePath({ nodeId: id })).nodes.map(toNode)),
    createFolder: (parentId, name) => call(async () => toNode(await storage.createFolder({ parentId, name }))),
    rename: (id, name) => call(async () => toNode(await storage.updateNode({ nodeId: id, name }))),
    move: (id, parentId) => call(async () => toNode(await storage.updateNode({ nodeId: id, parentId }))),
    copy: (id, parentId) =>
      call(async () => toNode(await storage.copyNode({ nodeId: id, parentId, onConflict: OnConflict.RENAME }))),
    remove: (id) => call(async () => void (await storage.deleteNode({ nodeId: id }))),
    versions: (fileId) =>
      call(async () =>
        (await storage.listVersions({ fileId })).versions.map((v) => ({
          id: v.id,
          number: Number(v.number),
          size: Number(v.size),
          sha256: v.sha256,
          created: date(v.createTime),
          current: v.current,
        })),
      ),
    restoreVersion: (fileId, versionId) => call(async () => void (await storage.restoreVersion({ fileId, versionId }))),
    downloadUrl: (fileId, versionId) =>
      call(async () => new URL((await storage.createDownloadUrl({ fileId, version: versionId ?? '' })).url, baseUrl).toString()),
    quota: () =>
      call(async () => {
        const q = await storage.getQuota({});
        return {
          used: Number(q.usedBytes),
          reserved: Number(q.reservedBytes),
          limit: Number(q.limitBytes),
          trash: Number(q.trashBytes),
          versions: Number(q.versionBytes),
        };
      }),
    search: (query, pageToken) =>
      call(async () => {
        const r = await storage.search({ query, pageToken: pageToken ?? '', pageSize: 100 });
        return { items: r.nodes.map(toNode), nextPageToken: r.nextPageToken };
      }),
    upload: (job) => call(() => upload(job)),
    abortUpload: (uploadId) => call(async () => void (await storage.abortUpload({ uploadId }))),
  };
}
