import { useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api } from '../api';
import { asAppError, fieldError } from '../api/errors';
import { Alert, Button, TextField } from '../components/ui';
import { Section, reasonAt, serverSentence, settingsError } from './common';

export function PasswordSection() {
  const queryClient = useQueryClient();
  const checkboxId = useId();
  const [current, setCurrent] = useState('');
  const [fresh, setFresh] = useState('');
  const [endOthers, setEndOthers] = useState(true);
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      await api.changePassword(current, fresh, endOthers);
      setDone(
        endOthers
          ? 'Your password is changed, and your other devices are logged out.'
          : 'Your password is changed. Your other devices stay logged in.',
      );
      setCurrent('');
      setFresh('');
      await queryClient.invalidateQueries({ queryKey: ['sessions'] });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
      // A change and a refused attempt are both in the activity log.
      void queryClient.invalidateQueries({ queryKey: ['my-activity'] });
    }
  };
  const newError = reasonAt('Password', fieldError(error, 'new_password', 'password'));
  const currentError = error && asAppError(error).kind === 'permission' ? serverSentence(error) : undefined;
  return (
    <Section title="Password" testId="settings-password">
      <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
        <TextField
          label="Current password"
          type="password"
          name="current-password"
          autoComplete="current-password"
          required
          value={current}
          onChange={(e) => setCurrent(e.target.value)}
          error={currentError}
        />
        <TextField
          label="New password"
          type="password"
          name="new-password"
          autoComplete="new-password"
          required
          value={fresh}
          onChange={(e) => setFresh(e.target.value)}
          error={newError}
          hint={`At least 8 characters (${[...fresh].length} so far); 15 or more recommended; not a common password.`}
        />
        <div className="flex items-start gap-2">
          <input
            id={checkboxId}
            type="checkbox"
            checked={endOthers}
            onChange={(e) => setEndOthers(e.target.checked)}
            className="mt-1 h-4 w-4"
          />
          <label htmlFor={checkboxId} className="text-sm text-slate-800">
            Log out my other devices (this one stays logged in)
          </label>
        </div>
        {error && !newError && !currentError ? <Alert>{settingsError(error)}</Alert> : null}
        {done && <Alert kind="success">{done}</Alert>}
        <div>
          <Button type="submit" variant="primary" disabled={busy || !current || !fresh}>
            {busy ? 'Saving…' : 'Change password'}
          </Button>
        </div>
      </form>
    </Section>
  );
}
