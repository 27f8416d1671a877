import type { UploadJob, UploadResult } from '../upload/queue';
import type { FileNode, FileVersion, LoginOutcome, Me, Page, Quota, SortKey } from './types';

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

  // uploads
  upload(job: UploadJob): Promise<UploadResult>;
  abortUpload(uploadId: string): Promise<void>;
}
