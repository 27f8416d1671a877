import { expect, test, type Page } from '@playwright/test';
import { PASSWORD, checkA11y, createAdmin, lineCount, logIn, navTo, shot, signUpAndLogIn, uniqueEmail } from './helpers';

const GiB = 2 ** 30;

async function openUser(page: Page, email: string): Promise<void> {
  await navTo(page, 'Admin');
  await expect(page.getByRole('heading', { name: 'Administration', level: 1 })).toBeVisible();
  await page.getByLabel('Search accounts by email or name').fill(email);
  await page.getByLabel('Search accounts by email or name').press('Enter');
  const rows = page.getByTestId('user-row');
  await expect(rows).toHaveCount(1);
  await rows.getByRole('link', { name: email }).click();
  await expect(page.getByRole('heading', { name: email, level: 2 })).toBeVisible();
}

const section = (page: Page, name: string) => page.getByRole('region', { name, exact: true });

test('admin: quota with units, role, disable (B lands on Log in), activity filters, delete with the typed email', async ({
  browser,
  page,
}, info) => {
  const adminEmail = uniqueEmail('admin');
  createAdmin(adminEmail);
  await logIn(page, adminEmail);

  const bContext = await browser.newContext({ viewport: page.viewportSize() ?? undefined });
  const b = await bContext.newPage();
  const bEmail = uniqueEmail('member');
  await signUpAndLogIn(b, bEmail);

  await openUser(page, bEmail);
  await expect(page.getByTestId('admin-user-role')).toHaveText('User');
  await expect(page.getByTestId('admin-user-state')).toHaveText('Active');
  await expect(page.getByTestId('admin-user-sessions')).toHaveText('1 in use');
  await checkA11y(page, 'admin-user');
  await shot(page, info, 'admin-user');

  // Quota: refused at the field before any call, then set with a unit (keyboard only: Enter submits).
  const quota = section(page, 'Storage');
  const amount = quota.getByLabel('Storage limit');
  await amount.fill('lots');
  await amount.press('Enter');
  await expect(quota.getByRole('alert')).toHaveText('Enter a number, for example 10 or 2.5.');
  await expect(amount).toHaveAttribute('aria-invalid', 'true');
  await amount.fill('0');
  await amount.press('Enter');
  await expect(quota.getByRole('alert')).toContainText('above 0');
  await checkA11y(page, 'admin-quota-refused');
  await amount.fill('2.5');
  await quota.getByLabel('Unit').selectOption('GiB');
  await amount.press('Enter');
  await expect(quota.getByTestId('admin-limit')).toHaveAttribute('data-bytes', String(2.5 * GiB));
  await expect(quota.getByText('Limit set to 2.5 GiB.')).toBeVisible();
  // B's own quota (from storage_svc) says the same after B's next load.
  await b.reload();
  await expect(b.getByTestId('quota')).toContainText('of 2.5 GiB used');

  // Role: B becomes an administrator (B's navigation offers Admin), then a user again (and /admin is not found).
  const role = section(page, 'Role');
  await role.getByLabel('Role').selectOption('admin');
  await role.getByRole('button', { name: 'Save role' }).click();
  await expect(page.getByTestId('admin-user-role')).toHaveText('Administrator');
  await b.reload();
  await expect(b.getByRole('heading', { name: 'My files' })).toBeVisible();
  await navTo(b, 'Admin');
  await expect(b.getByRole('heading', { name: 'Administration', level: 1 })).toBeVisible();
  await role.getByLabel('Role').selectOption('user');
  await role.getByRole('button', { name: 'Save role' }).click();
  await expect(page.getByTestId('admin-user-role')).toHaveText('User');
  // B's page was loaded as an admin: its next call is refused by the server, shown in words (no crash).
  await b.getByLabel('Search accounts by email or name').fill('a');
  await b.getByLabel('Search accounts by email or name').press('Enter');
  await expect(b.getByRole('alert')).toContainText('Permission denied');
  await expect(b.getByRole('heading', { name: 'Administration', level: 1 })).toBeVisible();
  await b.goto('/admin');
  await expect(b.getByTestId('not-found')).toBeVisible();

  // Disable: B's open tab lands on Log in within seconds of its next action.
  await b.goto('/files');
  await expect(b.getByRole('heading', { name: 'My files' })).toBeVisible();
  await section(page, 'Access').getByRole('button', { name: 'Disable account' }).click();
  const dialog = page.getByRole('dialog', { name: 'Disable this account?' });
  await dialog.getByRole('button', { name: 'Disable', exact: true }).click();
  await expect(page.getByTestId('admin-user-state')).toHaveText('Disabled');
  await expect(page.getByTestId('admin-user-sessions')).toHaveText('Not logged in anywhere');
  await page.waitForTimeout(2500); // services cache a session's "alive" answer for up to 2 s (tokens.py)
  const started = Date.now();
  await navTo(b, 'Trash');
  await expect(b.getByRole('heading', { name: 'Log in' })).toBeVisible({ timeout: 10_000 });
  expect(Date.now() - started).toBeLessThan(5_000);
  await expect(b.getByText('Your session has ended. Please log in again.')).toBeVisible();
  await b.getByLabel('Email').fill(bEmail);
  await b.getByLabel('Password').fill(PASSWORD);
  await b.getByRole('button', { name: 'Log in' }).click();
  await expect(b.getByText('Email or password is wrong.')).toBeVisible(); // a disabled account cannot log in
  await section(page, 'Access').getByRole('button', { name: 'Enable account' }).click();
  await expect(page.getByTestId('admin-user-state')).toHaveText('Active');
  await b.getByLabel('Password').fill(PASSWORD);
  await b.getByRole('button', { name: 'Log in' }).click();
  await expect(b.getByRole('heading', { name: 'Trash', level: 1 })).toBeVisible(); // back where it was

  // Everyone's activity, filtered on the server by account, kind and dates.
  await page.getByRole('link', { name: 'Activity of this account' }).click();
  await expect(page.getByRole('heading', { name: 'Activity', level: 1 })).toBeVisible();
  await expect(page.getByLabel('Account (email)')).toHaveValue(bEmail);
  await page.getByLabel('Kind').selectOption({ label: 'Administration' });
  await page.getByRole('button', { name: 'Show' }).click();
  const rows = page.getByTestId('admin-activity-row');
  await expect
    .poll(() => rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-kind'))))
    .toEqual(['admin.user_enabled', 'admin.user_disabled', 'admin.role_changed', 'admin.role_changed', 'admin.quota_set']);
  await expect(rows.first()).toContainText(`by ${adminEmail}`);
  await checkA11y(page, 'admin-activity');
  await shot(page, info, 'admin-activity');
  const today = new Date();
  const day = (d: Date) =>
    `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  await page.getByLabel('From date').fill(day(today));
  await page.getByLabel('To date (included)').fill(day(yesterday));
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page.getByText('The end date must be on or after the start date.')).toBeVisible();
  await page.getByLabel('From date').fill(day(yesterday));
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page.getByText('Nothing matches these filters.')).toBeVisible();
  await page.getByLabel('To date (included)').fill(day(today));
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(rows).toHaveCount(5);
  await page.getByLabel('Account (email)').fill('nobody-here@example.com');
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page.getByText('No account uses this email address.')).toBeVisible();

  // Delete: only the typed email confirms it (by keyboard: Enter submits the dialog's form).
  await openUser(page, bEmail);
  await section(page, 'Delete account').getByRole('button', { name: 'Delete account…' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete this account for good?' });
  const typed = confirm.getByLabel('Email of the account to delete');
  await expect(typed).toBeFocused();
  await confirm.getByRole('button', { name: 'Delete for good' }).click(); // nothing typed: refused at the field
  await expect(typed).toHaveAttribute('aria-invalid', 'true');
  await typed.fill(bEmail.replace('@', '@x'));
  await typed.press('Enter');
  await expect(confirm.getByRole('alert')).toContainText('Type the account’s email address exactly');
  await checkA11y(page, 'admin-delete-confirm');
  await shot(page, info, 'admin-delete-confirm');
  await typed.fill(bEmail);
  await typed.press('Enter');
  await expect(page.getByText(`Deleted ${bEmail}`)).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Administration', level: 1 })).toBeVisible();
  await checkA11y(page, 'admin-users');
  await shot(page, info, 'admin-users');
  // An account's labels line up: each on one line, the badges of one height; on a phone they start under the email.
  await page.getByLabel('Search accounts by email or name').fill(adminEmail);
  await page.getByLabel('Search accounts by email or name').press('Enter');
  const own = page.getByTestId('user-row');
  await expect(own).toHaveCount(1);
  const badges = own.getByTestId('user-badges');
  await expect(badges).toContainText('Administrator');
  await expect(badges).toContainText('Active');
  const labels = await badges.locator(':scope > *').all();
  expect(labels).toHaveLength(3); // Administrator, Active, Since …
  for (const label of labels) expect(await lineCount(label)).toBe(1);
  const [adminBadge, stateBadge] = await Promise.all(labels.slice(0, 2).map((l) => l.boundingBox()));
  expect(adminBadge?.height).toBe(stateBadge?.height);
  if ((page.viewportSize()?.width ?? 1280) < 640) {
    const link = await own.getByRole('link', { name: adminEmail }).boundingBox();
    expect(Math.abs((await badges.boundingBox())!.x - link!.x)).toBeLessThan(1);
  }
  await shot(page, info, 'admin-users-own');
  await page.getByLabel('Search accounts by email or name').fill(bEmail);
  await page.getByLabel('Search accounts by email or name').press('Enter');
  await expect(page.getByText(`No account matches “${bEmail}”.`)).toBeVisible();
  // B's tab: the account is gone, so its next action lands on Log in.
  await page.waitForTimeout(2500);
  await navTo(b, 'Shared');
  await expect(b.getByRole('heading', { name: 'Log in' })).toBeVisible({ timeout: 10_000 });
  await bContext.close();
});

test('admin: a non-admin has no Admin in the navigation, /admin is the not-found page, the server refuses', async ({
  page,
  request,
}, info) => {
  const email = uniqueEmail('plain');
  await signUpAndLogIn(page, email);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' })).toHaveCount(0);
  for (const path of ['/admin', '/admin/activity', '/admin/users/00000000-0000-0000-0000-000000000000']) {
    await page.goto(path);
    await expect(page.getByTestId('not-found')).toBeVisible();
  }
  await checkA11y(page, 'admin-not-found');
  await shot(page, info, 'admin-not-found');
  // A forced call with this account's token: PERMISSION_DENIED (403), whatever the page shows.
  const login = await request.post('/api/v1/auth/login', { data: { email, password: PASSWORD } });
  const token = ((await login.json()) as { accessToken: string }).accessToken;
  const forced = await request.get('/api/v1/admin/users', { headers: { authorization: `Bearer ${token}` } });
  expect(forced.status()).toBe(403);
  const forcedActivity = await request.get('/api/v1/admin/activity', { headers: { authorization: `Bearer ${token}` } });
  expect(forcedActivity.status()).toBe(403);
});
