import { expect, test, type Page } from '@playwright/test';
import { PASSWORD, checkA11y, lineCount, mailLink, moveToTrash, navTo, row, shot, uniqueEmail } from './helpers';

const KiB = 1024;

async function bytesOf(page: Page, testId: string): Promise<number> {
  return Number(await page.getByTestId(testId).getAttribute('data-bytes'));
}

test('dashboard: the landing page after login; usage and its breakdown change after an upload and a delete', async ({
  page,
}, info) => {
  const email = uniqueEmail('dash');
  await page.goto('/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('heading', { name: 'Check your mail' })).toBeVisible();
  await page.goto(await mailLink(email, 'verify-email'));
  await expect(page.getByText('Your email address is confirmed.')).toBeVisible();
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');

  // Log in lands here.
  await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();
  expect(new URL(page.url()).pathname).toBe('/dashboard');
  await expect(page.getByTestId('usage-total')).toHaveAttribute('data-bytes', '0');
  await expect(page.getByTestId('dashboard-recent-files')).toContainText('No uploads yet');
  await expect(page.getByTestId('dashboard-activity')).toContainText('Logged in');
  // A non-admin's navigation has no Admin entry.
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' })).toHaveCount(0);
  await checkA11y(page, 'dashboard-empty');
  await shot(page, info, 'dashboard-empty');

  // Upload from the dashboard's shortcut: usage grows by the file's size, in the "Files" part.
  const size = 300 * KiB;
  await page.getByTestId('dashboard-file-input').setInputFiles({
    name: 'report.bin',
    mimeType: 'application/octet-stream',
    buffer: Buffer.alloc(size, 7),
  });
  await expect(page.locator('[data-testid="upload-row"][data-name="report.bin"][data-status="done"]')).toBeVisible();
  await expect.poll(() => bytesOf(page, 'usage-total')).toBe(size);
  expect(await bytesOf(page, 'usage-files')).toBe(size);
  expect(await bytesOf(page, 'usage-trash')).toBe(0);
  // The activity log reaches auth_svc through the outbox: the recent lists catch up on their next load.
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId('dashboard-recent-files').getByText('report.bin')).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await expect(page.getByTestId('dashboard-activity')).toContainText('File uploaded: report.bin');
  await checkA11y(page, 'dashboard');
  await shot(page, info, 'dashboard');

  // The navigation's quota: "… of … used" on one line (cut with an ellipsis if it must be), inside the navigation,
  // and the breakdown's parts ("trash 0 B") never split. On a phone the navigation is behind the menu button.
  const menu = page.getByRole('button', { name: 'Menu', exact: true });
  if (await menu.isVisible()) await menu.click();
  const quota = page.getByTestId('quota');
  await expect(quota.getByText(/ of .* used$/)).toBeVisible();
  expect(await lineCount(quota.getByText(/ of .* used$/))).toBe(1);
  const parts = await quota.getByTestId('quota-part').all();
  expect(parts).toHaveLength(2); // trash, old versions (nothing held by uploads)
  for (const part of parts) expect(await lineCount(part)).toBe(1);
  const nav = await page.getByRole('navigation', { name: 'Main' }).boundingBox();
  const box = await quota.boundingBox();
  expect(box && nav && box.x >= nav.x && box.x + box.width <= nav.x + nav.width).toBe(true);
  await shot(page, info, 'dashboard-navigation');
  if (await menu.isVisible()) await menu.click();

  // Moved to the trash, the same bytes count under "Trash" (still towards the limit).
  await page.getByRole('navigation', { name: 'Shortcuts' }).getByRole('link', { name: 'My files' }).click();
  await expect(row(page, 'report.bin')).toBeVisible();
  await moveToTrash(page, 'report.bin');
  await navTo(page, 'Dashboard');
  await expect.poll(() => bytesOf(page, 'usage-trash')).toBe(size);
  expect(await bytesOf(page, 'usage-files')).toBe(0);
  expect(await bytesOf(page, 'usage-total')).toBe(size);

  // Shortcuts work by keyboard: New folder opens a dialog, Enter creates the folder and opens it.
  await page.getByRole('button', { name: 'New folder' }).focus();
  await page.keyboard.press('Enter');
  await expect(page.getByLabel('Folder name')).toBeFocused();
  await page.keyboard.type('From the dashboard');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('navigation', { name: 'Breadcrumbs' })).toContainText('From the dashboard');
  await navTo(page, 'Dashboard');
  for (const [label, heading] of [
    ['Trash', 'Trash'],
    ['Settings', 'Settings'],
  ] as const) {
    await page.getByRole('navigation', { name: 'Shortcuts' }).getByRole('link', { name: label }).focus();
    await page.keyboard.press('Enter');
    await expect(page.getByRole('heading', { name: heading, level: 1 })).toBeVisible();
    await page.goBack();
    await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();
  }
});
