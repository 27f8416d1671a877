import { describe, expect, it } from 'vitest';
import { MAX_QUOTA_BYTES, parseSize, splitSize } from './size';

describe('parseSize', () => {
  it('takes whole and decimal amounts in each unit', () => {
    expect(parseSize('10', 'GiB')).toEqual({ ok: true, bytes: 10 * 2 ** 30 });
    expect(parseSize(' 2.5 ', 'GiB')).toEqual({ ok: true, bytes: 2.5 * 2 ** 30 });
    expect(parseSize('2,5', 'MiB')).toEqual({ ok: true, bytes: 2.5 * 2 ** 20 });
    expect(parseSize('.5', 'TiB')).toEqual({ ok: true, bytes: 2 ** 39 });
    expect(parseSize('1', 'MiB')).toEqual({ ok: true, bytes: 1048576 });
  });

  it('rounds down to a whole byte', () => {
    const r = parseSize('0.3', 'MiB');
    expect(r).toEqual({ ok: true, bytes: Math.floor(0.3 * 2 ** 20) });
  });

  it('refuses empty, non-numbers, negatives, zero and too much, in words', () => {
    for (const bad of ['', '   ']) expect(parseSize(bad, 'GiB')).toEqual({ ok: false, error: expect.stringMatching(/Enter a size/) });
    for (const bad of ['ten', '1e3', '-1', '1.2.3', '5 GB', '0x10', '1.']) {
      expect(parseSize(bad, 'GiB'), bad).toEqual({ ok: false, error: expect.stringMatching(/Enter a number/) });
    }
    expect(parseSize('0', 'GiB')).toEqual({ ok: false, error: expect.stringMatching(/above 0/) });
    expect(parseSize('0.0000000001', 'MiB')).toEqual({ ok: false, error: expect.stringMatching(/above 0/) });
    expect(parseSize('9000', 'TiB')).toEqual({ ok: false, error: expect.stringMatching(/8 PiB/) });
    expect(parseSize('8191', 'TiB')).toEqual({ ok: true, bytes: 8191 * 2 ** 40 });
    expect(8191 * 2 ** 40).toBeLessThanOrEqual(MAX_QUOTA_BYTES);
  });
});

describe('splitSize', () => {
  it('picks the largest unit with an amount of at least 1', () => {
    expect(splitSize(10 * 2 ** 30)).toEqual({ amount: '10', unit: 'GiB' });
    expect(splitSize(1.5 * 2 ** 30)).toEqual({ amount: '1.5', unit: 'GiB' });
    expect(splitSize(512 * 2 ** 20)).toEqual({ amount: '512', unit: 'MiB' });
    expect(splitSize(3 * 2 ** 40)).toEqual({ amount: '3', unit: 'TiB' });
    expect(splitSize(1000)).toEqual({ amount: '0', unit: 'MiB' });
  });

  it('round-trips through parseSize', () => {
    for (const bytes of [2 ** 20, 7 * 2 ** 30, 2.5 * 2 ** 40]) {
      const { amount, unit } = splitSize(bytes);
      expect(parseSize(amount, unit)).toEqual({ ok: true, bytes });
    }
  });
});
