import { expect, test } from '@playwright/test';
import { PASSWORD, signUpAndLogIn, uniqueEmail } from './helpers';

// Opt-in (it creates thousands of entries): FLOWDOCK_E2E_BIG_FOLDER=10000 npm --prefix clients run e2e -- big-folder
const COUNT = Number(process.env.FLOWDOCK_E2E_BIG_FOLDER ?? 0);

test('a big folder renders a window of rows and pages through the server tokens to the last entry', async ({
  page,
  request,
}) => {
  test.skip(COUNT === 0, 'opt-in: set FLOWDOCK_E2E_BIG_FOLDER to the number of entries');
  test.setTimeout(600_000);
  const email = uniqueEmail('big');
  await signUpAndLogIn(page, email);
  const headers = { authorization: '' };
  // Creating 10,000 entries outlasts one 5-minute access token: log in again when it expires.
  const relogin = async () => {
    const login = await (await request.post('/api/v1/auth/login', { data: { email, password: PASSWORD } })).json();
    headers.authorization = `Bearer ${login.accessToken}`;
  };
  await relogin();
  const big = await (await request.post('/api/v1/folders', { headers, data: { parentId: 'root', name: 'Big' } })).json();
  const names = Array.from({ length: COUNT }, (_, i) => `entry-${String(i).padStart(5, '0')}`);
  for (let i = 0; i < names.length; i += 25) {
    await Promise.all(
      names.slice(i, i + 25).map(async (name) => {
        for (;;) {
          const res = await request.post('/api/v1/folders', { headers, data: { parentId: big.id, name } });
          if (res.ok()) return;
          if (res.status() === 401) await relogin();
          else if (res.status() !== 429) throw new Error(`${res.status()} ${await res.text()}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }),
    );
  }
  const started = Date.now();
  await page.goto(`/files/${big.id}`);
  await expect(page.locator('[data-testid="file-row"]').first()).toBeVisible();
  console.log(`first row of a ${COUNT}-entry folder ${Date.now() - started} ms after navigation`);
  expect(await page.locator('[data-testid="file-row"]').count()).toBeLessThan(100);
  const scroller = page.getByTestId('file-scroll');
  const last = page.locator(`[data-testid="file-row"][data-name="${names[names.length - 1]}"]`);
  const scrollStart = Date.now();
  for (let i = 0; i < 200 && !(await last.isVisible()); i++) {
    await scroller.evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await page.waitForTimeout(100);
  }
  await expect(last).toBeVisible();
  console.log(`scrolled to entry ${COUNT} in ${Date.now() - scrollStart} ms`);
  expect(await page.locator('[data-testid="file-row"]').count()).toBeLessThan(100);
});
