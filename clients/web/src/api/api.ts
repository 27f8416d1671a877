import type { UploadJob, UploadResult } from '../upload/queue';
import type {
  ActivityEntry,
  ActivityQuery,
  AdminUser,
  DeviceSession,
  FileNode,
  FileVersion,
  LinkFolder,
  LinkSettings,
  LinkVisit,
  LoginOutcome,
  Me,
  Page,
  PublicLink,
  Quota,
  ShareGrant,
  ShareRole,
  SortKey,
  TotpEnrollment,
  TrashItem,
  UserQuota,
} from './types';

/** Everything the pages ask of the server; implemented over @flowdock/sdk in sdk.ts. */
export interface Api {
  // accounts
  register(email: string, password: string, displayName: string): Promise<void>;
  verifyEmail(token: string): Promise<void>;
  resendVerification(email: string): Promise<void>;
  login(email: string, password: string): Promise<LoginOutcome>;
  loginTotp(mfaToken: string, code: string): Promise<LoginOutcome>;
  /** Uses the HttpOnly refresh cookie: true when a session came back after a reload. */
  restoreSession(): Promise<boolean>;
  logout(): Promise<void>;
  me(): Promise<Me>;
  requestPasswordRecovery(email: string): Promise<void>;
  resetPassword(token: string, newPassword: string): Promise<void>;
  oidcProviders(): Promise<string[]>;
  startOidc(provider: string, redirectUri: string): Promise<string>;
  finishOidc(state: string, code: string): Promise<LoginOutcome>;
  /** Called when a refresh is refused: the pages send the person to Log in. */
  onSessionExpired(listener: () => void): void;

  // settings (the signed-in account)
  updateDisplayName(displayName: string): Promise<Me>;
  /** Mails a confirmation link to the new address; the address changes only when that link is opened. */
  changeEmail(newEmail: string, currentPassword: string): Promise<void>;
  changePassword(currentPassword: string, newPassword: string, endOtherSessions: boolean): Promise<void>;
  sessions(): Promise<DeviceSession[]>;
  endSession(sessionId: string): Promise<void>;
  /** Ends every session but this browser's; answers how many ended. */
  endOtherSessions(): Promise<number>;
  startTotp(): Promise<TotpEnrollment>;
  /** Turns 2FA on; answers the recovery codes, which the server never shows again. */
  confirmTotp(code: string): Promise<string[]>;
  disableTotp(password: string, code: string): Promise<void>;
  /** The activity log about the caller's account, newest first, filtered by the server. */
  myActivity(pageToken?: string, query?: ActivityQuery): Promise<Page<ActivityEntry>>;

  // files
  listChildren(
    folderId: string,
    opts: { sort: SortKey; descending: boolean; pageToken?: string; pageSize?: number },
  ): Promise<Page<FileNode>>;
  getNode(id: string): Promise<FileNode>;
  getPath(id: string): Promise<FileNode[]>;
  createFolder(parentId: string, name: string): Promise<FileNode>;
  rename(id: string, name: string): Promise<FileNode>;
  move(id: string, parentId: string): Promise<FileNode>;
  copy(id: string, parentId: string): Promise<FileNode>;
  remove(id: string): Promise<void>;
  versions(fileId: string): Promise<FileVersion[]>;
  restoreVersion(fileId: string, versionId: string): Promise<void>;
  /** A short-lived same-origin URL the browser downloads itself (the bytes never sit in page memory). */
  downloadUrl(fileId: string, versionId?: string): Promise<string>;
  quota(): Promise<Quota>;
  search(query: string, pageToken?: string): Promise<Page<FileNode>>;

  // trash
  listTrash(pageToken?: string): Promise<Page<TrashItem>>;
  /** Puts it back; the answer says under which name and where it landed. */
  restoreTrash(id: string): Promise<FileNode>;
  /** Deletes one entry for good; answers the bytes freed. */
  purgeTrash(id: string): Promise<number>;
  emptyTrash(): Promise<number>;

  // shares (the caller's own nodes with other accounts)
  share(nodeId: string, email: string, role: ShareRole): Promise<ShareGrant>;
  changeShareRole(shareId: string, role: ShareRole): Promise<ShareGrant>;
  revokeShare(shareId: string): Promise<void>;
  /** Every share the caller made (all pages). */
  outgoingShares(): Promise<ShareGrant[]>;
  incomingShares(pageToken?: string): Promise<Page<ShareGrant>>;

  // public links
  createLink(nodeId: string, settings: LinkSettings): Promise<PublicLink>;
  updateLink(linkId: string, settings: Partial<LinkSettings>): Promise<PublicLink>;
  revokeLink(linkId: string): Promise<void>;
  /** Every live link of the caller (all pages). */
  links(): Promise<PublicLink[]>;

  // visiting a public link (no account)
  openLink(token: string, password: string): Promise<LinkVisit>;
  listLinkFolder(visit: Pick<LinkVisit, 'token' | 'session'>, folderId: string, pageToken?: string): Promise<LinkFolder>;
  /** A plain GET URL for a file under the link: the browser streams it to disk. */
  linkDownloadUrl(visit: LinkVisit, fileId: string): string;
  /** Drops a file into an upload-only link's folder (named anew by the server on a clash). */
  uploadToLink(
    visit: LinkVisit,
    file: File,
    opts: { signal?: AbortSignal; onProgress?: (sent: number, total: number) => void },
  ): Promise<void>;

  // administration (admins only: the server answers PERMISSION_DENIED to anyone else)
  listUsers(query: string, pageToken?: string): Promise<Page<AdminUser>>;
  getUser(userId: string): Promise<AdminUser>;
  setUserAdmin(userId: string, admin: boolean): Promise<AdminUser>;
  /** Disabling ends every session of the account at once. */
  setUserDisabled(userId: string, disabled: boolean): Promise<AdminUser>;
  userQuota(userId: string): Promise<UserQuota>;
  /** 0 sets the configured default. */
  setUserQuota(userId: string, limitBytes: number): Promise<UserQuota>;
  /** Deletes the account and its files; answers the bytes freed. */
  deleteUser(userId: string): Promise<number>;
  /** Everyone's activity, newest first. */
  activity(query: ActivityQuery, pageToken?: string): Promise<Page<ActivityEntry>>;

  // uploads
  upload(job: UploadJob): Promise<UploadResult>;
  abortUpload(uploadId: string): Promise<void>;
}
