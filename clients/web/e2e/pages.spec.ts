import { expect, test } from '@playwright/test';
import { checkA11y, shot } from './helpers';

// The pages the main flow does not pass through, at both widths: axe and a screenshot each.
const PAGES = [
  { path: '/forgot-password', heading: 'Reset your password', name: 'forgot-password' },
  { path: '/reset-password', heading: 'Choose a new password', name: 'reset-password-no-token' },
  { path: '/verify-email?token=not-a-real-token', heading: 'Confirm your email', name: 'verify-email-bad-token' },
  { path: '/oauth/callback?error=access_denied', heading: 'Signing you in', name: 'oauth-callback-refused' },
  { path: '/no/such/page', heading: 'Page not found', name: 'not-found' },
];

for (const p of PAGES) {
  test(`page ${p.path}`, async ({ page }, info) => {
    await page.goto(p.path);
    await expect(page.getByRole('heading', { name: p.heading })).toBeVisible();
    if (p.name === 'verify-email-bad-token') await expect(page.getByText(/This link is not valid any more/)).toBeVisible();
    await checkA11y(page, p.name);
    await shot(page, info, p.name);
  });
}

test('a deep link while signed out goes to Log in and keeps the return URL', async ({ page }) => {
  await page.goto('/files/some-folder?sort=size');
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  expect(new URL(page.url()).searchParams.get('next')).toBe('/files/some-folder?sort=size');
});
