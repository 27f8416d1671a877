import type { ActivityQuery } from '../api/types';

/**
 * A session's device in words. The web app logs in with the browser's user agent as the device name; other clients
 * (the CLI, scripts) send a name of their own, shown as it is.
 */
export function describeDevice(name: string): string {
  const ua = name.trim();
  if (!ua) return 'Unknown device';
  if (!ua.startsWith('Mozilla/')) return ua;
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /OPR\//.test(ua)
      ? 'Opera'
      : /Firefox\//.test(ua)
        ? 'Firefox'
        : /(Chrome|Chromium|CriOS)\//.test(ua)
          ? 'Chrome'
          : /Safari\//.test(ua)
            ? 'Safari'
            : 'A browser';
  const system = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad|iPod/.test(ua)
      ? 'iOS'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS X|Macintosh/.test(ua)
          ? 'macOS'
          : /CrOS/.test(ua)
            ? 'ChromeOS'
            : /Linux|X11/.test(ua)
              ? 'Linux'
              : '';
  return system ? `${browser} on ${system}` : browser;
}

/** The recovery codes as a text file's content: one a line, with what they are for. */
export function recoveryCodesText(email: string, codes: string[]): string {
  return [
    `FlowDock recovery codes for ${email}`,
    'Each code logs you in once when you cannot use your authenticator app. Keep them somewhere safe.',
    '',
    ...codes,
    '',
  ].join('\n');
}

/**
 * The server's QR code as an image URL. Its SVG is made for inlining and may lack the SVG namespace, without which a
 * browser does not draw it as an image; a data: image keeps it out of the page's DOM and within the CSP.
 */
export function svgImageUrl(svg: string): string {
  const withNs = /<svg\b[^>]*\bxmlns=/.test(svg) ? svg : svg.replace(/<svg\b/, '<svg xmlns="http://www.w3.org/2000/svg"');
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(withNs)}`;
}

/** What an activity entry's kind means, in words; kinds this app does not know yet are shown as they are. */
const ACTIVITY: Record<string, string> = {
  register: 'Account created',
  'email.verified': 'Email address confirmed',
  'email.change_requested': 'Email change asked for (link mailed)',
  'email.changed': 'Email address changed',
  'login.ok': 'Logged in',
  'login.failed': 'Failed login (wrong password)',
  'login.mfa_required': 'Password accepted, 2FA code asked for',
  'login.totp_failed': 'Failed login (wrong 2FA code)',
  logout: 'Logged out',
  'password.changed': 'Password changed',
  'password.change_failed': 'Password change refused (wrong current password)',
  'password.reset': 'Password reset from a mailed link',
  'recovery.requested': 'Password reset link asked for',
  'profile.updated': 'Display name changed',
  'session.revoked': 'A session was ended',
  'session.revoked_others': 'All other sessions were ended',
  'session.refresh_reused': 'A stale session token was used again (that session was ended)',
  'totp.enabled': 'Two-factor authentication turned on',
  'totp.disabled': 'Two-factor authentication turned off',
  'oidc.linked': 'Single sign-on linked',
  'oidc.account_created': 'Account created through single sign-on',
  'admin.role_changed': 'Role changed by an admin',
  'share.created': 'Shared with someone',
  'share.changed': 'Share changed',
  'share.revoked': 'Share removed',
  'link.created': 'Public link created',
  'link.changed': 'Public link changed',
  'link.revoked': 'Public link removed',
  'link.opened': 'Public link opened',
  'link.downloaded': 'Downloaded through a public link',
  'link.password_failed': 'Wrong password on a public link',
};

export function describeActivity(kind: string): string {
  return ACTIVITY[kind] ?? kind;
}

/** The filters Settings offers over the activity log: each is a set of kind prefixes. */
export const ACTIVITY_FILTERS = {
  all: { label: 'Everything', prefixes: [''] },
  logins: { label: 'Logins and sessions', prefixes: ['login', 'logout', 'session', 'oidc'] },
  security: { label: 'Password, email and 2FA', prefixes: ['password', 'email', 'totp', 'recovery', 'profile', 'register'] },
  sharing: { label: 'Shares and links', prefixes: ['share', 'link'] },
} as const;

export type ActivityFilter = keyof typeof ACTIVITY_FILTERS;

/**
 * The server's query for the filters Settings shows: kind prefixes, and whole local days from `from` to `to`
 * (both "YYYY-MM-DD" from a date input, '' when unset; `to` counts its whole day). An error names what is wrong.
 */
export function activityQuery(
  filter: ActivityFilter,
  from: string,
  to: string,
): { query: ActivityQuery; error?: undefined } | { query?: undefined; error: string } {
  const start = from ? new Date(`${from}T00:00:00`) : undefined;
  let end: Date | undefined;
  if (to) {
    end = new Date(`${to}T00:00:00`);
    end.setDate(end.getDate() + 1);
  }
  if (start && end && end <= start) return { error: 'The end date is before the start date.' };
  const prefixes = ACTIVITY_FILTERS[filter].prefixes.filter((p) => p !== '');
  return { query: { kindPrefixes: prefixes, from: start, to: end } };
}

export function matchesFilter(kind: string, filter: ActivityFilter): boolean {
  return ACTIVITY_FILTERS[filter].prefixes.some((p) => p === '' || kind === p || kind.startsWith(`${p}.`));
}
