import { describe, expect, it } from 'vitest';
import type { ActivityEntry } from '../api/types';
import { recentUploads, usageOf } from './usage';

const GiB = 2 ** 30;

describe('usageOf', () => {
  it('splits used into files, old versions and trash, with uploads on top', () => {
    const u = usageOf({ used: 6 * GiB, trash: 1 * GiB, versions: 2 * GiB, reserved: 1 * GiB, limit: 10 * GiB });
    expect(u.parts.map((p) => [p.key, p.bytes / GiB, Math.round(p.percent)])).toEqual([
      ['files', 3, 30],
      ['versions', 2, 20],
      ['trash', 1, 10],
      ['uploads', 1, 10],
    ]);
    expect(u.total).toBe(7 * GiB);
    expect(u.free).toBe(3 * GiB);
    expect(u.percent).toBe(70);
  });

  it('never draws more than the bar when over the limit', () => {
    const u = usageOf({ used: 12 * GiB, trash: 0, versions: 0, reserved: 0, limit: 10 * GiB });
    expect(u.percent).toBe(100);
    expect(u.free).toBe(0);
    expect(u.parts.reduce((s, p) => s + p.percent, 0)).toBeLessThanOrEqual(100);
  });

  it('handles an empty account and an unlimited one', () => {
    expect(usageOf({ used: 0, trash: 0, versions: 0, reserved: 0, limit: GiB }).parts.every((p) => p.percent === 0)).toBe(
      true,
    );
    const unlimited = usageOf({ used: GiB, trash: 0, versions: 0, reserved: 0, limit: 0 });
    expect(unlimited.percent).toBe(0);
    expect(unlimited.parts[0].percent).toBe(100);
  });
});

const entry = (kind: string, details: Record<string, string>, id = kind + JSON.stringify(details)): ActivityEntry => ({
  id,
  kind,
  details,
  time: new Date(0),
  ip: '',
  userAgent: '',
  actorId: '',
  subjectId: '',
});

describe('recentUploads', () => {
  it('keeps uploads only, each file once (its newest upload), up to max', () => {
    const got = recentUploads(
      [
        entry('storage.upload', { node_id: 'a', name: 'a.txt' }, '1'),
        entry('login.ok', {}),
        entry('storage.upload', { node_id: 'b', name: 'b.txt' }, '2'),
        entry('storage.upload', { node_id: 'a', name: 'a-old.txt' }, '3'),
        entry('storage.delete', { node_id: 'c', name: 'c.txt' }),
        entry('storage.upload', { node_id: 'd', name: 'd.txt' }, '4'),
      ],
      2,
    );
    expect(got.map((r) => [r.nodeId, r.name])).toEqual([
      ['a', 'a.txt'],
      ['b', 'b.txt'],
    ]);
  });
});
