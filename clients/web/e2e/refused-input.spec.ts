import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import path from 'node:path';
import {
  FILES_DIR,
  MiB,
  PASSWORD,
  checkA11y,
  logIn,
  makeFile,
  makeSparseFile,
  row,
  sha256File,
  shot,
  signUpAndLogIn,
  totp,
  uniqueEmail,
} from './helpers';

const upload = (page: Page, name: string) => page.locator(`[data-testid="upload-row"][data-name=${JSON.stringify(name)}]`);

async function rest(request: APIRequestContext, method: 'post' | 'get', url: string, token?: string, data?: object) {
  const res = await request[method](url, {
    data: data ?? {},
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  expect(res.ok(), `${method} ${url}: ${res.status()} ${await res.text()}`).toBe(true);
  return res.json();
}

test('a password the server refuses shows its reason at the field', async ({ page }) => {
  await page.goto('/signup');
  await page.getByLabel('Email').fill(uniqueEmail('pw'));
  const password = page.getByLabel('Password', { exact: true });
  await password.fill('short1');
  await expect(page.getByText('At least 8 characters (6 so far)')).toBeVisible();
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'Password must be at least 8 characters' })).toBeVisible();
  await expect(password).toHaveAttribute('aria-invalid', 'true');
  await password.fill('password123');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('alert').filter({ hasText: /commonly used passwords/ })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Check your mail' })).toHaveCount(0);
});

test('2FA: a wrong code and a replayed one are refused, a fresh code and a recovery code work', async ({
  page,
  request,
}, info) => {
  const email = uniqueEmail('totp');
  await signUpAndLogIn(page, email);
  const login = await rest(request, 'post', '/api/v1/auth/login', undefined, { email, password: PASSWORD });
  const enrol = await rest(request, 'post', '/api/v1/me/totp', login.accessToken);
  const step = Math.floor(Date.now() / 30_000);
  const confirmCode = totp(enrol.secret, step);
  const confirmed = await rest(request, 'post', '/api/v1/me/totp/confirm', login.accessToken, { code: confirmCode });
  const recovery: string = confirmed.recoveryCodes[0];
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('button', { name: 'Log out' }).click();

  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  const code = page.getByLabel('Code');
  await expect(code).toBeVisible();
  await checkA11y(page, 'login-2fa');
  await shot(page, info, 'login-2fa');
  await code.fill(confirmCode === '000000' ? '111111' : '000000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByText(/That code was not accepted/)).toBeVisible();
  // The code that turned 2FA on was used once already: replaying it is refused.
  await code.fill(confirmCode);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByText(/That code was not accepted/)).toBeVisible();
  // The next step's code is within the allowed drift and unused.
  const fresh = totp(enrol.secret, step + 1);
  await code.fill(fresh);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();

  // Log in again with the same code: a replay, refused. A recovery code works instead.
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByLabel('Code').fill(fresh);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByText(/That code was not accepted/)).toBeVisible();
  await page.getByLabel('Code').fill(recovery);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();
});

test('a file larger than the free quota is refused before any upload call; names are shown safely', async ({
  page,
}) => {
  await signUpAndLogIn(page, uniqueEmail('quota'));
  const uploadCalls: string[] = [];
  page.on('request', (r) => {
    if (/StorageService\/(CreateUpload|WriteUploadChunk)$/.test(r.url())) uploadCalls.push(r.url());
  });
  const huge = await makeSparseFile('quota/huge.bin', 11 * 1024 * MiB); // the default quota is 10 GiB
  await page.getByTestId('file-input').setInputFiles(huge);
  await expect(upload(page, 'huge.bin')).toHaveAttribute('data-status', 'failed');
  await expect(upload(page, 'huge.bin').getByTestId('upload-error')).toContainText(/Not enough space: this file needs 11 GiB but only 10 GiB of your 10 GiB is free/);
  expect(uploadCalls).toEqual([]);

  // A drop of loose files: a 0-byte file, an emoji name, and a name with a right-to-left override.
  const dataTransfer = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File([], 'zero.bin'));
    dt.items.add(new File(['party'], '🎉 party.txt', { type: 'text/plain' }));
    dt.items.add(new File(['x'], 'invoice\u202Etxt.exe'));
    return dt;
  });
  await page.getByTestId('dropzone').dispatchEvent('drop', { dataTransfer });
  await expect(upload(page, 'zero.bin')).toHaveAttribute('data-status', 'done');
  await expect(upload(page, '🎉 party.txt')).toHaveAttribute('data-status', 'done');
  const evil = upload(page, 'invoice\u202Etxt.exe');
  await expect(evil).toHaveAttribute('data-status', 'failed');
  await expect(evil.getByTestId('upload-error')).toContainText('bidirectional control characters');
  // The override is shown as a visible code, never applied to the text.
  await expect(evil).toContainText('invoice⟪U+202E⟫txt.exe');
  await expect(row(page, '🎉 party.txt')).toBeVisible();
  await expect(row(page, 'zero.bin')).toContainText('0 B');
  await checkA11y(page, 'uploads-with-failures');
});

test('a folder with an invalid name inside: the rest uploads, the bad one is listed with the reason', async ({
  page,
}) => {
  await signUpAndLogIn(page, uniqueEmail('badname'));
  await makeFile('badtree/ok.txt', 100);
  await makeFile('badtree/inner/also-ok.txt', 200);
  await makeFile('badtree/trailing-dot.', 10);
  await page.getByTestId('folder-input').setInputFiles(path.join(FILES_DIR, 'badtree'));
  await expect(page.getByTestId('upload-summary')).toHaveText(/Uploads finished, 1 failed/);
  await expect(upload(page, 'badtree/ok.txt')).toHaveAttribute('data-status', 'done');
  await expect(upload(page, 'badtree/inner/also-ok.txt')).toHaveAttribute('data-status', 'done');
  const bad = upload(page, 'badtree/trailing-dot.');
  await expect(bad).toHaveAttribute('data-status', 'failed');
  await expect(bad.getByTestId('upload-error')).toContainText('must not end with a dot');
});

test('a name clash asks: replace makes a new version, keep both renames, skip leaves it', async ({ page }) => {
  await signUpAndLogIn(page, uniqueEmail('clash'));
  const file = await makeFile('clash/same.txt', 2048);
  await page.getByTestId('file-input').setInputFiles(file);
  await expect(upload(page, 'same.txt')).toHaveAttribute('data-status', 'done');
  await page.getByRole('button', { name: 'Clear' }).click();
  for (const choice of ['Replace', 'Keep both', 'Skip']) {
    await page.getByTestId('file-input').setInputFiles(file);
    await expect(upload(page, 'same.txt')).toHaveAttribute('data-status', 'conflict');
    await expect(page.getByText('An item with this name already exists here.')).toBeVisible();
    await page.getByRole('button', { name: choice }).click();
    await expect(upload(page, 'same.txt')).toHaveAttribute('data-status', choice === 'Skip' ? 'skipped' : 'done');
    await page.getByRole('button', { name: 'Clear' }).click();
  }
  await expect(row(page, 'same (1).txt')).toBeVisible();
  await row(page, 'same.txt').getByRole('checkbox').check();
  await page.getByRole('button', { name: 'Details', exact: true }).click();
  await expect(page.getByTestId('version')).toHaveCount(2);
  await page.getByRole('button', { name: 'Restore version 1' }).click();
  await expect(page.getByTestId('version')).toHaveCount(3);
});

test('the network drops mid-upload: the page says so, and the upload continues when it is back', async ({
  page,
  context,
}) => {
  await signUpAndLogIn(page, uniqueEmail('offline'));
  const file = await makeFile('offline/drop.bin', 40 * MiB);
  // On an idle machine 40 MiB in 8 MiB chunks can finish before the test goes offline: hold each chunk call
  // back a little until then, so the drop always lands mid-upload.
  const chunkCalls = '**/flowdock.storage.v1.StorageService/WriteUploadChunk';
  await page.route(chunkCalls, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 750));
    await route.continue().catch(() => undefined);
  });
  await page.getByTestId('file-input').setInputFiles(file);
  const item = upload(page, 'drop.bin');
  // At least one chunk committed (the server's advised chunk size decides how much that is).
  await expect.poll(async () => Number(await item.getAttribute('data-sent')), { timeout: 60_000 }).toBeGreaterThan(0);
  await context.setOffline(true);
  await page.unroute(chunkCalls);
  await expect(item).toHaveAttribute('data-status', 'waiting-network');
  await expect(item.getByTestId('upload-error')).toContainText('The server cannot be reached');
  // Another view that needs the server says so in the page.
  await page.getByRole('button', { name: /sort by size/ }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'The server cannot be reached' })).toBeVisible({
    timeout: 20_000,
  });
  await context.setOffline(false);
  await expect(item).toHaveAttribute('data-status', 'done', { timeout: 90_000 });
  // The finished upload refreshes the list; if the failed listing is still shown, its Try again recovers it.
  const again = page.getByRole('button', { name: 'Try again' });
  if (await again.isVisible()) await again.click();
  await row(page, 'drop.bin').getByRole('checkbox').check();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('toolbar').getByRole('button', { name: 'Download' }).click(),
  ]);
  expect(await sha256File(await download.path())).toBe(await sha256File(file));
});

test("another user's folder and a missing folder show the same not-found page", async ({ browser }) => {
  const alice = await browser.newPage();
  await signUpAndLogIn(alice, uniqueEmail('alice'));
  await alice.getByRole('button', { name: 'New folder' }).click();
  await alice.getByLabel('Folder name').fill('Private');
  await alice.getByRole('button', { name: 'Create', exact: true }).click();
  await row(alice, 'Private').getByRole('link').click();
  await expect(alice.getByRole('heading', { name: 'Private' })).toBeVisible();
  const folderUrl = new URL(alice.url()).pathname;

  const bob = await browser.newPage();
  await signUpAndLogIn(bob, uniqueEmail('bob'));
  await bob.goto(folderUrl);
  await expect(bob.getByTestId('not-found')).toBeVisible();
  const theirs = await bob.getByTestId('not-found').innerText();
  await bob.goto('/files/00000000-0000-4000-8000-000000000000');
  await expect(bob.getByTestId('not-found')).toBeVisible();
  expect(await bob.getByTestId('not-found').innerText()).toBe(theirs);
  await expect(bob.getByText('Private')).toHaveCount(0);
  await alice.close();
  await bob.close();
});

test('no token in localStorage, sessionStorage or IndexedDB; the refresh cookie is HttpOnly', async ({
  page,
  context,
}) => {
  await signUpAndLogIn(page, uniqueEmail('storage'));
  await page.getByTestId('file-input').setInputFiles(await makeFile('storage/a.txt', 10));
  await expect(upload(page, 'a.txt')).toHaveAttribute('data-status', 'done');
  await page.reload();
  await expect(page.getByRole('heading', { name: 'My files' })).toBeVisible();
  const stored = await page.evaluate(async () => {
    const dump = (s: Storage) => Object.fromEntries(Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i)!)]));
    return {
      local: dump(localStorage),
      session: dump(sessionStorage),
      idb: (await indexedDB.databases()).map((d) => d.name),
      cookie: document.cookie,
    };
  });
  const all = JSON.stringify(stored);
  expect(all).not.toMatch(/eyJ[\w-]+\.[\w-]+/); // no JWT
  expect(Object.keys(stored.local).filter((k) => k !== 'flowdock.pending-uploads')).toEqual([]);
  expect(Object.keys(stored.session).filter((k) => k !== 'flowdock.oidc-next')).toEqual([]);
  expect(stored.idb).toEqual([]);
  expect(stored.cookie).toBe('');
  const refresh = (await context.cookies()).find((c) => c.name === 'fd_refresh');
  expect(refresh?.httpOnly).toBe(true);
  expect(refresh?.sameSite).toBe('Strict');
  expect(all).not.toContain(refresh?.value);
  // Logout clears the session: a reload does not bring it back.
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  // Log out shows this page before its call has answered: a reload now could cut the call off.
  await expect(page.getByText('Logging you out…')).toHaveCount(0);
  await page.goto('/files');
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
});

test('an ended session sends the person to Log in with a return URL', async ({ page, request }) => {
  const email = uniqueEmail('expired');
  await signUpAndLogIn(page, email);
  await page.getByRole('button', { name: 'New folder' }).click();
  await page.getByLabel('Folder name').fill('Deep');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await row(page, 'Deep').getByRole('link').click();
  await expect(page.getByRole('heading', { name: 'Deep' })).toBeVisible(); // the folder's own URL, not My files'
  const here = new URL(page.url()).pathname;
  // Another device ends every other session (the browser's included).
  const other = await rest(request, 'post', '/api/v1/auth/login', undefined, { email, password: PASSWORD });
  await rest(request, 'post', '/api/v1/me/sessions/revoke-others', other.accessToken);
  await page.waitForTimeout(2500); // services cache a session's "alive" answer for up to 2 s
  await page.getByRole('button', { name: /sort by size/ }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible({ timeout: 20_000 });
  await expect(page.getByText('Your session has ended. Please log in again.')).toBeVisible();
  await logInAndReturn(page, email, here);
});

async function logInAndReturn(page: Page, email: string, here: string) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('heading', { name: 'Deep' })).toBeVisible();
  expect(new URL(page.url()).pathname).toBe(here);
}

test('forgot password: the mailed link opens Reset password, and the new password logs in', async ({ page }, info) => {
  const email = uniqueEmail('reset');
  await signUpAndLogIn(page, email);
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  // Log in has an Email field too: wait for the lazily loaded page, or the fill lands on the page being left.
  await expect(page.getByRole('heading', { name: 'Reset your password' })).toBeVisible();
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Send the link' }).click();
  await expect(page.getByText(/a link to choose a new password is on its way/)).toBeVisible();
  await shot(page, info, 'forgot-password-sent');
  const { mailLink } = await import('./helpers');
  await page.goto(await mailLink(email, 'reset-password'));
  await page.getByLabel('New password').fill('football');
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await expect(page.getByText('Password must be at least 8 characters').or(page.getByText(/commonly used/))).toBeVisible();
  await checkA11y(page, 'reset-password');
  await shot(page, info, 'reset-password');
  const fresh = 'violet canyon 77 marble';
  await page.getByLabel('New password').fill(fresh);
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await expect(page.getByText('Your password is changed')).toBeVisible();
  await page.getByRole('link', { name: 'Log in' }).last().click();
  await logIn(page, email, fresh);
});
