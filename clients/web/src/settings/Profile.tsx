import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { asAppError, fieldError } from '../api/errors';
import { useAuth } from '../auth/store';
import { Alert, Button, TextField } from '../components/ui';
import { Section, reasonAt, serverSentence, settingsError } from './common';

function DisplayNameForm() {
  const me = useAuth((s) => s.me);
  const setMe = useAuth((s) => s.setMe);
  const [name, setName] = useState(me?.displayName ?? '');
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setSaved(false);
    try {
      const updated = await api.updateDisplayName(name.trim());
      setMe(updated);
      setName(updated.displayName);
      setSaved(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const atField = fieldError(error, 'display_name');
  return (
    <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
      <TextField
        label="Display name"
        name="display-name"
        autoComplete="name"
        value={name}
        onChange={(e) => setName(e.target.value)}
        error={reasonAt('Name', atField)}
        hint="Shown to people you share with. Leave it empty to show your email address instead."
      />
      {error && !atField ? <Alert>{settingsError(error)}</Alert> : null}
      {saved && <Alert kind="success">Your name is saved.</Alert>}
      <div>
        <Button type="submit" variant="primary" disabled={busy || name.trim() === (me?.displayName ?? '')}>
          {busy ? 'Saving…' : 'Save name'}
        </Button>
      </div>
    </form>
  );
}

function EmailForm() {
  const me = useAuth((s) => s.me);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>();
  const [sentTo, setSentTo] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setSentTo(undefined);
    try {
      await api.changeEmail(email.trim(), password);
      setSentTo(email.trim());
      setEmail('');
      setPassword('');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const emailError = reasonAt('Email', fieldError(error, 'new_email', 'email'));
  const passwordError = error && asAppError(error).kind === 'permission' ? serverSentence(error) : undefined;
  return (
    <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
      <h3 className="font-medium">Email address</h3>
      <p className="text-sm text-slate-800">
        You log in with <strong className="break-all">{me?.email}</strong>. To change it, enter the new address and
        your password: we mail a link to the new address, and it replaces the old one when you open that link.
      </p>
      <TextField
        label="New email address"
        type="email"
        name="new-email"
        autoComplete="email"
        required
        value={email}
        onChange={(e) => setEmail(e.target.value)}
        error={emailError}
      />
      <TextField
        label="Your password"
        type="password"
        name="email-password"
        autoComplete="current-password"
        required
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        error={passwordError}
      />
      {error && !emailError && !passwordError ? <Alert>{settingsError(error)}</Alert> : null}
      {sentTo && (
        <Alert kind="success">
          If {sentTo} can be used, a confirmation link is on its way there. Your address changes when you open it.
        </Alert>
      )}
      <div>
        <Button type="submit" variant="primary" disabled={busy || !email.trim() || !password}>
          {busy ? 'Sending…' : 'Change email address'}
        </Button>
      </div>
    </form>
  );
}

export function ProfileSection() {
  return (
    <Section title="Profile" testId="settings-profile">
      <DisplayNameForm />
      <hr className="border-slate-200" />
      <EmailForm />
    </Section>
  );
}
