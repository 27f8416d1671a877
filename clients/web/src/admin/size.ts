/** Quota sizes as an administrator types them: an amount and a binary unit (what the rest of the app shows). */

export const SIZE_UNITS = ['MiB', 'GiB', 'TiB'] as const;
export type SizeUnit = (typeof SIZE_UNITS)[number];

const FACTOR: Record<SizeUnit, number> = { MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/** The largest limit the page sends: bytes must stay exact in a JavaScript number (8 PiB). */
export const MAX_QUOTA_BYTES = Number.MAX_SAFE_INTEGER;

export type ParsedSize = { ok: true; bytes: number } | { ok: false; error: string };

/**
 * "10", "2.5" or "2,5" in `unit` → bytes (rounded down to a whole byte). The error sentence is shown at the field:
 * empty, not a plain decimal number, zero or less (0 means "the default", offered separately), or too large.
 */
export function parseSize(amount: string, unit: SizeUnit): ParsedSize {
  const text = amount.trim().replace(',', '.');
  if (!text) return { ok: false, error: 'Enter a size, for example 10.' };
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(text)) return { ok: false, error: 'Enter a number, for example 10 or 2.5.' };
  const bytes = Math.floor(Number(text) * FACTOR[unit]);
  if (bytes <= 0) return { ok: false, error: 'Enter a size above 0 (or use the default limit).' };
  if (bytes > MAX_QUOTA_BYTES) return { ok: false, error: 'That is more than 8 PiB, the largest limit.' };
  return { ok: true, bytes };
}

/** A limit in bytes as the form shows it to edit: the largest unit that keeps it short ("1.5" GiB, "512" MiB). */
export function splitSize(bytes: number): { amount: string; unit: SizeUnit } {
  for (const unit of [...SIZE_UNITS].reverse()) {
    const value = bytes / FACTOR[unit];
    if (value >= 1) return { amount: String(Math.round(value * 100) / 100), unit };
  }
  return { amount: String(Math.round((bytes / FACTOR.MiB) * 100) / 100), unit: 'MiB' };
}
