import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { describeError } from '../api/errors';
import { Alert, Button, TextField } from '../components/ui';

/** A return URL from ?next= that stays on this site (never "//evil.example" or "https://..."); else the dashboard. */
export function safeNext(raw: string | null): string {
  if (!raw || !raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return '/dashboard';
  return raw;
}

export function PageTitle({ children }: { children: string }) {
  return <h1 className="mb-4 text-2xl font-bold outline-none">{children}</h1>;
}

/** The second login step: a 6-digit authenticator code or one of the recovery codes. */
export function TotpStep({ mfaToken, onDone }: { mfaToken: string; onDone: () => void }) {
  const [code, setCode] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const outcome = await api.loginTotp(mfaToken, code.trim());
      if (outcome.kind === 'ok') onDone();
    } catch (err) {
      const kind = (err as { kind?: string }).kind;
      setError(
        kind === 'unauthenticated' || kind === 'invalid'
          ? 'That code was not accepted. Codes work once and change every 30 seconds: wait for the next one, or use a recovery code.'
          : describeError(err),
      );
      setCode('');
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
      <p className="text-sm text-slate-800">
        Two-factor authentication is on. Enter the 6-digit code from your authenticator app, or one of your recovery
        codes.
      </p>
      <TextField
        label="Code"
        name="code"
        autoComplete="one-time-code"
        inputMode="text"
        autoFocus
        required
        value={code}
        onChange={(e) => setCode(e.target.value)}
        error={error}
      />
      <Button type="submit" variant="primary" disabled={busy || !code.trim()}>
        {busy ? 'Checking…' : 'Verify'}
      </Button>
    </form>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  return error ? <Alert>{describeError(error)}</Alert> : null;
}
