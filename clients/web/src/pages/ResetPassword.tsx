import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api } from '../api';
import { asAppError, describeError, fieldError } from '../api/errors';
import { Alert, Button, TextField } from '../components/ui';
import { PageTitle } from './common';

export default function ResetPassword() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [password, setPassword] = useState('');
  const [done, setDone] = useState(false);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.resetPassword(token, password);
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const passwordError = fieldError(error, 'new_password', 'password');
  const kind = error ? asAppError(error).kind : undefined;
  const general =
    error && !passwordError
      ? kind === 'unauthenticated' || kind === 'not_found' || kind === 'invalid'
        ? 'This link is not valid any more: it may have been used already or have expired. Ask for a new one.'
        : describeError(error)
      : undefined;
  if (!token) {
    return (
      <div className="flex flex-col gap-4">
        <PageTitle>Choose a new password</PageTitle>
        <Alert>This page needs the link from the password reset mail.</Alert>
        <Link to="/forgot-password">Ask for a new link</Link>
      </div>
    );
  }
  return (
    <div className="flex flex-col gap-4">
      <PageTitle>Choose a new password</PageTitle>
      {done ? (
        <>
          <Alert kind="success">Your password is changed and every session was logged out.</Alert>
          <Link to="/login">Log in</Link>
        </>
      ) : (
        <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
          {general && <Alert>{general}</Alert>}
          <TextField
            label="New password"
            type="password"
            name="new-password"
            autoComplete="new-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            error={passwordError ? `Password ${passwordError.charAt(0).toLowerCase()}${passwordError.slice(1)}` : undefined}
            hint={`At least 8 characters (${[...password].length} so far); 15 or more recommended; not a common password.`}
          />
          <Button type="submit" variant="primary" disabled={busy || !password}>
            {busy ? 'Saving…' : 'Set the new password'}
          </Button>
        </form>
      )}
    </div>
  );
}
