import type { ComponentType } from 'react';
import { createBrowserRouter } from 'react-router';
import { AppLayout, PublicLayout, RequireAuth, Root, WidePublicLayout } from './components/Layout';

/** Each page is its own chunk: the first load carries only the shell and the page asked for. */
function page(load: () => Promise<{ default: ComponentType }>) {
  return async () => ({ Component: (await load()).default });
}

export const router = createBrowserRouter([
  {
    Component: Root,
    children: [
      {
        Component: PublicLayout,
        children: [
          { index: true, lazy: page(() => import('./pages/Home')) },
          { path: 'signup', lazy: page(() => import('./pages/SignUp')) },
          { path: 'login', lazy: page(() => import('./pages/Login')) },
          { path: 'verify-email', lazy: page(() => import('./pages/VerifyEmail')) },
          { path: 'forgot-password', lazy: page(() => import('./pages/ForgotPassword')) },
          { path: 'reset-password', lazy: page(() => import('./pages/ResetPassword')) },
          { path: 'oauth/callback', lazy: page(() => import('./pages/OidcCallback')) },
          { path: 'help', lazy: page(() => import('./pages/Help')) },
          { path: 'terms', lazy: page(() => import('./pages/Terms')) },
          { path: 'privacy', lazy: page(() => import('./pages/Privacy')) },
        ],
      },
      { Component: WidePublicLayout, children: [{ path: 's/:token', lazy: page(() => import('./sharing/PublicLinkPage')) }] },
      {
        Component: RequireAuth,
        children: [
          {
            Component: AppLayout,
            children: [
              { path: 'dashboard', lazy: page(() => import('./dashboard/DashboardPage')) },
              { path: 'files', lazy: page(() => import('./files/FilesPage')) },
              { path: 'files/:folderId', lazy: page(() => import('./files/FilesPage')) },
              { path: 'search', lazy: page(() => import('./files/SearchPage')) },
              { path: 'trash', lazy: page(() => import('./trash/TrashPage')) },
              { path: 'shared', lazy: page(() => import('./sharing/SharedWithMe')) },
              { path: 'shared/by-me', lazy: page(() => import('./sharing/SharedByMe')) },
              { path: 'shared/f/:folderId', lazy: page(() => import('./sharing/SharedFolder')) },
              { path: 'settings', lazy: page(() => import('./settings/SettingsPage')) },
              { path: 'admin', lazy: page(() => import('./admin/UsersPage')) },
              { path: 'admin/users/:userId', lazy: page(() => import('./admin/UserPage')) },
              { path: 'admin/activity', lazy: page(() => import('./admin/ActivityPage')) },
            ],
          },
        ],
      },
      { Component: PublicLayout, children: [{ path: '*', lazy: page(() => import('./pages/NotFound')) }] },
    ],
  },
]);
