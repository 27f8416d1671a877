import { formatBytes } from '../upload/queue';
import type { ErrorKind } from './types';

/**
 * Any error from the API, reduced to what a page needs: a kind to branch on, the server's own sentence, and the
 * field it names. Pages show `describeError(...)`, never a status code.
 */
export interface AppErrorShape {
  kind: ErrorKind;
  message: string;
  field?: string;
  signature?: string;
  usedBytes?: number;
  limitBytes?: number;
}

const KINDS: readonly ErrorKind[] = [
  'unauthenticated',
  'permission',
  'not_found',
  'conflict',
  'invalid',
  'quota',
  'too_large',
  'infected',
  'rate_limited',
  'unavailable',
  'precondition',
  'cancelled',
  'internal',
];

export function asAppError(error: unknown): AppErrorShape {
  if (typeof error === 'object' && error !== null) {
    const e = error as Record<string, unknown>;
    if (typeof e.kind === 'string' && (KINDS as readonly string[]).includes(e.kind)) {
      // FlowDockError: the field violation's description is the sentence without the "field: " prefix.
      const violations = (e.details as { fieldViolations?: { field: string; description: string }[] } | undefined)
        ?.fieldViolations;
      const field = typeof e.field === 'string' ? e.field : violations?.[0]?.field;
      const described = violations?.find((v) => v.field === field)?.description;
      return {
        kind: e.kind as ErrorKind,
        message: described ?? (typeof e.message === 'string' ? e.message : ''),
        field,
        signature: typeof e.signature === 'string' ? e.signature : undefined,
        usedBytes: typeof e.usedBytes === 'number' ? e.usedBytes : undefined,
        limitBytes: typeof e.limitBytes === 'number' ? e.limitBytes : undefined,
      };
    }
    if (e.name === 'AbortError') return { kind: 'cancelled', message: 'cancelled' };
  }
  if (error instanceof TypeError) return { kind: 'unavailable', message: error.message };
  return { kind: 'internal', message: error instanceof Error ? error.message : String(error) };
}

/** How the fields the server names read in a sentence ("Name must not end with a dot"). */
const FIELD_LABELS: Record<string, string> = {
  name: 'Name',
  relative_path: 'Name',
  password: 'Password',
  new_password: 'Password',
  current_password: 'Current password',
  new_email: 'Email',
  email: 'Email',
  display_name: 'Name',
  code: 'Code',
  grantee_email: 'Email',
  expire_time: 'Expiry',
  max_downloads: 'Download limit',
};

/** The server's sentence with its leading "field: " cut, capitalised. */
function sentence(text: string): string {
  const t = text.trim();
  return t ? t.charAt(0).toUpperCase() + t.slice(1) : t;
}

export function describeError(error: unknown): string {
  const e = asAppError(error);
  switch (e.kind) {
    case 'unauthenticated':
      return 'Your session has ended. Please log in again.';
    case 'permission':
      return 'You are not allowed to do that.';
    case 'not_found':
      return 'Not found: it may have been moved or deleted.';
    case 'conflict':
      return 'An item with this name already exists here.';
    case 'invalid': {
      const label = e.field ? FIELD_LABELS[e.field] : undefined;
      if (!e.message) return 'Please check what you entered.';
      return label ? `${label} ${e.message}` : sentence(e.message);
    }
    case 'quota':
      if (e.usedBytes !== undefined && e.limitBytes !== undefined) {
        return (
          `Not enough storage: ${formatBytes(e.usedBytes)} of your ${formatBytes(e.limitBytes)} are used. ` +
          'Empty the trash or delete old versions, or ask an admin for more space.'
        );
      }
      return e.message ? `Not enough storage: ${e.message}.` : 'Your storage is full.';
    case 'too_large':
      return e.message ? `Too large: ${e.message}.` : 'This file is too large.';
    case 'infected':
      return `A virus was found in this file${e.signature ? ` (${e.signature})` : ''}; it was not stored.`;
    case 'rate_limited':
      return 'Too many attempts. Please wait a moment and try again.';
    case 'unavailable':
      return 'The server cannot be reached. Check your connection; we will keep trying.';
    case 'precondition':
      return e.message ? sentence(e.message) : 'This cannot be done right now.';
    case 'cancelled':
      return 'Cancelled.';
    default:
      return 'Something went wrong on the server. Please try again later.';
  }
}

/** The message for one field of a form, when the server named it. */
export function fieldError(error: unknown, ...fields: string[]): string | undefined {
  const e = asAppError(error);
  if (e.kind === 'invalid' && e.field && fields.includes(e.field)) return sentence(e.message);
  return undefined;
}
