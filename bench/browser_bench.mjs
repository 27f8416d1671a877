// The browser half of bench/browser_bench.py: Debian's Chromium (never a downloaded browser) against a running
// `flowdock up` that serves the built app.
//
//   node bench/browser_bench.mjs CONFIG.json      (started by browser_bench.py; not meant to be run by hand)
//
// Talks to its parent in JSON lines: it prints {"event": ...} on stdout and, before every timed phase, prints
// {"event": "ready", "phase": ...} and waits for a line on stdin, so the parent can read /proc CPU counters (and run
// its native reference) at the phase's edges. Everything the page does goes through the real app: the UI's file
// picker and upload queue (grpc-web WriteUploadChunk at the server's advised chunk size), the toolbar's Download
// button (a browser download saved to disk), full navigations to /files/<id>.
//
// Playwright (the workspace's @playwright/test) measures the initial JavaScript, logs in through the form and times
// the folder's first render. The transfers run in a Chromium spoken to over a bare DevTools pipe: see transfers().
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
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
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor(); // where Log in lands
}

// -- the timed transfers: Chromium driven over a bare DevTools pipe ---------------------------------------------------
//
// Not through Playwright: Playwright enables the DevTools Network domain on every page it drives, and Chromium then
// copies each request body into a CDP event that the driver parses (base64 in JSON). Measured here: 64 POSTs of
// 1 MiB from a Playwright page to a trivial Node server took 9.0 s (7 MB/s) and 2.5 CPU-s of the driver. The
// transfers therefore run in a second Chromium (same binary, same switches) spoken to with only the Target, Storage,
// Browser, Page, DOM and Runtime domains: the file picker is set with DOM.setFileInputFiles (what Playwright's
// setInputFiles does for a local file), the buttons are clicked in the page, downloads are reported by Browser events.


class Cdp {
  constructor(proc) {
    this.proc = proc;
    this.next = 0;
    this.pending = new Map();
    this.listeners = new Set();
    let buf = Buffer.alloc(0);
    proc.stdio[4].on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0)) {
        const msg = JSON.parse(buf.subarray(0, i).toString('utf8'));
        buf = buf.subarray(i + 1);
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (msg.error) p.reject(new Error(`${p.method}: ${JSON.stringify(msg.error)}`));
          else p.resolve(msg.result);
        } else for (const l of this.listeners) l(msg);
      }
    });
  }

  send(method, params = {}, sessionId = undefined) {
    const id = ++this.next;
    this.proc.stdio[3].write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, method }));
  }

  waitFor(method, match, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`no ${method} in ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (msg) => {
        if (msg.method === method && match(msg.params)) {
          clearTimeout(timer);
          this.listeners.delete(listener);
          resolve(msg.params);
        }
      };
      this.listeners.add(listener);
    });
  }
}

async function evaluate(cdp, sid, expression) {
  const r = await cdp.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sid);
  if (r.exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
  return r.result.value;
}

/** Poll an expression every `everyMs` until it returns something truthy. */
async function until(cdp, sid, expression, timeoutMs, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await evaluate(cdp, sid, expression);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const q = (s) => JSON.stringify(s);

async function transfers(cookies) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fdbb-raw-'));
  const downloads = path.join(dir, 'downloads');
  const proc = spawn(config.chromium, [...CHROMIUM_ARGS, '--window-size=1280,800', '--remote-debugging-pipe', `--user-data-dir=${dir}/profile`], {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
  });
  const cdp = new Cdp(proc);
  try {
    const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId: sid } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
    await cdp.send('Storage.setCookies', {
      cookies: cookies.map(({ expires, ...c }) => (expires > 0 ? { ...c, expires } : c)),
    });
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allowAndName', downloadPath: downloads, eventsEnabled: true });
    const name = path.basename(config.source);
    const rowSel = `[data-testid="file-row"][data-name=${q(name)}]`;
    const upSel = `[data-testid="upload-row"][data-name=${q(name)}]`;
    const open = async (folderId) => {
      await cdp.send('Page.navigate', { url: `${config.url}/files/${folderId}` }, sid);
      await until(cdp, sid, `!!document.querySelector('[data-testid="file-input"]') && document.readyState === 'complete'`, 60_000);
    };
    for (const run of config.runs) {
      // upload: the app's file picker, its queue, until the row says Done
      await open(run.folderId);
      const { root } = await cdp.send('DOM.getDocument', { depth: 0 }, sid);
      const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector: '[data-testid="file-input"]' }, sid);
      await evaluate(cdp, sid, 'performance.clearResourceTimings(); performance.setResourceTimingBufferSize(100000); 1');
      await ready('browser-upload', { run: run.index });
      let t0 = performance.now();
      await cdp.send('DOM.setFileInputFiles', { files: [config.source], nodeId }, sid);
      const status = await until(
        cdp,
        sid,
        `(() => { const r = document.querySelector(${q(upSel)}); const s = r && r.dataset.status; return s === 'done' || s === 'failed' ? s : ''; })()`,
        config.timeoutMs,
      );
      let seconds = (performance.now() - t0) / 1000;
      const calls = await evaluate(
        cdp,
        sid,
        `performance.getEntriesByType('resource').filter((e) => e.name.includes('/flowdock.')).map((e) => [e.name.split('/').pop(), e.startTime, e.responseEnd])`,
      );
      const chunkCalls = calls.filter((c) => c[0] === 'WriteUploadChunk');
      const error = status === 'done' ? '' : await evaluate(cdp, sid, `document.querySelector(${q(upSel)}).textContent`);
      emit('done', {
        phase: 'browser-upload',
        run: run.index,
        seconds,
        status,
        error,
        chunks: chunkCalls.length,
        otherCalls: calls.length - chunkCalls.length,
        chunkMs: chunkCalls.map((c) => c[2] - c[1]),
        chunkGapMs: chunkCalls.slice(1).map((c, i) => c[1] - chunkCalls[i][2]),
      });
      if (status !== 'done') throw new Error(`browser upload ended ${status}: ${error}`);

      // download: select the row, the toolbar's Download button, the file on disk
      await open(run.folderId);
      await until(cdp, sid, `!!document.querySelector(${q(rowSel)})`, 60_000);
      await evaluate(cdp, sid, `document.querySelector(${q(rowSel)} + ' input[type=checkbox]').click(); 1`);
      const button = `[...document.querySelectorAll('[role=toolbar] button')].find((b) => b.textContent.trim() === 'Download')`;
      await until(cdp, sid, `!!${button}`, 30_000);
      await ready('browser-download', { run: run.index });
      t0 = performance.now();
      const begun = cdp.waitFor('Browser.downloadWillBegin', () => true, 60_000);
      await evaluate(cdp, sid, `${button}.click(); 1`);
      const { guid } = await begun;
      const end = await cdp.waitFor(
        'Browser.downloadProgress',
        (p) => p.guid === guid && (p.state === 'completed' || p.state === 'canceled'),
        config.timeoutMs,
      );
      seconds = (performance.now() - t0) / 1000;
      const failure = end.state === 'completed' ? null : end.state;
      emit('done', { phase: 'browser-download', run: run.index, seconds, failure });
      if (failure) throw new Error(`browser download ${failure}`);
      const file = path.join(downloads, guid);
      const bytes = statSync(file).size;
      const sha256 = await sha256File(file);
      rmSync(file);
      emit('checked', { phase: 'browser-download', run: run.index, bytes, sha256 });
    }
    await cdp.send('Browser.close').catch(() => undefined);
  } finally {
    if (proc.exitCode === null) {
      await new Promise((r) => {
        const t = setTimeout(() => { proc.kill('SIGKILL'); r(); }, 10_000);
        proc.once('exit', () => { clearTimeout(t); r(); });
      });
    }
    rmSync(dir, { recursive: true, force: true });
  }
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

// the same switches as clients/web/playwright.config.ts
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function main() {
  const browser = await chromium.launch({ executablePath: config.chromium, args: CHROMIUM_ARGS });
  emit('started', { browser: browser.version(), playwright: playwrightVersion, node: process.version });
  let cookies;
  try {
    emit('scripts', { scripts: await initialScripts(browser) });
    const context = await browser.newContext({ baseURL: config.url, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    await logIn(page);
    emit('logged-in');
    await listing(page);
    // The session (its HttpOnly refresh cookie) moves to the transfer browser; this one stops using it.
    cookies = await context.cookies();
    await context.close();
  } finally {
    await browser.close();
  }
  await transfers(cookies);
  emit('finished');
}

main().then(
  () => process.exit(0),
  (err) => {
    emit('error', { message: String(err?.stack ?? err) });
    process.exit(1);
  },
);
