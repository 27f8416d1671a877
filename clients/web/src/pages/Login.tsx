import { useQuery } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { api } from '../api';
import { asAppError, describeError } from '../api/errors';
import { useAuth } from '../auth/store';
import { Alert, Button, TextField } from '../components/ui';
import { PageTitle, TotpStep, safeNext } from './common';

function OidcButtons({ next }: { next: string }) {
  const { data } = useQuery({ queryKey: ['oidc-providers'], queryFn: () => api.oidcProviders(), staleTime: 60_000 });
  const loggingOut = useAuth((s) => s.loggingOut);
  const loggedOut = useAuth((s) => s.loggedOut);
  const [error, setError] = useState<unknown>();
  if (!data || data.length === 0) return null;
  const start = async (provider: string) => {
    try {
      // Leaving the page mid-Logout could drop its answer after the server ended the session: let it land first.
      await loggedOut();
      sessionStorage.setItem('flowdock.oidc-next', next); // a return path, not a credential
      window.location.assign(await api.startOidc(provider, `${window.location.origin}/oauth/callback`));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div className="flex flex-col gap-2">
      <p className="text-center text-sm text-slate-700">or</p>
      {error ? <Alert>{describeError(error)}</Alert> : null}
      {data.map((provider) => (
        <Button key={provider} disabled={loggingOut} onClick={() => void start(provider)}>
          Continue with {provider}
        </Button>
      ))}
    </div>
  );
}

export default function Login() {
  const [params] = useSearchParams();
  const next = safeNext(params.get('next'));
  const navigate = useNavigate();
  const signedIn = useAuth((s) => s.signedIn);
  const login = useAuth((s) => s.login);
  // Log out shows this page before the server has ended the session: a login waits until it has.
  const loggingOut = useAuth((s) => s.loggingOut);
  const expired = useAuth((s) => s.expired) || params.get('expired') === '1';
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [mfaToken, setMfaToken] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [resent, setResent] = useState(false);

  const finish = async () => {
    await signedIn();
    void navigate(next, { replace: true });
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      // The store waits for a Log out in flight, then signs in (unless a second factor is asked for).
      const outcome = await login(email.trim(), password);
      if (outcome.kind === 'mfa') setMfaToken(outcome.mfaToken);
      else void navigate(next, { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const kind = error ? asAppError(error).kind : undefined;
  const unverified = kind === 'precondition' && /verif/i.test(asAppError(error).message);
  const message =
    kind === 'unauthenticated' || kind === 'invalid' || kind === 'not_found'
      ? 'Email or password is wrong.'
      : error
        ? describeError(error)
        : undefined;

  return (
    <div className="flex flex-col gap-4">
      <PageTitle>Log in</PageTitle>
      {expired && !error && <Alert kind="info">Your session has ended. Please log in again.</Alert>}
      {loggingOut && <Alert kind="info">Logging you out…</Alert>}
      {mfaToken ? (
        <TotpStep mfaToken={mfaToken} onDone={() => void finish()} />
      ) : (
        <>
          <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
            {message && <Alert>{message}</Alert>}
            {unverified && (
              <div className="text-sm">
                {resent ? (
                  <Alert kind="success">If the address has an account, a new link is on its way.</Alert>
                ) : (
                  <Button
                    onClick={async () => {
                      await api.resendVerification(email.trim()).catch(() => undefined);
                      setResent(true);
                    }}
                  >
                    Send the confirmation link again
                  </Button>
                )}
              </div>
            )}
            <TextField
              label="Email"
              type="email"
              name="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
            />
            <TextField
              label="Password"
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
            <Button type="submit" variant="primary" disabled={busy || loggingOut || !email.trim() || !password}>
              {busy ? 'Logging in…' : 'Log in'}
            </Button>
          </form>
          <OidcButtons next={next} />
          <p className="flex flex-wrap justify-between gap-2 text-sm">
            <Link to="/forgot-password">Forgot your password?</Link>
            <Link to="/signup">Create an account</Link>
          </p>
        </>
      )}
    </div>
  );
}
