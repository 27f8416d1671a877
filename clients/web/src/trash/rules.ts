import type { TrashItem } from '../api/types';

const DAY = 24 * 60 * 60 * 1000;

/**
 * How long the server keeps trash, read off the entries themselves (each knows its deletion and purge dates):
 * the settings are not exposed, but every entry carries the rule. Undefined when the trash is empty.
 */
export function retentionDays(items: readonly TrashItem[]): number | undefined {
  for (const item of items) {
    if (item.deleted && item.purgeAt) return Math.max(0, Math.round((item.purgeAt.getTime() - item.deleted.getTime()) / DAY));
  }
  return undefined;
}

/** "Deleted for good in 3 days" / "…tomorrow" / "…today": how soon the automatic purge takes it. */
export function purgeIn(purgeAt: Date | undefined, now: Date = new Date()): string {
  if (!purgeAt) return '';
  const days = Math.ceil((purgeAt.getTime() - now.getTime()) / DAY);
  if (days <= 0) return 'Deleted for good soon';
  if (days === 1) return 'Deleted for good within a day';
  return `Deleted for good in ${days} days`;
}

/** The sentence after a restore: where it went, and its new name when the old one was taken. */
export function restoredMessage(before: string, after: string, where: string): string {
  if (before === after) return `“${before}” is back in ${where}.`;
  return `“${before}” is back in ${where} as “${after}”: an item with its name was already there.`;
}

/** "My files / Projects / 2024" from a path as GetNodePath answers it (the root first). */
export function locationName(path: readonly { name: string }[]): string {
  return ['My files', ...path.slice(1).map((n) => n.name)].join(' / ');
}
