// The browser half of bench/browser_bench.py: Debian's Chromium driven by Playwright (the workspace's
// @playwright/test, never a downloaded browser) against a running `flowdock up` that serves the built app.
//
//   node bench/browser_bench.mjs CONFIG.json      (started by browser_bench.py; not meant to be run by hand)
//
// Talks to its parent in JSON lines: it prints {"event": ...} on stdout and, before every timed phase, prints
// {"event": "ready", "phase": ...} and waits for a line on stdin, so the parent can read /proc CPU counters (and run
// its native reference) at the phase's edges. Everything the page does goes through the real app: the UI's file
// picker and upload queue (grpc-web WriteUploadChunk at the server's advised chunk size), the toolbar's Download
// button (a browser download saved to disk), a full navigation to /files/<id>.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { finished } from 'node:stream/promises';

const ROOT = path.resolve(import.meta.dirname, '..');
// Resolve Playwright from the web workspace that declares it (clients/web/package.json, pinned by the lock file).
const require = createRequire(path.join(ROOT, 'clients', 'web', 'package.json'));
const { chromium } = require('@playwright/test');
const playwrightVersion = require('@playwright/test/package.json').version;

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function emit(event, data = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
}

/** Tell the parent a timed phase is about to start; resolves when it answers (after its CPU snapshot). */
async function ready(phase, data = {}) {
  emit('ready', { phase, ...data });
  const answer = await lines.next();
  if (answer.done) throw new Error(`parent went away before ${phase}`);
}

async function sha256File(file) {
  const h = createHash('sha256');
  await finished(createReadStream(file, { highWaterMark: 4 << 20 }).on('data', (d) => h.update(d)));
  return h.digest('hex');
}

// Runs in every document before the app's scripts (CDP injects it: the app's CSP does not apply). Records when
// the first file row enters the DOM and when the frame that contains it has been produced: a rAF callback runs
// just before that frame's paint, and a message posted from it is delivered right after the frame.
const RENDER_PROBE = `(() => {
  const mark = { rowsAt: 0, paintedAt: 0 };
  window.__fdBench = mark;
  const seen = () => {
    if (mark.rowsAt || !document.querySelector('[data-testid="file-row"]')) return;
    mark.rowsAt = performance.now();
    observer.disconnect();
    requestAnimationFrame(() => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => { mark.paintedAt = performance.now(); };
      ch.port2.postMessage(0);
    });
  };
  const observer = new MutationObserver(seen);
  observer.observe(document, { childList: true, subtree: true });
})();`;

async function initialScripts(browser) {
  // A fresh context: empty cache, no session, as a first visit to the home page.
  const context = await browser.newContext({ baseURL: config.url });
  const page = await context.newPage();
  const scripts = [];
  page.on('response', (resp) => {
    if (resp.request().resourceType() === 'script') scripts.push(resp);
  });
  await page.goto('/', { waitUntil: 'networkidle' });
  await page.getByRole('heading', { level: 1 }).first().waitFor();
  const out = [];
  for (const resp of scripts) {
    const sizes = await resp.request().sizes();
    out.push({
      url: resp.url(),
      status: resp.status(),
      encoding: (await resp.allHeaders())['content-encoding'] ?? 'identity',
      transferred: sizes.responseBodySize + sizes.responseHeadersSize,
      body: sizes.responseBodySize,
    });
  }
  await context.close();
  return out;
}

async function logIn(page) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(config.email);
  await page.getByLabel('Password').fill(config.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'My files' }).waitFor();
}

async function openFolder(page, folderId) {
  await page.goto(folderId === 'root' ? '/files' : `/files/${folderId}`);
  await page.getByRole('toolbar', { name: 'File actions' }).waitFor();
}

function row(page, name) {
  return page.locator(`[data-testid="file-row"][data-name=${JSON.stringify(name)}]`);
}

async function upload(page, run) {
  const name = path.basename(config.source);
  await openFolder(page, run.folderId);
  let chunks = 0;
  let other = 0;
  const count = (req) => {
    if (req.url().endsWith('/WriteUploadChunk')) chunks += 1;
    else if (req.url().includes('/flowdock.')) other += 1;
  };
  await ready('browser-upload', { run: run.index });
  const t0 = performance.now();
  page.on('request', count);
  await page.getByTestId('file-input').setInputFiles(config.source);
  const done = page.locator(`[data-testid="upload-row"][data-name=${JSON.stringify(name)}]`);
  await done.and(page.locator('[data-status="done"], [data-status="failed"]')).waitFor({ timeout: config.timeoutMs });
  const seconds = (performance.now() - t0) / 1000;
  page.off('request', count);
  const status = await done.getAttribute('data-status');
  const error = status === 'done' ? '' : await done.getByTestId('upload-error').textContent();
  emit('done', { phase: 'browser-upload', run: run.index, seconds, status, error, chunks, otherCalls: other });
  if (status !== 'done') throw new Error(`browser upload ended ${status}: ${error}`);
}

async function download(page, run) {
  const name = path.basename(config.source);
  await openFolder(page, run.folderId);
  await row(page, name).getByRole('checkbox').check();
  const button = page.getByRole('toolbar').getByRole('button', { name: 'Download' });
  await ready('browser-download', { run: run.index });
  const t0 = performance.now();
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), button.click()]);
  const file = await dl.path(); // resolves once the browser has written the last byte
  const seconds = (performance.now() - t0) / 1000;
  const failure = await dl.failure();
  emit('done', { phase: 'browser-download', run: run.index, seconds, failure });
  if (failure) throw new Error(`browser download failed: ${failure}`);
  const bytes = statSync(file).size;
  const sha256 = await sha256File(file);
  await dl.delete();
  emit('checked', { phase: 'browser-download', run: run.index, bytes, sha256 });
}

async function listing(page) {
  await page.addInitScript(RENDER_PROBE);
  const rows = page.locator('[data-testid="file-row"]');
  const results = [];
  await ready('listing', { rounds: config.listRounds + config.listWarmup });
  for (let i = 0; i < config.listRounds + config.listWarmup; i++) {
    const t0 = performance.now();
    await page.goto(`/files/${config.listFolderId}`, { waitUntil: 'commit' });
    await rows.first().waitFor({ state: 'visible' });
    const observed = performance.now() - t0;
    await page.waitForFunction(() => window.__fdBench && window.__fdBench.paintedAt > 0);
    const m = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const calls = performance
        .getEntriesByType('resource')
        .filter((e) => e.name.includes('/flowdock.'))
        .map((e) => ({
          method: e.name.split('/').slice(-2).join('/'),
          start: e.startTime,
          end: e.responseEnd,
          ms: e.responseEnd - e.startTime,
          bytes: e.encodedBodySize,
        }));
      const table = document.querySelector('[role="table"][aria-label="Files"]');
      return {
        ...window.__fdBench,
        rowCount: Number(table?.getAttribute('aria-rowcount') ?? 0) - 1,
        rowsRendered: document.querySelectorAll('[data-testid="file-row"]').length,
        htmlMs: nav ? nav.responseEnd : 0,
        domContentLoadedMs: nav ? nav.domContentLoadedEventEnd : 0,
        calls,
      };
    });
    results.push({ warmup: i < config.listWarmup, observedMs: observed, ...m });
  }
  emit('done', { phase: 'listing', results });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    // the same switches as clients/web/playwright.config.ts
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  emit('started', { browser: browser.version(), playwright: playwrightVersion, node: process.version });
  try {
    emit('scripts', { scripts: await initialScripts(browser) });
    const context = await browser.newContext({
      baseURL: config.url,
      acceptDownloads: true,
      viewport: { width: 1280, height: 800 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    await logIn(page);
    emit('logged-in');
    for (const run of config.runs) {
      await upload(page, run);
      await download(page, run);
    }
    await listing(page);
    await context.close();
  } finally {
    await browser.close();
  }
  emit('finished');
}

main().then(
  () => process.exit(0),
  (err) => {
    emit('error', { message: String(err?.stack ?? err) });
    process.exit(1);
  },
);
