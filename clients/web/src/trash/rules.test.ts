import { describe, expect, it } from 'vitest';
import type { TrashItem } from '../api/types';
import { locationName, purgeIn, restoredMessage, retentionDays } from './rules';

const item = (deleted: string, purgeAt: string): TrashItem => ({
  node: { id: 'n', parentId: 'p', name: 'a', kind: 'file', size: 1, created: undefined, modified: undefined, contentType: '', sha256: '' },
  deleted: new Date(deleted),
  originalParentId: 'p',
  size: 1,
  purgeAt: new Date(purgeAt),
});

describe('trash rules', () => {
  it('reads the retention off an entry', () => {
    expect(retentionDays([item('2026-01-01T10:00:00Z', '2026-01-31T10:00:00Z')])).toBe(30);
    expect(retentionDays([item('2026-01-01T10:00:00Z', '2026-01-08T10:00:00Z')])).toBe(7);
    expect(retentionDays([])).toBeUndefined();
  });

  it('says how soon the purge comes', () => {
    const now = new Date('2026-01-01T10:00:00Z');
    expect(purgeIn(new Date('2026-01-11T09:00:00Z'), now)).toBe('Deleted for good in 10 days');
    expect(purgeIn(new Date('2026-01-02T09:00:00Z'), now)).toBe('Deleted for good within a day');
    expect(purgeIn(new Date('2026-01-01T09:00:00Z'), now)).toBe('Deleted for good soon');
    expect(purgeIn(undefined, now)).toBe('');
  });

  it('names the new name when a restore had to rename', () => {
    expect(restoredMessage('a.txt', 'a.txt', 'My files')).toBe('“a.txt” is back in My files.');
    expect(restoredMessage('a.txt', 'a (1).txt', 'My files / Docs')).toBe(
      '“a.txt” is back in My files / Docs as “a (1).txt”: an item with its name was already there.',
    );
  });

  it('shows a location from the root down', () => {
    expect(locationName([{ name: '' }])).toBe('My files');
    expect(locationName([{ name: '' }, { name: 'Docs' }, { name: '2024' }])).toBe('My files / Docs / 2024');
  });
});
