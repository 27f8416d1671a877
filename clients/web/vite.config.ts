/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';
import { defineConfig } from 'vite';

// The dev server proxies the API (grpc-web under /flowdock.*, REST and downloads under /api) to a running
// `flowdock up`, so the app talks to the same origin in development as it does when Envoy serves it.
const api = process.env.FLOWDOCK_API ?? 'http://127.0.0.1:18080';

export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      '^/flowdock\\.': { target: api, changeOrigin: false },
      '/api/': { target: api, changeOrigin: false },
    },
  },
  build: {
    outDir: 'dist',
    // Hashed file names let the gateway cache assets for a year; index.html is never cached.
    assetsDir: 'assets',
    sourcemap: false,
    // No inline <script> or <style>: the CSP is script-src 'self'.
    assetsInlineLimit: 0,
  },
  test: {
    include: ['src/**/*.test.{ts,tsx}'],
    environment: 'node',
  },
});
