import { expect, test, type Page } from '@playwright/test';
import { readFile } from 'node:fs/promises';
import { checkA11y, newFolder, row, selectOnly, shot, signUpAndLogIn, uniqueEmail, uploadText } from './helpers';

async function openShareDialog(page: Page, name: string) {
  await page.goto('/files');
  await selectOnly(page, name);
  await page.getByRole('toolbar').getByRole('button', { name: 'Share', exact: true }).click();
  return page.getByRole('dialog', { name: `Share “${name}”` });
}

test('share a folder: viewer cannot download, downloader can, revoked → "no longer shared"; an editor uploads but cannot share on', async ({
  browser,
}, info) => {
  test.setTimeout(240_000);
  const a = await (await browser.newContext({ viewport: info.project.use.viewport })).newPage();
  const b = await (await browser.newContext({ viewport: info.project.use.viewport })).newPage();
  const emailA = uniqueEmail('owner');
  const emailB = uniqueEmail('grantee');
  await signUpAndLogIn(b, emailB);
  await signUpAndLogIn(a, emailA);
  const text = `plan for ${emailA}`;
  await newFolder(a, 'Team');
  await newFolder(a, 'Inbox');
  await row(a, 'Team').getByRole('link').click();
  await uploadText(a, 'plan.txt', text);

  // An email without an account: the server's answer at the field.
  let dialog = await openShareDialog(a, 'Team');
  await expect(dialog.getByText('Cannot download, upload or change anything')).toBeVisible(); // roles in words
  await dialog.getByLabel('Email of the person').fill('nobody-here@example.com');
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  await expect(dialog.getByRole('alert')).toContainText('No FlowDock account uses this email');
  await dialog.getByLabel('Email of the person').fill(emailB);
  await dialog.getByRole('radio', { name: /^Viewer/ }).check();
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  await expect(dialog.getByText(`Shared with ${emailB} as viewer`)).toBeVisible();
  await expect(dialog.locator(`[data-testid="grant"][data-email="${emailB}"]`)).toBeVisible();
  await checkA11y(a, 'share-dialog');
  await shot(a, info, 'share-dialog');
  await dialog.getByRole('button', { name: 'Close' }).click();

  // B sees it at once; as viewer there is no Download.
  await b.goto('/shared');
  await expect(b.getByRole('heading', { name: 'Shared with me' })).toBeVisible();
  await expect(b.locator('[data-testid="incoming-share"][data-name="Team"]')).toContainText('Viewer');
  await checkA11y(b, 'shared-with-me');
  await shot(b, info, 'shared-with-me');
  await b.getByRole('link', { name: 'Team' }).click();
  const crumbs = b.getByRole('navigation', { name: 'Breadcrumbs' });
  await expect(crumbs).toHaveText(/^Shared with me\s*\/\s*Team$/);
  await expect(row(b, 'plan.txt')).toBeVisible();
  await expect(b.getByRole('button', { name: /Download/ })).toHaveCount(0);
  await expect(b.getByRole('button', { name: 'Upload files' })).toHaveCount(0);
  await checkA11y(b, 'shared-folder-viewer');
  await shot(b, info, 'shared-folder-viewer');

  // A makes B a downloader: B downloads the exact bytes.
  dialog = await openShareDialog(a, 'Team');
  await dialog.getByLabel(`Role of ${emailB}`).selectOption('downloader');
  await expect(dialog.getByLabel(`Role of ${emailB}`)).toHaveValue('downloader');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await b.reload(); // a full page load of /shared/f/<id>
  const [download] = await Promise.all([b.waitForEvent('download'), b.getByRole('button', { name: 'Download plan.txt' }).click()]);
  expect(await readFile(await download.path(), 'utf8')).toBe(text);

  // Shared by me lists it; A revokes there; B's next action says it is no longer shared.
  await a.goto('/shared/by-me');
  await expect(a.getByRole('heading', { name: 'Shared by me' })).toBeVisible();
  const share = a.getByTestId('outgoing-share').filter({ hasText: emailB });
  await expect(share).toContainText('Downloader');
  await expect(share).toContainText('Team');
  await checkA11y(a, 'shared-by-me');
  await shot(a, info, 'shared-by-me');
  await share.getByRole('button', { name: /Revoke/ }).click();
  await expect(a.getByText('You have not shared anything with people')).toBeVisible();
  await b.getByRole('button', { name: 'Download plan.txt' }).click();
  await expect(b.getByRole('heading', { name: 'No longer shared' })).toBeVisible();
  await checkA11y(b, 'no-longer-shared');
  await shot(b, info, 'no-longer-shared');

  // An editor: upload, new folder and rename are offered; sharing onward is not.
  dialog = await openShareDialog(a, 'Inbox');
  await dialog.getByLabel('Email of the person').fill(emailB);
  await dialog.getByRole('radio', { name: /^Editor/ }).check();
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  await expect(dialog.locator(`[data-testid="grant"][data-email="${emailB}"]`)).toBeVisible();
  await dialog.getByRole('button', { name: 'Close' }).click();
  await b.goto('/shared');
  await b.getByRole('link', { name: 'Inbox' }).click();
  await expect(b.getByTestId('my-role')).toHaveText('Your role: Editor');
  await expect(b.getByRole('button', { name: 'New folder' })).toBeVisible();
  await expect(b.getByRole('button', { name: /Share/ })).toHaveCount(0);
  await uploadText(b, 'from-b.txt', 'hello from B');
  await a.goto('/files');
  await row(a, 'Inbox').getByRole('link').click();
  await expect(row(a, 'from-b.txt')).toBeVisible();
});
