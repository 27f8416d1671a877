import { FlowDockError } from '@flowdock/sdk';
import { describe, expect, it } from 'vitest';
import { describeError, fieldError } from './errors';

describe('describeError', () => {
  it('names the quota numbers', () => {
    const e = new FlowDockError({ kind: 'quota', message: 'storage quota of 1073741824 bytes exceeded: 1048576 used', usedBytes: 1048576, limitBytes: 1073741824 });
    expect(describeError(e)).toBe(
      'Not enough storage: 1.0 MiB of your 1.0 GiB are used. Empty the trash or delete old versions, or ask an admin for more space.',
    );
  });

  it('names the virus signature', () => {
    const e = new FlowDockError({ kind: 'infected', message: 'virus found: Eicar-Signature; the content was destroyed', signature: 'Eicar-Signature' });
    expect(describeError(e)).toBe('A virus was found in this file (Eicar-Signature); it was not stored.');
  });

  it('puts the field violation at its field, as a sentence', () => {
    const e = new FlowDockError({
      kind: 'invalid',
      message: 'password: must be at least 8 characters',
      field: 'password',
      details: { fieldViolations: [{ field: 'password', description: 'must be at least 8 characters' }] },
    });
    expect(fieldError(e, 'password')).toBe('Must be at least 8 characters');
    expect(fieldError(e, 'email')).toBeUndefined();
    expect(describeError(e)).toBe('Password must be at least 8 characters');
  });

  it('never shows a status code', () => {
    for (const kind of ['unauthenticated', 'permission', 'not_found', 'conflict', 'unavailable', 'internal', 'rate_limited'] as const) {
      const text = describeError(new FlowDockError({ kind, message: 'code 14 UNAVAILABLE', code: 14 }));
      expect(text).not.toMatch(/\b(1[0-6]|[1-9])\b|UNAVAILABLE|status/);
    }
    expect(describeError(new TypeError('Failed to fetch'))).toMatch(/cannot be reached/);
  });
});
