import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  LinkPermission as PbLinkPermission,
  NodeKind,
  OnConflict,
  OrderBy,
  Role,
  ShareRole as PbShareRole,
  authPb,
  createClient,
  type FlowDockClient,
  type Link,
  type LoginResult,
  type Node,
  type Share,
  type User,
} from '@flowdock/sdk';
import type { UploadJob, UploadResult } from '../upload/queue';
import type { Api } from './api';
import type {
  ActivityEntry,
  AdminUser,
  FileNode,
  LinkPermission,
  LoginOutcome,
  Me,
  PublicLink,
  ShareGrant,
  ShareRole,
  UserQuota,
} from './types';

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

const ROLES: Record<ShareRole, PbShareRole> = {
  viewer: PbShareRole.VIEWER,
  downloader: PbShareRole.DOWNLOADER,
  editor: PbShareRole.EDITOR,
};
const roleOf = (r: PbShareRole): ShareRole =>
  r === PbShareRole.EDITOR ? 'editor' : r === PbShareRole.DOWNLOADER ? 'downloader' : 'viewer';

function toShare(s: Share): ShareGrant {
  return {
    id: s.id,
    nodeId: s.nodeId,
    ownerId: s.ownerId,
    ownerEmail: s.ownerEmail,
    ownerName: s.ownerDisplayName,
    granteeEmail: s.granteeEmail,
    role: roleOf(s.role),
    created: date(s.createTime),
    node: s.node ? toNode(s.node) : undefined,
  };
}

const PERMISSIONS: Record<LinkPermission, PbLinkPermission> = {
  view: PbLinkPermission.VIEW,
  download: PbLinkPermission.DOWNLOAD,
  upload: PbLinkPermission.UPLOAD,
};
const permissionOf = (p: PbLinkPermission): LinkPermission =>
  p === PbLinkPermission.UPLOAD ? 'upload' : p === PbLinkPermission.DOWNLOAD ? 'download' : 'view';

function toLink(l: Link): PublicLink {
  return {
    id: l.id,
    nodeId: l.nodeId,
    token: l.token,
    permission: permissionOf(l.permission),
    hasPassword: l.hasPassword,
    expires: date(l.expireTime),
    maxDownloads: l.maxDownloads,
    downloadCount: l.downloadCount,
    created: date(l.createTime),
  };
}

/** Every page of a listing that answers page tokens. */
async function allPages<T>(fetchPage: (token: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let token = '';
  do {
    const page = await fetchPage(token);
    out.push(...page.items);
    token = page.next;
  } while (token);
  return out;
}

const toMe = (u: User): Me => ({
  id: u.id,
  email: u.email,
  displayName: u.displayName,
  totpEnabled: u.totpEnabled,
  admin: u.role === Role.ADMIN,
});

const toAdminUser = (u: User): AdminUser => ({
  id: u.id,
  email: u.email,
  displayName: u.displayName,
  admin: u.role === Role.ADMIN,
  disabled: u.disabled,
  emailVerified: u.emailVerified,
  totpEnabled: u.totpEnabled,
  created: date(u.createTime),
  activeSessions: undefined,
});

const toUserQuota = (q: authPb.UserQuota): UserQuota => ({
  used: Number(q.usedBytes),
  reserved: Number(q.reservedBytes),
  limit: Number(q.limitBytes),
});

const toActivity = (e: authPb.ActivityEvent): ActivityEntry => ({
  id: e.id,
  time: date(e.time),
  kind: e.kind,
  ip: e.ip,
  userAgent: e.userAgent,
  details: { ...e.details },
  actorId: e.actorId,
  subjectId: e.subjectId,
});

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
  const { auth, storage, share, publicLinks } = client;

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
    me: async () => toMe(await auth.getMe({})),
    requestPasswordRecovery: async (email) => void (await auth.requestPasswordRecovery({ email })),
    resetPassword: async (token, newPassword) => void (await auth.resetPassword({ token, newPassword })),
    oidcProviders: async () => (await auth.listOidcProviders({})).providers,
    startOidc: async (provider, redirectUri) => (await auth.startOidcLogin({ provider, redirectUri })).authorizationUrl,
    finishOidc: async (state, code) => outcome(await client.finishOidcLogin(state, code, deviceName())),
    onSessionExpired: (listener) => {
      expiredListeners.clear();
      expiredListeners.add(listener);
    },

    updateDisplayName: async (displayName) => toMe(await auth.updateMe({ displayName })),
    changeEmail: async (newEmail, currentPassword) => void (await auth.changeEmail({ newEmail, currentPassword })),
    changePassword: async (currentPassword, newPassword, endOtherSessions) =>
      void (await auth.changePassword({ currentPassword, newPassword, revokeOtherSessions: endOtherSessions })),
    sessions: async () =>
      (await auth.listSessions({})).sessions.map((s) => ({
        id: s.id,
        device: s.deviceName,
        ip: s.ip,
        created: date(s.createTime),
        lastSeen: date(s.lastSeenTime),
        current: s.current,
      })),
    endSession: async (sessionId) => void (await auth.revokeSession({ sessionId })),
    endOtherSessions: async () => (await auth.revokeOtherSessions({})).revoked,
    startTotp: async () => {
      const r = await auth.startTotpEnrollment({});
      return { secret: r.secret, uri: r.otpauthUri, qrSvg: r.qrSvg };
    },
    confirmTotp: async (code) => (await auth.confirmTotp({ code })).recoveryCodes,
    disableTotp: async (password, code) => void (await auth.disableTotp({ password, code })),
    myActivity: async (pageToken, query = {}) => {
      const r = await auth.listMyActivity({
        pageToken: pageToken ?? '',
        pageSize: 50,
        kindPrefixes: [...(query.kindPrefixes ?? [])],
        startTime: query.from ? timestampFromDate(query.from) : undefined,
        endTime: query.to ? timestampFromDate(query.to) : undefined,
      });
      return { items: r.events.map(toActivity), nextPageToken: r.nextPageToken };
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
    listTrash: async (pageToken) => {
      const r = await storage.listTrash({ pageToken: pageToken ?? '', pageSize: 200 });
      return {
        items: r.entries.map((e) => ({
          node: toNode(e.node!),
          deleted: date(e.deleteTime),
          originalParentId: e.originalParentId,
          size: Number(e.size),
          purgeAt: date(e.purgeTime),
        })),
        nextPageToken: r.nextPageToken,
      };
    },
    restoreTrash: async (id) => toNode(await storage.restoreTrash({ nodeId: id })),
    purgeTrash: async (id) => Number((await storage.purgeTrash({ nodeId: id })).freedBytes),
    emptyTrash: async () => Number((await storage.emptyTrash({})).freedBytes),

    share: async (nodeId, email, role) => toShare(await share.createShare({ nodeId, granteeEmail: email, role: ROLES[role] })),
    changeShareRole: async (shareId, role) => toShare(await share.updateShare({ shareId, role: ROLES[role] })),
    revokeShare: async (shareId) => void (await share.deleteShare({ shareId })),
    outgoingShares: () =>
      allPages(async (pageToken) => {
        const r = await share.listOutgoingShares({ pageToken, pageSize: 200 });
        return { items: r.shares.map(toShare), next: r.nextPageToken };
      }),
    incomingShares: async (pageToken) => {
      const r = await share.listIncomingShares({ pageToken: pageToken ?? '', pageSize: 200 });
      return { items: r.shares.map(toShare), nextPageToken: r.nextPageToken };
    },

    createLink: async (nodeId, s) =>
      toLink(
        await share.createLink({
          nodeId,
          permission: PERMISSIONS[s.permission],
          password: s.password ?? '',
          expireTime: s.expires ? timestampFromDate(s.expires) : undefined,
          maxDownloads: s.maxDownloads ?? 0,
        }),
      ),
    updateLink: async (linkId, s) =>
      toLink(
        await share.updateLink({
          linkId,
          permission: s.permission ? PERMISSIONS[s.permission] : PbLinkPermission.UNSPECIFIED,
          password: s.password,
          expireTime: s.expires ? timestampFromDate(s.expires) : undefined,
          clearExpireTime: s.expires === null,
          maxDownloads: s.maxDownloads,
        }),
      ),
    revokeLink: async (linkId) => void (await share.deleteLink({ linkId })),
    links: () =>
      allPages(async (pageToken) => {
        const r = await share.listLinks({ pageToken, pageSize: 200 });
        return { items: r.links.map(toLink), next: r.nextPageToken };
      }),

    openLink: async (token, password) => {
      const r = await share.openLink({ token, password });
      return { token, session: r.linkSession, permission: permissionOf(r.permission), root: toNode(r.root!) };
    },
    listLinkFolder: async (visit, folderId, pageToken) => {
      const r = await publicLinks.listLinkChildren({
        token: visit.token,
        session: visit.session,
        folderId,
        pageToken: pageToken ?? '',
        pageSize: 500,
      });
      return { items: r.nodes.map((n) => toNode(n)), nextPageToken: r.nextPageToken, path: r.path.map((n) => toNode(n)) };
    },
    linkDownloadUrl: (visit, fileId) => {
      const url = new URL(
        `/api/v1/public/links/${encodeURIComponent(visit.token)}/files/${encodeURIComponent(fileId)}/content`,
        client.baseUrl + '/',
      );
      if (visit.session) url.searchParams.set('session', visit.session);
      return url.href;
    },
    uploadToLink: async (visit, file, opts) =>
      void (await client.uploadToLink(visit.token, visit.session, file, {
        contentType: file.type || undefined,
        signal: opts.signal,
        onProgress: opts.onProgress ? (p) => opts.onProgress!(p.committedBytes, p.totalBytes) : undefined,
      })),

    listUsers: async (query, pageToken) => {
      const r = await auth.listUsers({ query, pageToken: pageToken ?? '', pageSize: 25 });
      return { items: r.users.map(toAdminUser), nextPageToken: r.nextPageToken };
    },
    getUser: async (userId) => {
      const u = await auth.getUser({ userId });
      return { ...toAdminUser(u), activeSessions: u.activeSessions };
    },
    setUserAdmin: async (userId, admin) =>
      toAdminUser(await auth.setUserRole({ userId, role: admin ? Role.ADMIN : Role.USER })),
    setUserDisabled: async (userId, disabled) => toAdminUser(await auth.setUserDisabled({ userId, disabled })),
    userQuota: async (userId) => toUserQuota(await auth.getUserQuota({ userId })),
    setUserQuota: async (userId, limitBytes) => toUserQuota(await auth.setUserQuota({ userId, limitBytes: BigInt(limitBytes) })),
    deleteUser: async (userId) => Number((await auth.deleteUser({ userId })).freedBytes),
    activity: async (q, pageToken) => {
      const r = await auth.listActivity({
        subjectId: q.subjectId ?? '',
        kindPrefix: q.kindPrefix ?? '',
        startTime: q.start ? timestampFromDate(q.start) : undefined,
        endTime: q.end ? timestampFromDate(q.end) : undefined,
        pageToken: pageToken ?? '',
        pageSize: 50,
      });
      return { items: r.events.map(toActivity), nextPageToken: r.nextPageToken };
    },

    upload,
    abortUpload: (uploadId) => client.abortUpload(uploadId),
  };
}
