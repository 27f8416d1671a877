import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api } from '../api';
import { describeError, fieldError } from '../api/errors';
import { useAuth } from '../auth/store';
import { Alert, Button, TextField } from '../components/ui';
import { PageTitle } from './common';

const MIN = 8;
const MAX = 128;
const RECOMMENDED = 15;

/** The rules the server applies, shown while typing; "common password" is only known once the server answers. */
function PasswordRules({ password }: { password: string }) {
  const chars = [...password].length;
  const rules = [
    { ok: chars >= MIN, text: `At least ${MIN} characters (${chars} so far)` },
    { ok: chars <= MAX, text: `At most ${MAX} characters` },
    { ok: chars >= RECOMMENDED, text: `${RECOMMENDED} or more recommended: a few unrelated words work well`, soft: true },
  ];
  return (
    <ul className="flex flex-col gap-0.5" aria-live="polite">
      {rules.map((r) => (
        <li key={r.text} className={r.ok ? 'text-green-800' : r.soft ? 'text-slate-700' : 'text-slate-800'}>
          <span aria-hidden>{r.ok ? '✓ ' : '○ '}</span>
          <span className="sr-only">{r.ok ? 'Met: ' : 'Not yet: '}</span>
          {r.text}
        </li>
      ))}
      <li className="text-slate-700">Not one of the most commonly used passwords (checked when you sign up)</li>
    </ul>
  );
}

export default function SignUp() {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  // Log out shows Log in (one click from here) before the server has ended the session: let it end first.
  const loggingOut = useAuth((s) => s.loggingOut);
  const loggedOut = useAuth((s) => s.loggedOut);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await loggedOut();
      await api.register(email.trim(), password, name.trim());
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (done) {
    return (
      <div className="flex flex-col gap-4">
        <PageTitle>Check your mail</PageTitle>
        <Alert kind="success">
          We sent a link to <strong>{email}</strong>. Open it to confirm your address, then log in.
        </Alert>
        <p className="text-sm text-slate-800">
          Nothing arrived? Look in your spam folder, or <Link to="/login">go to Log in</Link> to ask for a new link.
        </p>
      </div>
    );
  }

  const passwordError = fieldError(error, 'password');
  const emailError = fieldError(error, 'email');
  const nameError = fieldError(error, 'display_name');
  const general = error && !passwordError && !emailError && !nameError ? describeError(error) : undefined;
  return (
    <div className="flex flex-col gap-4">
      <PageTitle>Create your account</PageTitle>
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        {general && <Alert>{general}</Alert>}
        <TextField
          label="Email"
          type="email"
          name="email"
          autoComplete="email"
          required
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={emailError}
        />
        <TextField
          label="Your name (optional)"
          name="name"
          autoComplete="name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          error={nameError}
        />
        <TextField
          label="Password"
          type="password"
          name="password"
          autoComplete="new-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={passwordError ? `Password ${passwordError.charAt(0).toLowerCase()}${passwordError.slice(1)}` : undefined}
          hint={<PasswordRules password={password} />}
        />
        <Button type="submit" variant="primary" disabled={busy || loggingOut}>
          {busy ? 'Creating…' : 'Sign up'}
        </Button>
      </form>
      <p className="text-sm text-slate-800">
        Already have an account? <Link to="/login">Log in</Link>
      </p>
    </div>
  );
}
