import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import { Alert, Button, TextField } from '../components/ui';
import { PageTitle } from './common';

export default function ForgotPassword() {
  const [email, setEmail] = useState('');
  const [done, setDone] = useState(false);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.requestPasswordRecovery(email.trim());
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="flex flex-col gap-4">
      <PageTitle>Reset your password</PageTitle>
      {done ? (
        <Alert kind="success">
          If <strong>{email}</strong> has an account, a link to choose a new password is on its way. It works once and
          for a short time.
        </Alert>
      ) : (
        <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
          {error ? <Alert>{describeError(error)}</Alert> : null}
          <p className="text-sm text-slate-800">Enter your email address and we will mail you a link.</p>
          <TextField
            label="Email"
            type="email"
            name="email"
            autoComplete="email"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
          <Button type="submit" variant="primary" disabled={busy || !email.trim()}>
            {busy ? 'Sending…' : 'Send the link'}
          </Button>
        </form>
      )}
      <Link to="/login" className="text-sm">
        Back to Log in
      </Link>
    </div>
  );
}
