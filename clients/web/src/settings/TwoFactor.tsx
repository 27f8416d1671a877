import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { asAppError, fieldError } from '../api/errors';
import type { TotpEnrollment } from '../api/types';
import { useAuth } from '../auth/store';
import { Alert, Button, TextField } from '../components/ui';
import { Section, reasonAt, serverSentence, settingsError } from './common';
import { recoveryCodesText, svgImageUrl } from './format';

/** The secret in groups of four, as authenticator apps ask to type it. */
const grouped = (secret: string) => secret.replace(/(.{4})/g, '$1 ').trim();

function Enrol({ enrollment, onCancel, onDone }: { enrollment: TotpEnrollment; onCancel: () => void; onDone: (codes: string[]) => void }) {
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onDone(await api.confirmTotp(code.trim()));
    } catch (err) {
      setError(err);
      setCode('');
    } finally {
      setBusy(false);
    }
  };
  const codeError = reasonAt('Code', fieldError(error, 'code'));
  return (
    <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
      <ol className="flex list-decimal flex-col gap-3 pl-5 text-sm text-slate-800">
        <li>
          <p>Scan this QR code with an authenticator app (for example Aegis, Google Authenticator or 1Password).</p>
          <img
            src={svgImageUrl(enrollment.qrSvg)}
            alt="QR code to add FlowDock to your authenticator app"
            width={176}
            height={176}
            className="mt-2 h-44 w-44 border border-slate-200 bg-white"
          />
        </li>
        <li>
          <p>Or type this key into the app:</p>
          <code data-testid="totp-secret" className="mt-1 block break-all rounded bg-slate-100 px-2 py-1 font-mono text-base">
            {grouped(enrollment.secret)}
          </code>
        </li>
        <li>Enter the 6-digit code the app shows now.</li>
      </ol>
      <TextField
        label="Code from the app"
        name="totp-code"
        autoComplete="one-time-code"
        inputMode="numeric"
        required
        value={code}
        onChange={(e) => setCode(e.target.value)}
        error={codeError}
      />
      {error && !codeError ? <Alert>{settingsError(error)}</Alert> : null}
      <div className="flex flex-wrap gap-2">
        <Button type="submit" variant="primary" disabled={busy || !code.trim()}>
          {busy ? 'Checking…' : 'Turn on two-factor authentication'}
        </Button>
        <Button onClick={onCancel}>Cancel</Button>
      </div>
    </form>
  );
}

function RecoveryCodes({ email, codes, onDone }: { email: string; codes: string[]; onDone: () => void }) {
  const [copied, setCopied] = useState<'yes' | 'no'>();
  const text = recoveryCodesText(email, codes);
  const download = () => {
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'flowdock-recovery-codes.txt';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };
  return (
    <div className="flex flex-col gap-3">
      <Alert kind="success">Two-factor authentication is on.</Alert>
      <p className="text-sm text-slate-800">
        Save these recovery codes now: each one logs you in once if you lose your authenticator app. This is the only
        time they are shown.
      </p>
      <ul data-testid="recovery-codes" className="grid grid-cols-2 gap-1 rounded bg-slate-100 p-3 font-mono text-base">
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ul>
      <div className="flex flex-wrap gap-2">
        <Button
          onClick={() =>
            navigator.clipboard.writeText(text).then(
              () => setCopied('yes'),
              () => setCopied('no'),
            )
          }
        >
          Copy codes
        </Button>
        <Button onClick={download}>Download codes</Button>
        <Button variant="primary" onClick={onDone}>
          I have saved them
        </Button>
      </div>
      {copied === 'yes' && <Alert kind="success">The codes are copied.</Alert>}
      {copied === 'no' && <Alert>This browser did not allow copying: download them or write them down.</Alert>}
    </div>
  );
}

function Disable({ onDone }: { onDone: () => void }) {
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.disableTotp(password, code.trim());
      onDone();
    } catch (err) {
      setError(err);
      setCode('');
    } finally {
      setBusy(false);
    }
  };
  // Both checks answer "permission": the message says which one failed.
  const refused = error && asAppError(error).kind === 'permission' ? serverSentence(error) : undefined;
  const passwordError = refused && /password/i.test(refused) ? refused : undefined;
  const codeError = refused && !passwordError ? refused : reasonAt('Code', fieldError(error, 'code'));
  return (
    <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
      <p className="text-sm text-slate-800">
        Two-factor authentication is on: logging in asks for a code from your authenticator app. To turn it off, enter
        your password and a code (or a recovery code).
      </p>
      <TextField
        label="Password"
        type="password"
        name="totp-off-password"
        autoComplete="current-password"
        required
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        error={passwordError}
      />
      <TextField
        label="Code"
        name="totp-off-code"
        autoComplete="one-time-code"
        required
        value={code}
        onChange={(e) => setCode(e.target.value)}
        error={codeError}
      />
      {error && !passwordError && !codeError ? <Alert>{settingsError(error)}</Alert> : null}
      <div>
        <Button type="submit" variant="danger" disabled={busy || !password || !code.trim()}>
          {busy ? 'Turning off…' : 'Turn off two-factor authentication'}
        </Button>
      </div>
    </form>
  );
}

type Step = { kind: 'idle' } | { kind: 'enrol'; enrollment: TotpEnrollment } | { kind: 'codes'; codes: string[] };

export function TwoFactorSection() {
  const me = useAuth((s) => s.me);
  const setMe = useAuth((s) => s.setMe);
  const [step, setStep] = useState<Step>({ kind: 'idle' });
  const [error, setError] = useState<unknown>();
  const [note, setNote] = useState<string>();
  const [busy, setBusy] = useState(false);
  if (!me) return null;
  const start = async () => {
    setBusy(true);
    setError(undefined);
    setNote(undefined);
    try {
      setStep({ kind: 'enrol', enrollment: await api.startTotp() });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  let body;
  if (step.kind === 'codes') {
    body = <RecoveryCodes email={me.email} codes={step.codes} onDone={() => setStep({ kind: 'idle' })} />;
  } else if (step.kind === 'enrol') {
    body = (
      <Enrol
        enrollment={step.enrollment}
        onCancel={() => setStep({ kind: 'idle' })}
        onDone={(codes) => {
          setMe({ ...me, totpEnabled: true });
          setStep({ kind: 'codes', codes });
        }}
      />
    );
  } else if (me.totpEnabled) {
    body = (
      <Disable
        onDone={() => {
          setMe({ ...me, totpEnabled: false });
          setNote('Two-factor authentication is off. Logging in asks only for your password now.');
        }}
      />
    );
  } else {
    body = (
      <div className="flex flex-col gap-3">
        <p className="text-sm text-slate-800">
          Two-factor authentication is off. Turn it on and logging in also asks for a code from an authenticator app
          on your phone, so a stolen password alone is not enough.
        </p>
        {error ? <Alert>{settingsError(error)}</Alert> : null}
        <div>
          <Button variant="primary" disabled={busy} onClick={() => void start()}>
            {busy ? 'Starting…' : 'Set up two-factor authentication'}
          </Button>
        </div>
      </div>
    );
  }
  return (
    <Section title="Two-factor authentication" testId="settings-2fa">
      {note && step.kind === 'idle' && <Alert kind="success">{note}</Alert>}
      {body}
    </Section>
  );
}
