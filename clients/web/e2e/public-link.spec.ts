import { expect, test, type Page } from '@playwright/test';
import { readFile, stat } from 'node:fs/promises';
import { MiB, checkA11y, makeFile, newFolder, row, selectOnly, shot, signUpAndLogIn, uniqueEmail, uploadText } from './helpers';

async function createLink(
  page: Page,
  name: string,
  opts: { permission?: RegExp; password?: string; limit?: string; expires?: string },
): Promise<string> {
  await page.goto('/files');
  await selectOnly(page, name);
  await page.getByRole('toolbar').getByRole('button', { name: 'Public link' }).click();
  const dialog = page.getByRole('dialog');
  const form = dialog.getByRole('form', { name: 'New link' });
  if (opts.permission) await form.getByRole('radio', { name: opts.permission }).check();
  if (opts.password) await form.getByLabel('Password (optional)').fill(opts.password);
  if (opts.limit) await form.getByLabel('Download limit (optional)').fill(opts.limit);
  if (opts.expires) await form.getByLabel('Expires after (optional)').fill(opts.expires);
  const before = await dialog.getByTestId('link').count();
  await form.getByRole('button', { name: 'Create link' }).click();
  await expect(dialog.getByTestId('link')).toHaveCount(before + 1);
  // Only a link made in this dialog shows its address (the server keeps a fingerprint of the token, not the token).
  const address = await dialog.getByLabel('Link address').inputValue();
  return new URL(address).pathname;
}

test('public links: password + download limit, browse to the root, file drop of 20 MiB, throttle, revoked → not found', async ({
  page,
  browser,
}, info) => {
  test.setTimeout(240_000);
  const big = await makeFile('drop/drop-20m.bin', 20 * MiB);
  await signUpAndLogIn(page, uniqueEmail('links'));
  await newFolder(page, 'Photos');
  await newFolder(page, 'Inbox');
  await row(page, 'Photos').getByRole('link').click();
  await uploadText(page, 'a.txt', 'public bytes');
  await newFolder(page, 'sub');

  // An expiry in the past is refused at its field.
  await page.goto('/files');
  await selectOnly(page, 'Photos');
  await page.getByRole('toolbar').getByRole('button', { name: 'Public link' }).click();
  const form = page.getByRole('dialog').getByRole('form', { name: 'New link' });
  await form.getByLabel('Expires after (optional)').fill('2020-01-01');
  await form.getByRole('button', { name: 'Create link' }).click();
  await expect(form.getByText('must be in the future', { exact: false })).toBeVisible();
  await page.keyboard.press('Escape');

  const url = await createLink(page, 'Photos', { password: 'link secret 123', limit: '1' });
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByTestId('link-facts')).toHaveText(/View and download · password · no expiry · 0 of 1 downloads used/);
  await dialog.getByRole('button', { name: 'QR code' }).click();
  await expect(dialog.getByRole('img', { name: /QR code of the link/ })).toBeVisible();
  await checkA11y(page, 'link-dialog');
  await shot(page, info, 'link-dialog');
  expect(url).toMatch(/^\/s\/[\w-]+$/);

  // An anonymous visitor: wrong password, then the right one; breadcrumbs stop at the link's root.
  const anon = await (await browser.newContext({ viewport: info.project.use.viewport })).newPage();
  await anon.goto(url);
  await expect(anon.getByRole('heading', { name: 'This link has a password' })).toBeVisible();
  await checkA11y(anon, 'link-password');
  await shot(anon, info, 'link-password');
  await anon.getByLabel('Password').fill('not the password');
  await anon.getByRole('button', { name: 'Open' }).click();
  await expect(anon.getByText('Wrong password.')).toBeVisible();
  await anon.getByLabel('Password').fill('link secret 123');
  await anon.getByRole('button', { name: 'Open' }).click();
  await expect(anon.getByRole('heading', { name: 'Photos' })).toBeVisible();
  await anon.getByRole('link', { name: 'sub' }).click();
  await expect(anon.getByRole('navigation', { name: 'Breadcrumbs' })).toHaveText(/^Photos\s*\/\s*sub$/);
  await anon.getByRole('navigation', { name: 'Breadcrumbs' }).getByRole('link', { name: 'Photos' }).click();
  await checkA11y(anon, 'link-folder');
  await shot(anon, info, 'link-folder');
  const href = await anon.getByRole('link', { name: 'Download a.txt' }).getAttribute('href');
  const [download] = await Promise.all([anon.waitForEvent('download'), anon.getByRole('link', { name: 'Download a.txt' }).click()]);
  expect(await readFile(await download.path(), 'utf8')).toBe('public bytes');
  // The limit of 1 is used: the same plain GET is refused now.
  const second = await anon.request.get(href!);
  expect(second.ok()).toBe(false);
  await page.goto('/shared/by-me');
  await expect(page.getByTestId('outgoing-link').first()).toContainText('1 of 1 downloads used');

  // A file drop: the visitor sends 20 MiB, sees nothing of the folder, and the file lands in A's Inbox.
  const dropUrl = await createLink(page, 'Inbox', { permission: /Upload only/ });
  await anon.goto(dropUrl);
  await expect(anon.getByRole('heading', { name: 'Send files' })).toBeVisible();
  await expect(anon.getByTestId('link-row')).toHaveCount(0);
  await anon.getByTestId('link-file-input').setInputFiles(big);
  await expect(anon.locator('[data-testid="drop-row"][data-name="drop-20m.bin"]')).toHaveAttribute('data-status', 'done', { timeout: 120_000 });
  await checkA11y(anon, 'link-drop');
  await shot(anon, info, 'link-drop');
  await page.goto('/files');
  await row(page, 'Inbox').getByRole('link').click();
  await expect(row(page, 'drop-20m.bin')).toContainText(`${(await stat(big)).size / MiB} MiB`);

  // Wrong passwords many times: the throttle's wait is shown, nothing crashes.
  const locked = await createLink(page, 'Photos', { password: 'another secret 9' });
  await anon.goto(locked);
  for (let i = 0; i < 4; i++) {
    await anon.getByLabel('Password').fill(`wrong ${i}`);
    await anon.getByRole('button', { name: 'Open' }).click();
    await expect(anon.getByRole('alert')).toBeVisible();
  }
  await expect(anon.getByRole('alert')).toHaveText(/Too many wrong passwords for this link\. Try again in \d+ minutes\./);

  // Revoked: the open tab's next step and a fresh load both show the not-found page.
  await page.goto('/shared/by-me');
  const links = page.getByTestId('outgoing-link');
  await expect(links).toHaveCount(3);
  for (let left = 3; left > 0; left--) {
    await links.first().getByRole('button', { name: /Revoke/ }).click();
    if (left > 1) await expect(links).toHaveCount(left - 1);
  }
  await expect(page.getByText('You have no public links')).toBeVisible();
  await anon.goto(url);
  await expect(anon.getByRole('heading', { name: 'Link not found' })).toBeVisible();
  await checkA11y(anon, 'link-gone');
  await shot(anon, info, 'link-gone');
  await anon.goto('/s/this-token-never-existed-000000');
  await expect(anon.getByRole('heading', { name: 'Link not found' })).toBeVisible();
});
