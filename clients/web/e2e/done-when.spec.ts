import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { readFile, stat } from 'node:fs/promises';
import {
  MiB,
  PASSWORD,
  checkA11y,
  makeFile,
  moveToTrash,
  newFolder,
  row,
  selectOnly,
  shot,
  signUpAndLogIn,
  totp,
  uniqueEmail,
  uploadText,
} from './helpers';

// Issue 17's "Done when" main flow in one test, several browser contexts (A, B, an anonymous visitor), at 1280 px
// and 390 px; then the bad input the issue names that the other specs do not cover.

async function openDialog(page: Page, name: string, button: 'Share' | 'Public link') {
  await page.goto('/files');
  await selectOnly(page, name);
  await page.getByRole('toolbar').getByRole('button', { name: button, exact: true }).click();
  return page.getByRole('dialog');
}

async function accountMenu(page: Page, item: 'Log out' | 'Settings' | 'Help') {
  await page.getByRole('button', { name: /Account menu/ }).click();
  if (item === 'Log out') await page.getByRole('button', { name: 'Log out' }).click();
  else await page.getByRole('banner').getByRole('link', { name: item }).click();
}

/** An access token over REST, as a script would get one: what the forced calls below use. */
async function restToken(request: APIRequestContext, email: string): Promise<string> {
  const r = await request.post('/api/v1/auth/login', { data: { email, password: PASSWORD } });
  expect(r.ok(), await r.text()).toBe(true);
  return ((await r.json()) as { accessToken: string }).accessToken;
}

test('done when: share roles → revoke, password link with a limit, 20 MiB file drop, trash, 2FA', async ({ browser }, info) => {
  test.setTimeout(420_000);
  const viewport = info.project.use.viewport;
  const a = await (await browser.newContext({ viewport })).newPage();
  const b = await (await browser.newContext({ viewport })).newPage();
  const anon = await (await browser.newContext({ viewport })).newPage();
  const emailA = uniqueEmail('done-a');
  const emailB = uniqueEmail('done-b');
  await signUpAndLogIn(b, emailB);
  await signUpAndLogIn(a, emailA);
  await newFolder(a, 'Team');
  await newFolder(a, 'Inbox');
  await row(a, 'Team').getByRole('link').click();
  await uploadText(a, 'plan.txt', 'plan, first draft');

  // A shares Team with B as viewer: B sees it (with who shared it) and cannot download.
  let dialog = await openDialog(a, 'Team', 'Share');
  await dialog.getByLabel('Email of the person').fill(emailB);
  await dialog.getByRole('radio', { name: /^Viewer/ }).check();
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  await expect(dialog.locator(`[data-testid="grant"][data-email="${emailB}"]`)).toBeVisible();
  await dialog.getByRole('button', { name: 'Close' }).click();
  await b.goto('/shared');
  const incoming = b.locator('[data-testid="incoming-share"][data-name="Team"]');
  await expect(incoming).toContainText('Viewer');
  await expect(incoming.getByTestId('shared-by')).toContainText(emailA);
  await b.getByRole('link', { name: 'Team' }).click();
  await expect(row(b, 'plan.txt')).toBeVisible();
  await expect(b.getByRole('button', { name: /Download/ })).toHaveCount(0);

  // A makes B a downloader: B downloads the exact bytes.
  dialog = await openDialog(a, 'Team', 'Share');
  await dialog.getByLabel(`Role of ${emailB}`).selectOption('downloader');
  await expect(dialog.getByLabel(`Role of ${emailB}`)).toHaveValue('downloader');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await b.reload();
  const [got] = await Promise.all([b.waitForEvent('download'), b.getByRole('button', { name: 'Download plan.txt' }).click()]);
  expect(await readFile(await got.path(), 'utf8')).toBe('plan, first draft');

  // A revokes: B's next action (with the page still open) says it is no longer shared.
  await a.goto('/shared/by-me');
  await a.getByTestId('outgoing-share').filter({ hasText: emailB }).getByRole('button', { name: /Revoke/ }).click();
  await expect(a.getByText('You have not shared anything with people')).toBeVisible();
  await b.getByRole('button', { name: 'Download plan.txt' }).click();
  await expect(b.getByRole('heading', { name: 'No longer shared' })).toBeVisible();

  // Versions: replace plan.txt, download version 1 byte-exact from the details, restore it as a new version.
  await a.goto('/files');
  await row(a, 'Team').getByRole('link').click();
  await a.getByTestId('file-input').setInputFiles({ name: 'plan.txt', mimeType: 'text/plain', buffer: Buffer.from('plan, final') });
  await a.getByRole('button', { name: 'Replace' }).click();
  await expect(a.locator('[data-testid="upload-row"][data-name="plan.txt"][data-status="done"]').last()).toBeVisible();
  await selectOnly(a, 'plan.txt');
  await a.getByRole('button', { name: 'Details', exact: true }).click();
  const versions = a.getByTestId('version');
  await expect(versions).toHaveCount(2);
  const [old] = await Promise.all([a.waitForEvent('download'), a.getByRole('button', { name: 'Download version 1' }).click()]);
  expect(await readFile(await old.path(), 'utf8')).toBe('plan, first draft');
  await a.getByRole('button', { name: 'Restore version 1' }).click();
  await expect(versions).toHaveCount(3);
  await expect(versions.first()).toContainText('Version 3 (current)');
  await checkA11y(a, 'details-versions');
  await shot(a, info, 'details-versions');
  const [now] = await Promise.all([a.waitForEvent('download'), a.getByRole('button', { name: 'Download version 3' }).click()]);
  expect(await readFile(await now.path(), 'utf8')).toBe('plan, first draft');
  await a.getByRole('button', { name: 'Close details' }).click();

  // A password link with a download limit of 1: the visitor opens it, downloads; the second download is refused,
  // and a browser that navigates to it lands on the link's page, which says why.
  dialog = await openDialog(a, 'Team', 'Public link');
  let form = dialog.getByRole('form', { name: 'New link' });
  await form.getByLabel('Password (optional)').fill('link secret 123');
  await form.getByLabel('Download limit (optional)').fill('1');
  await form.getByRole('button', { name: 'Create link' }).click();
  const linkPath = new URL(await dialog.getByLabel('Link address').inputValue()).pathname;
  await a.keyboard.press('Escape');
  await anon.goto(linkPath);
  await anon.getByLabel('Password').fill('link secret 123');
  await anon.getByRole('button', { name: 'Open' }).click();
  await expect(anon.getByRole('heading', { name: 'Team' })).toBeVisible();
  const href = (await anon.getByRole('link', { name: 'Download plan.txt' }).getAttribute('href'))!;
  const [once] = await Promise.all([anon.waitForEvent('download'), anon.getByRole('link', { name: 'Download plan.txt' }).click()]);
  expect(await readFile(await once.path(), 'utf8')).toBe('plan, first draft');
  expect((await anon.request.get(href)).ok()).toBe(false);
  await anon.goto(href);
  await expect(anon.getByTestId('link-refused')).toContainText('reached its download limit');
  expect(new URL(anon.url()).pathname).toBe(linkPath);
  await checkA11y(anon, 'link-refused');
  await shot(anon, info, 'link-refused');

  // A file-drop link on Inbox: the visitor sends 20 MiB into the named folder, which lands in A's Inbox.
  const big = await makeFile('drop/done-when-20m.bin', 20 * MiB);
  dialog = await openDialog(a, 'Inbox', 'Public link');
  form = dialog.getByRole('form', { name: 'New link' });
  await form.getByRole('radio', { name: /Upload only/ }).check();
  await form.getByRole('button', { name: 'Create link' }).click();
  const dropPath = new URL(await dialog.getByLabel('Link address').inputValue()).pathname;
  await a.keyboard.press('Escape');
  await anon.goto(dropPath);
  await expect(anon.getByRole('heading', { name: 'Send files to “Inbox”' })).toBeVisible();
  await anon.getByTestId('link-file-input').setInputFiles(big);
  await expect(anon.locator('[data-testid="drop-row"][data-name="done-when-20m.bin"]')).toHaveAttribute('data-status', 'done', {
    timeout: 120_000,
  });
  await a.goto('/files');
  await row(a, 'Inbox').getByRole('link').click();
  await expect(row(a, 'done-when-20m.bin')).toContainText(`${(await stat(big)).size / MiB} MiB`);

  // A deletes it and restores it from the trash.
  await moveToTrash(a, 'done-when-20m.bin');
  await a.goto('/trash');
  await a.locator('[data-testid="trash-row"][data-name="done-when-20m.bin"]').getByRole('button', { name: /Restore/ }).click();
  await expect(a.getByRole('status').filter({ hasText: 'is back in My files / Inbox' })).toBeVisible();
  await a.getByRole('link', { name: 'Show it' }).click();
  await expect(row(a, 'done-when-20m.bin')).toHaveAttribute('aria-selected', 'true');

  // A turns 2FA on with a code computed from the server's key, logs out, logs in with a code.
  await a.goto('/files');
  await accountMenu(a, 'Settings');
  await expect(a.getByRole('heading', { name: 'Settings', level: 1 })).toBeVisible();
  const twoFactor = a.getByRole('region', { name: 'Two-factor authentication', exact: true });
  await twoFactor.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const secret = (await twoFactor.getByTestId('totp-secret').innerText()).replace(/\s+/g, '');
  const step = Math.floor(Date.now() / 30_000);
  await twoFactor.getByLabel('Code from the app').fill(totp(secret, step));
  await twoFactor.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
  await expect(twoFactor.getByTestId('recovery-codes').getByRole('listitem')).toHaveCount(10);
  await twoFactor.getByRole('button', { name: 'I have saved them' }).click();
  await accountMenu(a, 'Log out');
  // Log out lands on /login after a first redirect to /login?next=…: fill the form once the last one is there.
  await expect(a).toHaveURL(/\/login$/);
  await expect(a.getByRole('link', { name: 'Sign up' })).toBeVisible();
  await a.getByLabel('Email').fill(emailA);
  await a.getByLabel('Password').fill(PASSWORD);
  await a.getByRole('button', { name: 'Log in' }).click();
  await a.getByLabel('Code').fill(totp(secret, step + 1)); // the enrolment's code is spent
  await a.getByRole('button', { name: 'Verify' }).click();
  await expect(a.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();

  // Help from the account menu; Terms and Privacy from there.
  await accountMenu(a, 'Help');
  await expect(a.getByRole('heading', { name: 'Help', level: 1 })).toBeVisible();
  await expect(a.getByText(/deleted for good\s+30 days later/)).toBeVisible();
});

test('bad input: an editor sharing onward and a viewer forcing a download are refused by the server; a revoked link in an open tab', async ({
  page,
  browser,
  request,
}, info) => {
  test.setTimeout(240_000);
  const emailB = uniqueEmail('forced-b');
  const b = await (await browser.newContext({ viewport: info.project.use.viewport })).newPage();
  await signUpAndLogIn(b, emailB);
  await signUpAndLogIn(page, uniqueEmail('forced-a'));
  await newFolder(page, 'Edits');
  await newFolder(page, 'Looks');
  await row(page, 'Looks').getByRole('link').click();
  await uploadText(page, 'photo.txt', 'not for download');
  await newFolder(page, 'inside');
  for (const [folder, role] of [
    ['Edits', /^Editor/],
    ['Looks', /^Viewer/],
  ] as const) {
    const dialog = await openDialog(page, folder, 'Share');
    await dialog.getByLabel('Email of the person').fill(emailB);
    await dialog.getByRole('radio', { name: role }).check();
    await dialog.getByRole('button', { name: 'Share', exact: true }).click();
    await expect(dialog.locator(`[data-testid="grant"][data-email="${emailB}"]`)).toBeVisible();
    await dialog.getByRole('button', { name: 'Close' }).click();
  }

  // Forced calls with B's own token, as a script would make them: the server refuses both.
  const auth = { authorization: `Bearer ${await restToken(request, emailB)}` };
  const shares = (await (await request.get('/api/v1/shares/incoming', { headers: auth })).json()) as {
    shares: { node: { id: string; name: string } }[];
  };
  const byName = Object.fromEntries(shares.shares.map((s) => [s.node.name, s.node.id]));
  const onward = await request.post('/api/v1/shares', {
    headers: auth,
    data: { node_id: byName['Edits'], grantee_email: uniqueEmail('third'), role: 'SHARE_ROLE_VIEWER' },
  });
  expect(onward.status()).toBe(403);
  expect(await onward.text()).toContain('only the owner can share this');
  const listing = (await (await request.get(`/api/v1/folders/${byName['Looks']}/children`, { headers: auth })).json()) as {
    nodes: { id: string; name: string }[];
  };
  const photo = listing.nodes.find((n) => n.name === 'photo.txt')!;
  expect((await request.post(`/api/v1/files/${photo.id}/download-url`, { headers: auth, data: {} })).status()).toBe(403);
  expect((await request.get(`/api/v1/files/${photo.id}/content`, { headers: auth })).status()).toBe(403);

  // A view link open in a visitor's tab, revoked meanwhile: the tab's next step shows the not-found page.
  const dialog = await openDialog(page, 'Looks', 'Public link');
  await dialog.getByRole('form', { name: 'New link' }).getByRole('button', { name: 'Create link' }).click();
  const linkPath = new URL(await dialog.getByLabel('Link address').inputValue()).pathname;
  await page.keyboard.press('Escape');
  const anon = await (await browser.newContext({ viewport: info.project.use.viewport })).newPage();
  await anon.goto(linkPath);
  await expect(anon.getByRole('heading', { name: 'Looks' })).toBeVisible();
  await page.goto('/shared/by-me');
  await page.getByTestId('outgoing-link').first().getByRole('button', { name: /Revoke/ }).click();
  await expect(page.getByText('You have no public links')).toBeVisible();
  await anon.getByRole('link', { name: 'inside' }).click();
  await expect(anon.getByRole('heading', { name: 'Link not found' })).toBeVisible();
});
