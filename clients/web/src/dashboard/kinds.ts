import { describeActivity } from '../settings/format';

/** Kinds the Settings log does not word (files, administration), in words; the rest as Settings says them. */
const MORE: Record<string, string> = {
  'storage.upload': 'File uploaded',
  'storage.download': 'File downloaded',
  'storage.rename': 'Renamed',
  'storage.move': 'Moved',
  'storage.copy': 'Copied',
  'storage.delete': 'Moved to the trash',
  'storage.restore': 'Restored from the trash',
  'storage.purge': 'Deleted for good',
  'storage.version_restore': 'Old version restored',
  'storage.infected': 'Upload refused: a virus was found',
  'storage.damaged': 'Stored content found damaged (restore it from a backup)',
  'share.dropped': 'Share ended (item or account gone)',
  'authz.denied': 'Refused: administrators only',
  'admin.user_created': 'Account created by an operator',
  'admin.user_disabled': 'Account disabled by an admin',
  'admin.user_enabled': 'Account enabled by an admin',
  'admin.quota_set': 'Storage limit set by an admin',
  'admin.user_deleted': 'Account deleted by an admin',
  'login.oidc_refused': 'Single sign-on refused',
  'register.existing': 'Sign-up with an address already in use',
  'recovery.requested_unknown': 'Password reset asked for an unknown address',
};

export function describeKind(kind: string): string {
  return MORE[kind] ?? describeActivity(kind);
}

/** The kind prefixes the admin activity filter offers (ListActivity filters by one prefix). */
export const KIND_PREFIXES: { prefix: string; label: string }[] = [
  { prefix: '', label: 'Everything' },
  { prefix: 'login.', label: 'Logins' },
  { prefix: 'session.', label: 'Sessions' },
  { prefix: 'password.', label: 'Passwords' },
  { prefix: 'email.', label: 'Email addresses' },
  { prefix: 'totp.', label: 'Two-factor authentication' },
  { prefix: 'admin.', label: 'Administration' },
  { prefix: 'authz.', label: 'Refused admin attempts' },
  { prefix: 'storage.', label: 'Files' },
  { prefix: 'share.', label: 'Shares' },
  { prefix: 'link.', label: 'Public links' },
];
