import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { RouterProvider } from 'react-router';
import { useAuth } from './auth/store';
import { router } from './router';
import './index.css';

const queryClient = new QueryClient({
  defaultOptions: {
    // Always ask: when the network is down the call fails and the page says so, instead of waiting silently.
    mutations: { networkMode: 'always' },
    queries: {
      networkMode: 'always',
      // Not-found and permission answers will not change by asking again; network trouble may.
      retry: (count, error) => count < 2 && (error as { kind?: string }).kind === 'unavailable',
      refetchOnWindowFocus: false,
      staleTime: 5_000,
    },
  },
});

// The session refresh goes out before the first render, not from an effect after it.
void useAuth.getState().boot();

const root = document.getElementById('root');
if (!root) throw new Error('no #root element');
createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  </StrictMode>,
);
