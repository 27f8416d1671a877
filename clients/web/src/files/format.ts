export { formatBytes } from '../upload/queue';

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatDate(d: Date | undefined): string {
  return d ? dateFormat.format(d) : '—';
}

/** Starts a download of a short-lived same-origin URL: the browser streams it to disk, not into page memory. */
export function startDownload(url: string): void {
  const a = document.createElement('a');
  a.href = url;
  a.download = '';
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
}
