import type { LinkPermission, ShareRole } from '../api/types';

/** What each role may do, in the words the share dialog shows (the server enforces the same rules). */
export const ROLES: readonly { role: ShareRole; label: string; explains: string }[] = [
  { role: 'viewer', label: 'Viewer', explains: 'Sees the names, sizes and folders. Cannot download, upload or change anything.' },
  { role: 'downloader', label: 'Downloader', explains: 'Sees everything and downloads files. Cannot upload or change anything.' },
  {
    role: 'editor',
    label: 'Editor',
    explains: 'Sees, downloads, uploads, makes folders and renames inside it. Cannot share it with anyone else.',
  },
];

export const roleLabel = (role: ShareRole): string => ROLES.find((r) => r.role === role)?.label ?? role;

export type SharedAction = 'download' | 'upload' | 'rename' | 'new-folder';

/** The actions a grantee is offered: nothing the role does not allow (a viewer gets no Download button). */
export function allowed(role: ShareRole | undefined, action: SharedAction): boolean {
  if (!role) return false;
  if (action === 'download') return role === 'downloader' || role === 'editor';
  return role === 'editor';
}

export const PERMISSIONS: readonly { permission: LinkPermission; label: string; explains: string }[] = [
  { permission: 'view', label: 'View', explains: 'Visitors see the names and sizes, and cannot download.' },
  { permission: 'download', label: 'View and download', explains: 'Visitors see everything and download files.' },
  {
    permission: 'upload',
    label: 'Upload only (file drop)',
    explains: 'Visitors can drop files into the folder and never see what is in it. Folders only.',
  },
];

export const permissionLabel = (p: LinkPermission): string => PERMISSIONS.find((x) => x.permission === p)?.label ?? p;

/** "3 of 5 downloads used" / "3 downloads": the count against the limit, when there is one. */
export function downloadsUsed(count: number, max: number): string {
  if (max > 0) return `${count} of ${max} downloads used`;
  return `${count} ${count === 1 ? 'download' : 'downloads'}`;
}
