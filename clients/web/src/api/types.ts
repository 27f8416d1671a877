/** Plain shapes the pages use, so no page depends on generated protobuf classes. */

export type NodeKind = 'folder' | 'file';

export interface FileNode {
  id: string;
  parentId: string;
  name: string;
  kind: NodeKind;
  size: number;
  created: Date | undefined;
  modified: Date | undefined;
  contentType: string;
  sha256: string;
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export type SortKey = 'name' | 'size' | 'modified';

export interface Quota {
  used: number;
  reserved: number;
  limit: number;
  trash: number;
  versions: number;
}

export interface FileVersion {
  id: string;
  number: number;
  size: number;
  sha256: string;
  created: Date | undefined;
  current: boolean;
}

export interface Me {
  id: string;
  email: string;
  displayName: string;
  totpEnabled: boolean;
  /** An administrator: the navigation offers Admin (the server checks the role on every admin call anyway). */
  admin: boolean;
}

/** An account as an administrator sees it. */
export interface AdminUser {
  id: string;
  email: string;
  displayName: string;
  admin: boolean;
  disabled: boolean;
  emailVerified: boolean;
  totpEnabled: boolean;
  created: Date | undefined;
  /** Sessions in use; known from getUser only (undefined in lists). */
  activeSessions: number | undefined;
}

/** One account's storage (GetUserQuota): bytes used (trash and old versions included), held by uploads, limit. */
export interface UserQuota {
  used: number;
  reserved: number;
  limit: number;
}

/** Filters over everyone's activity (all optional). */
export interface ActivityQuery {
  /** The account concerned. */
  subjectId?: string;
  /** A kind prefix, e.g. "login." */
  kindPrefix?: string;
  /** From (inclusive) and to (exclusive). */
  start?: Date;
  end?: Date;
}

export interface TrashItem {
  node: FileNode;
  deleted: Date | undefined;
  /** The folder a restore puts it back into (gone, or itself in the trash: it goes to My files instead). */
  originalParentId: string;
  /** Bytes it holds, all versions included: what deleting it for good frees. */
  size: number;
  /** When the automatic purge deletes it for good. */
  purgeAt: Date | undefined;
}

export type ShareRole = 'viewer' | 'downloader' | 'editor';

export interface ShareGrant {
  id: string;
  nodeId: string;
  ownerId: string;
  /** Who shared it, as auth_svc names them ('' when it could not). */
  ownerEmail: string;
  ownerName: string;
  granteeEmail: string;
  role: ShareRole;
  created: Date | undefined;
  /** The shared node as the caller sees it (incoming shares: what to open; may be missing once it is gone). */
  node: FileNode | undefined;
}

export type LinkPermission = 'view' | 'download' | 'upload';

export interface PublicLink {
  id: string;
  nodeId: string;
  token: string;
  permission: LinkPermission;
  hasPassword: boolean;
  expires: Date | undefined;
  /** 0: unlimited. */
  maxDownloads: number;
  downloadCount: number;
  created: Date | undefined;
}

export interface LinkSettings {
  permission: LinkPermission;
  /** undefined: keep (edit) / none (create); '' removes it (edit). */
  password?: string;
  /** null: remove the expiry (edit); undefined: keep (edit) / none (create). */
  expires?: Date | null;
  /** 0: unlimited. undefined: keep (edit). */
  maxDownloads?: number;
}

/** An opened public link: the session to send with every visitor call and what the link shows. */
export interface LinkVisit {
  token: string;
  session: string;
  permission: LinkPermission;
  root: FileNode;
}

export interface LinkFolder {
  items: FileNode[];
  nextPageToken: string;
  /** From the link's root down to this folder, never above the root. */
  path: FileNode[];
}

/** One signed-in device of the caller (a login's refresh-token family). */
export interface DeviceSession {
  id: string;
  /** What the device said at login (the browser's user agent, or a CLI's name). */
  device: string;
  ip: string;
  created: Date | undefined;
  lastSeen: Date | undefined;
  /** The session this browser uses. */
  current: boolean;
}

/** One entry of the activity log about the caller's account. */
export interface ActivityEntry {
  id: string;
  time: Date | undefined;
  /** Dotted, e.g. "login.ok", "password.changed", "share.created". */
  kind: string;
  ip: string;
  userAgent: string;
  details: Record<string, string>;
  /** Who did it (empty for anonymous attempts) and whose account it concerns. */
  actorId: string;
  subjectId: string;
}

/** What the activity log is narrowed to, on the server: kinds starting with one of the prefixes, a time range. */
export interface ActivityQuery {
  kindPrefixes?: readonly string[];
  /** Entries at or after this instant. */
  from?: Date;
  /** Entries before this instant. */
  to?: Date;
}

/** A started 2FA enrolment: nothing changes until a code from the authenticator confirms it. */
export interface TotpEnrollment {
  secret: string;
  uri: string;
  /** The QR code of `uri`, drawn by the server as an SVG document. */
  qrSvg: string;
}

export type LoginOutcome = { kind: 'ok' } | { kind: 'mfa'; mfaToken: string };

export type ErrorKind =
  | 'unauthenticated'
  | 'permission'
  | 'not_found'
  | 'conflict'
  | 'invalid'
  | 'quota'
  | 'too_large'
  | 'infected'
  | 'rate_limited'
  | 'unavailable'
  | 'precondition'
  | 'cancelled'
  | 'internal';
