/** The admin activity filter's dates, as <input type="date"> gives them ("2026-12-03", local days). */

export interface DateRange {
  start?: Date;
  end?: Date;
}

export type ParsedRange = { ok: true; range: DateRange } | { ok: false; field: 'from' | 'to'; error: string };

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

function localDay(text: string): Date | undefined {
  const m = DAY.exec(text);
  if (!m) return undefined;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return d.getMonth() === Number(m[2]) - 1 ? d : undefined;
}

/** From the start of `from` to the end of `to` (both days included), local time; either may be empty. */
export function parseRange(from: string, to: string): ParsedRange {
  const start = from ? localDay(from) : undefined;
  if (from && !start) return { ok: false, field: 'from', error: 'Enter a date, like 2026-12-03.' };
  const last = to ? localDay(to) : undefined;
  if (to && !last) return { ok: false, field: 'to', error: 'Enter a date, like 2026-12-03.' };
  const end = last ? new Date(last.getFullYear(), last.getMonth(), last.getDate() + 1) : undefined;
  if (start && end && end <= start) return { ok: false, field: 'to', error: 'The end date must be on or after the start date.' };
  return { ok: true, range: { start, end } };
}
