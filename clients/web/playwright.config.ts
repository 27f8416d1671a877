import { defineConfig } from '@playwright/test';
import os from 'node:os';
import path from 'node:path';

/**
 * Browser tests against a real `flowdock up` (Envoy, the three services, SQLite, the outbox mailer) that serves the
 * built app (clients/web/dist) on the API's origin. Debian's Chromium only: nothing is downloaded.
 */
// --no-scan: flowdock up refuses to start without clamd; these tests do not cover the virus scanner (the storage
// suites do, with a real clamd). The infected-file message is unit-tested in src/api/errors.test.ts.
const PORT = Number(process.env.FLOWDOCK_E2E_PORT ?? 18473);
const repo = path.resolve(import.meta.dirname, '../..');
// FLOWDOCK_VENV may be relative to the repository (CI sets .ci-venv), as ./dev reads it.
const venv = path.resolve(repo, process.env.FLOWDOCK_VENV ?? '.venv');
const flowdock = process.env.FLOWDOCK_BIN ?? path.join(venv, 'bin', 'flowdock');
// A fixed path (the same in the runner and its workers), emptied by the server command before each run.
export const DATA_DIR = path.join(os.tmpdir(), `flowdock-e2e-${PORT}`);
process.env.FLOWDOCK_E2E_DATA_DIR = DATA_DIR;
process.env.FLOWDOCK_E2E_URL = `http://127.0.0.1:${PORT}`;

export default defineConfig({
  testDir: './e2e',
  outputDir: './test-results/output',
  timeout: 180_000,
  expect: { timeout: 15_000 },
  fullyParallel: true, // every test signs up its own user
  workers: Number(process.env.FLOWDOCK_E2E_WORKERS ?? 2),
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    acceptDownloads: true,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.FLOWDOCK_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [
    { name: 'desktop', use: { viewport: { width: 1280, height: 800 } } },
    // The main flow again at phone width; the other specs run once, on desktop.
    { name: 'phone', use: { viewport: { width: 390, height: 844 } }, testMatch: /(main-flow|done-when|pages|trash|sharing|public-link|settings|dashboard|admin)\.spec\.ts/ },
  ],
  webServer: {
    command: `rm -rf '${DATA_DIR}' && exec '${flowdock}' up --data-dir '${DATA_DIR}' --port ${PORT} --web-dir '${path.join(import.meta.dirname, 'dist')}' --no-scan`,
    url: `http://127.0.0.1:${PORT}/`,
    timeout: 120_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      FLOWDOCK_AUTH_PUBLIC_URL: `http://127.0.0.1:${PORT}`,
      FLOWDOCK_AUTH_RATE_REGISTER_PER_IP: '1000',
      FLOWDOCK_AUTH_RATE_LOGIN_PER_IP: '1000',
      FLOWDOCK_AUTH_RATE_TOTP_PER_IP: '1000',
      // Every browser of the suite is one client IP (127.0.0.1): parallel sign-ups and logins must not be refused
      // as one client's second concurrent password hashing.
      FLOWDOCK_AUTH_HASH_PER_CLIENT: '0',
      // The link-password throttle is reached in a few tries (public-link.spec).
      FLOWDOCK_SHARE_LINK_PASSWORD_FAILURES_PER_LINK: '3',
    },
  },
});
