import { expect, test, type Page } from '@playwright/test';
import { PASSWORD, checkA11y, logIn, shot, signUpAndLogIn, totp, uniqueEmail } from './helpers';

async function openSettings(page: Page): Promise<void> {
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('banner').getByRole('link', { name: 'Settings' }).click();
  await expect(page.getByRole('heading', { name: 'Settings', level: 1 })).toBeVisible();
}

async function logOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  // Logged out for good (the header offers Sign up) before the form is used: Log out shows this page first.
  await expect(page.getByRole('link', { name: 'Sign up' })).toBeVisible();
}

const region = (page: Page, name: string) => page.getByRole('region', { name, exact: true });

test('settings: display name, a refused and an accepted password change, then log in with the new password', async ({
  page,
}, info) => {
  const email = uniqueEmail('settings');
  await signUpAndLogIn(page, email);
  await openSettings(page);
  await expect(region(page, 'Profile')).toContainText(email);
  await checkA11y(page, 'settings');
  await shot(page, info, 'settings');

  const profile = region(page, 'Profile');
  await profile.getByLabel('Display name').fill('Ann Settings');
  await profile.getByRole('button', { name: 'Save name' }).click();
  await expect(profile.getByText('Your name is saved.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Account menu for Ann Settings' })).toBeVisible();

  const password = region(page, 'Password');
  const fresh = 'amber falcon 58 tunnel';
  // The server's reasons land at the field they are about.
  await password.getByLabel('Current password').fill(PASSWORD);
  await password.getByLabel('New password').fill('short1');
  await password.getByRole('button', { name: 'Change password' }).click();
  await expect(password.getByRole('alert').filter({ hasText: 'Password must be at least 8 characters' })).toBeVisible();
  await expect(password.getByLabel('New password')).toHaveAttribute('aria-invalid', 'true');
  await password.getByLabel('Current password').fill('not my password 123');
  await password.getByLabel('New password').fill(fresh);
  await password.getByRole('button', { name: 'Change password' }).click();
  await expect(password.getByRole('alert').filter({ hasText: 'The current password is not correct' })).toBeVisible();
  await expect(password.getByLabel('Current password')).toHaveAttribute('aria-invalid', 'true');
  await checkA11y(page, 'settings-password-refused');
  await shot(page, info, 'settings-password-refused');

  await password.getByLabel('Current password').fill(PASSWORD);
  await password.getByLabel('New password').fill(fresh);
  await password.getByRole('button', { name: 'Change password' }).click();
  await expect(password.getByText('Your password is changed, and your other devices are logged out.')).toBeVisible();

  // The activity log has the change and the refused attempt; the filter narrows it.
  const activity = region(page, 'My activity');
  const entries = activity.getByTestId('activity-row');
  await expect(entries.filter({ hasText: 'Password changed' })).toHaveCount(1);
  await expect(entries.filter({ hasText: 'Password change refused (wrong current password)' })).toHaveCount(1);
  await expect(entries.filter({ hasText: 'Logged in' }).first()).toBeVisible();
  await activity.getByLabel('Show').selectOption({ label: 'Logins and sessions' });
  await expect(entries.filter({ hasText: 'Password changed' })).toHaveCount(0);
  await expect(entries.filter({ hasText: 'Logged in' }).first()).toBeVisible();
  await activity.scrollIntoViewIfNeeded();
  await checkA11y(page, 'settings-activity');
  await shot(page, info, 'settings-activity');
  // Dates are filtered by the server; an end before the start is refused at its field.
  await activity.getByLabel('From date').fill('2099-01-02');
  await activity.getByLabel('To date').fill('2099-01-01');
  await expect(activity.getByText('The end date is before the start date.')).toBeVisible();
  await activity.getByLabel('To date').fill('');
  await expect(activity.getByText('Nothing to show.')).toBeVisible();
  await activity.getByLabel('From date').fill('');
  await expect(entries.filter({ hasText: 'Logged in' }).first()).toBeVisible();

  await logOut(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByText('Email or password is wrong.')).toBeVisible();
  await logIn(page, email, fresh);
});

test('2FA: set up from the server secret, recovery codes once, log in with a code, turn off with a recovery code', async ({
  page,
}, info) => {
  const email = uniqueEmail('settings-2fa');
  await signUpAndLogIn(page, email);
  await openSettings(page);
  const twoFactor = region(page, 'Two-factor authentication');
  await twoFactor.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const qr = twoFactor.getByRole('img', { name: /QR code/ });
  await expect(qr).toBeVisible();
  // The server's SVG is drawn (a broken image is "visible" too).
  await expect.poll(() => qr.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(0);
  const secret = (await twoFactor.getByTestId('totp-secret').innerText()).replace(/\s+/g, '');
  expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
  await qr.scrollIntoViewIfNeeded();
  await checkA11y(page, 'settings-2fa-enrol');
  await shot(page, info, 'settings-2fa-enrol');

  const step = Math.floor(Date.now() / 30_000);
  const valid = [-1, 0, 1, 2].map((d) => totp(secret, step + d));
  const wrong = ['000000', '111111', '222222', '333333', '444444'].find((c) => !valid.includes(c))!;
  const code = twoFactor.getByLabel('Code from the app');
  await code.fill(wrong);
  await twoFactor.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
  await expect(twoFactor.getByRole('alert').filter({ hasText: /^Code is not the current code/ })).toBeVisible();
  await code.fill(totp(secret, step));
  await twoFactor.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
  await expect(twoFactor.getByText('Two-factor authentication is on.')).toBeVisible();
  const codes = await twoFactor.getByTestId('recovery-codes').getByRole('listitem').allInnerTexts();
  expect(codes).toHaveLength(10);
  const download = page.waitForEvent('download');
  await twoFactor.getByRole('button', { name: 'Download codes' }).click();
  const saved = await download;
  expect(saved.suggestedFilename()).toBe('flowdock-recovery-codes.txt');
  await twoFactor.getByTestId('recovery-codes').scrollIntoViewIfNeeded();
  await checkA11y(page, 'settings-2fa-codes');
  await shot(page, info, 'settings-2fa-codes');
  await twoFactor.getByRole('button', { name: 'I have saved them' }).click();
  // Shown once: gone from the page, and turning it off is offered instead.
  await expect(twoFactor.getByTestId('recovery-codes')).toHaveCount(0);
  await expect(twoFactor.getByRole('button', { name: 'Turn off two-factor authentication' })).toBeVisible();

  await logOut(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  // The code that turned 2FA on is spent; the next step's code is within the allowed drift.
  await page.getByLabel('Code').fill(totp(secret, step + 1));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();

  await openSettings(page);
  await twoFactor.getByLabel('Password').fill('not my password 123');
  await twoFactor.getByLabel('Code').fill(codes[0]);
  await twoFactor.getByRole('button', { name: 'Turn off two-factor authentication' }).click();
  await expect(twoFactor.getByRole('alert').filter({ hasText: 'The current password is not correct' })).toBeVisible();
  await twoFactor.getByLabel('Password').fill(PASSWORD);
  await twoFactor.getByLabel('Code').fill(codes[0]);
  await twoFactor.getByRole('button', { name: 'Turn off two-factor authentication' }).click();
  await expect(twoFactor.getByText(/Two-factor authentication is off\. Logging in asks only for your password/)).toBeVisible();
  await expect(twoFactor.getByRole('button', { name: 'Set up two-factor authentication' })).toBeVisible();
});

test('sessions: this device is marked; ending another session sends that browser to Log in', async ({
  page,
  browser,
  request,
}, info) => {
  const email = uniqueEmail('settings-sessions');
  await signUpAndLogIn(page, email);
  const otherContext = await browser.newContext();
  const other = await otherContext.newPage();
  await logIn(other, email);

  await openSettings(page);
  const sessions = region(page, 'Sessions');
  const rows = sessions.getByTestId('session-row');
  await expect(rows).toHaveCount(2);
  const current = rows.and(page.locator('[data-current="true"]'));
  await expect(current).toContainText('This device');
  await expect(current).toContainText('Chrome on Linux');
  await expect(current.getByRole('button', { name: 'End this session' })).toHaveCount(0);
  await sessions.scrollIntoViewIfNeeded(); // the page scrolls inside main: show the sessions in the screenshot
  await checkA11y(page, 'settings-sessions');
  await shot(page, info, 'settings-sessions');

  await rows.and(page.locator('[data-current="false"]')).getByRole('button', { name: 'End this session' }).click();
  await expect(sessions.getByText(/The session on .* is ended/)).toBeVisible();
  await expect(rows).toHaveCount(1);
  await page.waitForTimeout(2500); // services cache a session's "alive" answer for up to 2 s
  // Its next action (a search, there at both widths) is refused, and the refresh too.
  await other.getByRole('searchbox', { name: 'Search files by name' }).fill('report');
  await other.getByRole('searchbox', { name: 'Search files by name' }).press('Enter');
  await expect(other.getByRole('heading', { name: 'Log in' })).toBeVisible({ timeout: 20_000 });
  await expect(other.getByText('Your session has ended. Please log in again.')).toBeVisible();
  await otherContext.close();

  // Another device logs in (here: a client of the REST API); "End all other sessions" ends it, this one stays.
  const res = await request.post('/api/v1/auth/login', { data: { email, password: PASSWORD, deviceName: 'backup script' } });
  expect(res.ok()).toBe(true);
  const { accessToken } = (await res.json()) as { accessToken: string };
  await page.reload();
  await expect(rows).toHaveCount(2);
  await expect(sessions).toContainText('backup script');
  await sessions.getByRole('button', { name: 'End all other sessions' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'End all other sessions' }).click();
  await expect(sessions.getByText(/One other session is ended/)).toBeVisible();
  await expect(rows).toHaveCount(1);
  await expect(sessions.getByRole('button', { name: 'End all other sessions' })).toBeDisabled();
  await page.waitForTimeout(2500);
  const refused = await request.get('/api/v1/me', { headers: { authorization: `Bearer ${accessToken}` } });
  expect(refused.status()).toBe(401);
});

test('log in typed while Log out is still on its way: the login waits for it, and the new session survives a reload', async ({
  page,
}, info) => {
  const email = uniqueEmail('relogin');
  await signUpAndLogIn(page, email);
  // A slow network: the browser holds the Logout call until released, while the next login is typed.
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const logoutCall = /\/flowdock\.auth\.v1\.AuthService\/Logout$/;
  await page.route(logoutCall, async (route) => {
    await held;
    await route.continue();
  });
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  await expect(page.getByText('Logging you out…')).toBeVisible();
  await expect(page.getByRole('link', { name: 'My files' })).toHaveCount(0); // the session being ended is not offered
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  const submit = page.getByRole('button', { name: 'Log in', exact: true });
  await expect(submit).toBeDisabled();
  await page.getByLabel('Password').press('Enter'); // implicit submission is held back too
  await checkA11y(page, 'login-while-logging-out');
  await shot(page, info, 'login-while-logging-out');
  await expect(page).toHaveURL(/\/login$/);

  release();
  await expect(page.getByText('Logging you out…')).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'Sign up' })).toBeVisible(); // the old session is over
  await submit.click();
  await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();
  await page.unroute(logoutCall);
  // The Logout's answer clears the refresh cookie: it came first, so the new session's cookie outlives a reload.
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Dashboard', level: 1 })).toBeVisible();
  await expect(page).toHaveURL(/\/dashboard$/);
});
