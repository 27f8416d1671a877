import { describe, expect, it } from 'vitest';
import { allowed, downloadsUsed } from './roles';

describe('roles', () => {
  it('offers a viewer nothing but browsing', () => {
    for (const a of ['download', 'upload', 'rename', 'new-folder'] as const) expect(allowed('viewer', a)).toBe(false);
  });

  it('offers a downloader downloads only', () => {
    expect(allowed('downloader', 'download')).toBe(true);
    expect(allowed('downloader', 'upload')).toBe(false);
    expect(allowed('downloader', 'rename')).toBe(false);
  });

  it('offers an editor downloads, uploads, folders and renames', () => {
    for (const a of ['download', 'upload', 'rename', 'new-folder'] as const) expect(allowed('editor', a)).toBe(true);
    expect(allowed(undefined, 'download')).toBe(false);
  });

  it('counts downloads against the limit', () => {
    expect(downloadsUsed(1, 1)).toBe('1 of 1 downloads used');
    expect(downloadsUsed(1, 0)).toBe('1 download');
    expect(downloadsUsed(0, 0)).toBe('0 downloads');
  });
});
