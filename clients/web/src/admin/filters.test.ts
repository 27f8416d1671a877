import { describe, expect, it } from 'vitest';
import { parseRange } from './filters';

describe('parseRange', () => {
  it('takes whole local days, the end day included', () => {
    const r = parseRange('2026-12-01', '2026-12-03');
    expect(r).toEqual({ ok: true, range: { start: new Date(2026, 11, 1), end: new Date(2026, 11, 4) } });
    expect(parseRange('2026-12-03', '2026-12-03')).toEqual({
      ok: true,
      range: { start: new Date(2026, 11, 3), end: new Date(2026, 11, 4) },
    });
  });

  it('leaves out what is empty', () => {
    expect(parseRange('', '')).toEqual({ ok: true, range: { start: undefined, end: undefined } });
    expect(parseRange('', '2026-12-31')).toEqual({ ok: true, range: { start: undefined, end: new Date(2027, 0, 1) } });
  });

  it('refuses an end before the start and dates that do not exist, naming the field', () => {
    expect(parseRange('2026-12-03', '2026-12-02')).toMatchObject({ ok: false, field: 'to' });
    expect(parseRange('2026-02-30', '')).toMatchObject({ ok: false, field: 'from' });
    expect(parseRange('', 'yesterday')).toMatchObject({ ok: false, field: 'to' });
  });
});
