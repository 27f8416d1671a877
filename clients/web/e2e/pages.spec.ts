import { expect, test } from '@playwright/test';
import { checkA11y, shot } from './helpers';

// The pages the main flow does not pass through, at both widths: axe and a screenshot each.
const PAGES = [
  { path: '/forgot-password', heading: 'Reset your password', name: 'forgot-password' },
  { path: '/reset-password', heading: 'Choose a new password', name: 'reset-password-no-token' },
  { path: '/verify-email?token=not-a-real-token', heading: 'Confirm your email', name: 'verify-email-bad-token' },
  { path: '/oauth/callback?error=access_denied', heading: 'Signing you in', name: 'oauth-callback-refused' },
  { path: '/no/such/page', heading: 'Page not found', name: 'not-found' },
  { path: '/help', heading: 'Help', name: 'help' },
  { path: '/terms', heading: 'Terms of use', name: 'terms' },
  { path: '/privacy', heading: 'Privacy', name: 'privacy' },
];

for (const p of PAGES) {
  test(`page ${p.path}`, async ({ page }, info) => {
    await page.goto(p.path);
    await expect(page.getByRole('heading', { name: p.heading })).toBeVisible();
    if (p.name === 'verify-email-bad-token') await expect(page.getByText(/This link is not valid any more/)).toBeVisible();
    // Help, Terms and Privacy are linked from every public page's footer (so from Log in too).
    await expect(page.getByRole('list', { name: 'About FlowDock' }).getByRole('link', { name: 'Privacy' })).toBeVisible();
    await checkA11y(page, p.name);
    await shot(page, info, p.name);
  });
}

test('a deep link while signed out goes to Log in and keeps the return URL', async ({ page }) => {
  await page.goto('/files/some-folder?sort=size');
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  expect(new URL(page.url()).searchParams.get('next')).toBe('/files/some-folder?sort=size');
});

test('Help, Terms and Privacy say how this server works, with its numbers; the login page links them', async ({ page }) => {
  await page.goto('/login');
  await page.getByRole('list', { name: 'About FlowDock' }).getByRole('link', { name: 'Privacy' }).click();
  await expect(page.getByRole('heading', { name: 'Privacy', level: 1 })).toBeVisible();
  await expect(page.getByText(/names.*are kept in the server.s database without\s+encryption/s)).toBeVisible();
  await expect(page.getByText(/never records passwords, codes or tokens/)).toBeVisible();
  await page.getByRole('navigation', { name: 'More about FlowDock' }).getByRole('link', { name: 'Help' }).click();
  await expect(page.getByText(/Each file keeps its last 10 versions/)).toBeVisible();
  await expect(page.getByText(/After 10 wrong passwords within 5 minutes/)).toBeVisible();
  await page.getByRole('navigation', { name: 'More about FlowDock' }).getByRole('link', { name: 'Terms' }).click();
  await expect(page.getByText(/stay in the trash for 30 days/)).toBeVisible();
});
