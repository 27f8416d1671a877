import AxeBuilder from '@axe-core/playwright';
import { expect, type Locator, type Page, type TestInfo } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';

export const DATA_DIR = process.env.FLOWDOCK_E2E_DATA_DIR ?? '';
export const PASSWORD = 'plum orbit kettle 4 lantern';
export const MiB = 1024 * 1024;

/** Generated test files live outside the repo and are reused between runs (content is deterministic). */
export const FILES_DIR = path.join(os.tmpdir(), 'flowdock-e2e-files');

let counter = 0;
export function uniqueEmail(tag: string): string {
  counter += 1;
  return `${tag}-${Date.now().toString(36)}-${process.pid}-${counter}@example.com`;
}

function decodeQuotedPrintable(text: string): string {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The path and query of the newest link of `route` mailed to `email` (read from the outbox folder). */
export async function mailLink(email: string, route: 'verify-email' | 'reset-password'): Promise<string> {
  const outbox = path.join(DATA_DIR, 'outbox');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (existsSync(outbox)) {
      const names = (await readdir(outbox)).filter((n) => n.endsWith('.eml')).sort().reverse();
      for (const name of names) {
        const raw = await readFile(path.join(outbox, name), 'utf8');
        if (!raw.includes(`To: ${email}`)) continue;
        const body = decodeQuotedPrintable(raw);
        const m = new RegExp(`https?://[^\\s/]+(/${route}\\?token=[^\\s]+)`).exec(body);
        if (m) return m[1];
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no ${route} mail for ${email} in ${outbox}`);
}

/** A file of `size` bytes of random content, written a MiB at a time (never whole in memory); kept between runs. */
export async function makeFile(relative: string, size: number): Promise<string> {
  const full = path.join(FILES_DIR, relative);
  mkdirSync(path.dirname(full), { recursive: true });
  if (existsSync(full) && statSync(full).size === size) return full;
  const out = createWriteStream(full);
  const block = randomBytes(Math.min(size, MiB));
  let left = size;
  for (let n = 0; left > 0; n++) {
    const part = Buffer.from(block.subarray(0, Math.min(left, block.length)));
    // Each MiB differs: a chunk sent twice or to the wrong offset changes the digest.
    if (part.length >= 4) part.writeUInt32LE(n, 0);
    if (!out.write(part)) await new Promise<void>((r) => out.once('drain', () => r()));
    left -= part.length;
  }
  out.end();
  await finished(out);
  return full;
}

/** A sparse file: its size is known to the browser without a byte being read. */
export async function makeSparseFile(relative: string, size: number): Promise<string> {
  const full = path.join(FILES_DIR, relative);
  mkdirSync(path.dirname(full), { recursive: true });
  await writeFile(full, '');
  await truncate(full, size);
  return full;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await finished(createReadStream(file).on('data', (d) => h.update(d)));
  return h.digest('hex');
}

/** Sign up through the form, open the link from the mail, and log in. */
export async function signUpAndLogIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.goto('/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('heading', { name: 'Check your mail' })).toBeVisible();
  await page.goto(await mailLink(email, 'verify-email'));
  await expect(page.getByText('Your email address is confirmed.')).toBeVisible();
  await logIn(page, email, password);
}

export async function logIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  if (!page.url().includes('/login')) await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  // Log in lands on the Dashboard, or on the page a ?next= return URL names.
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
  if (new URL(page.url()).pathname === '/dashboard') await openMyFilesFromDashboard(page);
  else await expect(page.getByRole('heading', { name: 'My files' })).toBeVisible();
}

/** Log in lands on the Dashboard; its "My files" shortcut is one click away. */
export async function openMyFilesFromDashboard(page: Page): Promise<void> {
  await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();
  await page.getByRole('navigation', { name: 'Shortcuts' }).getByRole('link', { name: 'My files' }).click();
  await expect(page.getByRole('heading', { name: 'My files' })).toBeVisible();
}

/** The `flowdock` executable the suite's server runs (as playwright.config.ts finds it). */
function flowdockBin(): string {
  const repo = path.resolve(import.meta.dirname, '../../..');
  return process.env.FLOWDOCK_BIN ?? path.join(path.resolve(repo, process.env.FLOWDOCK_VENV ?? '.venv'), 'bin', 'flowdock');
}

/** A verified administrator, made as an operator makes the first one: `flowdock admin create-user --admin`. */
export function createAdmin(email: string, password = PASSWORD): void {
  execFileSync(flowdockBin(), ['admin', 'create-user', '--email', email, '--admin', '--password-stdin', '--data-dir', DATA_DIR], {
    input: `${password}\n`,
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 60_000,
  });
}

/** Follow a link of the main navigation (opening the phone menu first when it is folded). */
export async function navTo(page: Page, label: string): Promise<void> {
  const menu = page.getByRole('button', { name: 'Menu', exact: true });
  if (await menu.isVisible()) await menu.click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
}

/** No serious or critical axe violations on the page as it is now. */
export async function checkA11y(page: Page, name: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    `axe on ${name}`,
  ).toEqual([]);
}

/** How many lines the element's text takes on screen (distinct tops of its line boxes); 0 when not shown. */
export async function lineCount(locator: Locator): Promise<number> {
  return locator.evaluate((el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  });
}

/** A full-page screenshot in test-results/screenshots/<project>/<name>.png (not committed). */
export async function shot(page: Page, info: TestInfo, name: string): Promise<void> {
  await page.screenshot({
    path: path.join(import.meta.dirname, '..', 'test-results', 'screenshots', info.project.name, `${name}.png`),
    fullPage: true,
  });
}

export function row(page: Page, name: string) {
  return page.locator(`[data-testid="file-row"][data-name=${JSON.stringify(name)}]`);
}

export async function newFolder(page: Page, name: string): Promise<void> {
  await page.getByRole('button', { name: 'New folder' }).click();
  await page.getByLabel('Folder name').fill(name);
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await expect(row(page, name)).toBeVisible();
}

/** Upload a small file made in memory into the folder on screen and wait until it is listed. */
export async function uploadText(page: Page, name: string, text: string): Promise<void> {
  await page.getByTestId('file-input').setInputFiles({ name, mimeType: 'text/plain', buffer: Buffer.from(text) });
  await expect(page.locator(`[data-testid="upload-row"][data-name=${JSON.stringify(name)}][data-status="done"]`).last()).toBeVisible();
  await expect(row(page, name)).toBeVisible();
}

/** Select only this row (clearing any other selection). */
export async function selectOnly(page: Page, name: string): Promise<void> {
  const clear = page.getByRole('button', { name: 'Clear selection' });
  if (await clear.isVisible()) await clear.click();
  await row(page, name).getByRole('checkbox').check();
}

export async function moveToTrash(page: Page, name: string): Promise<void> {
  await selectOnly(page, name);
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.getByRole('button', { name: 'Move to trash' }).click();
  await expect(row(page, name)).toHaveCount(0);
}

function base32(secret: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for the time step `step`. */
export function totp(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}
