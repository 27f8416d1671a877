import { expect, test } from '@playwright/test';
import { checkA11y, moveToTrash, newFolder, row, shot, signUpAndLogIn, uniqueEmail, uploadText } from './helpers';

test('trash: original place and dates, restore with the rename rule, delete forever, empty with confirmation', async ({
  page,
}, info) => {
  await signUpAndLogIn(page, uniqueEmail('trash'));
  await newFolder(page, 'Docs');
  await newFolder(page, 'Old');
  await row(page, 'Docs').getByRole('link').click();
  await uploadText(page, 'report.txt', 'first report');
  await moveToTrash(page, 'report.txt');
  // A new report.txt takes the name while the first one is in the trash.
  await uploadText(page, 'report.txt', 'second report');
  await page.getByRole('navigation', { name: 'Breadcrumbs' }).getByRole('link', { name: 'My files' }).click();
  await moveToTrash(page, 'Old');

  // A full page load of /trash (the gateway answers the route with the app).
  await page.goto('/trash');
  await expect(page.getByRole('heading', { name: 'Trash' })).toBeVisible();
  const report = page.locator('[data-testid="trash-row"][data-name="report.txt"]');
  await expect(report).toContainText('From My files / Docs');
  await expect(report).toContainText(/deleted \w/);
  await expect(report).toContainText(/Deleted for good in 30 days/);
  await expect(page.getByTestId('trash-rules')).toContainText('stay here for 30 days, then they are deleted for good automatically');
  await expect(page.getByTestId('trash-rules')).toContainText('“report (1).pdf”');
  await checkA11y(page, 'trash');
  await shot(page, info, 'trash');

  // Restore: the name is taken, so it comes back numbered, and the page says so.
  await report.getByRole('button', { name: 'Restore report.txt' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'is back in My files / Docs as “report (1).txt”' })).toBeVisible();
  await expect(report).toHaveCount(0);
  await page.getByRole('link', { name: 'Show it' }).click();
  await expect(row(page, 'report (1).txt')).toHaveAttribute('aria-selected', 'true');
  await expect(row(page, 'report.txt')).toBeVisible();

  // Delete forever asks first; Cancel keeps it.
  await moveToTrash(page, 'report (1).txt');
  await page.goto('/trash');
  const again = page.locator('[data-testid="trash-row"][data-name="report (1).txt"]');
  await again.getByRole('button', { name: /Delete forever/ }).click();
  await expect(page.getByRole('dialog')).toContainText('will be deleted for good');
  await checkA11y(page, 'trash-delete-forever');
  await shot(page, info, 'trash-delete-forever');
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  await expect(again).toBeVisible();
  await again.getByRole('button', { name: /Delete forever/ }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete forever' }).click();
  await expect(again).toHaveCount(0);
  await expect(page.locator('[data-testid="trash-row"]')).toHaveCount(1);

  // Empty trash, with confirmation.
  await page.getByRole('button', { name: 'Empty trash' }).click();
  await expect(page.getByRole('dialog')).toContainText('Everything in the trash (1 item');
  await page.getByRole('dialog').getByRole('button', { name: 'Empty trash' }).click();
  await expect(page.getByRole('dialog')).toBeHidden();
  await expect(page.getByText('The trash is empty')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Empty trash' })).toBeDisabled();
  await checkA11y(page, 'trash-empty');
  await shot(page, info, 'trash-empty');
});
