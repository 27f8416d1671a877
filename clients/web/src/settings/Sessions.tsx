import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState } from 'react';
import { api } from '../api';
import type { DeviceSession } from '../api/types';
import { Alert, Button, Spinner } from '../components/ui';
import { ConfirmDialog } from '../files/dialogs';
import { formatDate } from '../files/format';
import { Section, settingsError } from './common';
import { describeDevice } from './format';

function SessionRow({ session, onEnd, busy }: { session: DeviceSession; onEnd: () => void; busy: boolean }) {
  const nameId = useId();
  const device = describeDevice(session.device);
  return (
    <li
      data-testid="session-row"
      data-current={session.current ? 'true' : 'false'}
      className="flex flex-wrap items-center justify-between gap-2 border-b border-slate-200 py-3 last:border-b-0"
    >
      <div className="flex min-w-0 flex-col gap-1">
        <p className="flex flex-wrap items-center gap-2 font-medium">
          <span id={nameId}>{device}</span>
          {session.current && (
            <span className="rounded bg-green-100 px-2 py-0.5 text-xs font-semibold text-green-900">This device</span>
          )}
        </p>
        <p className="text-sm text-slate-700">
          {session.ip ? `IP ${session.ip} · ` : ''}logged in {formatDate(session.created)} · last used{' '}
          {formatDate(session.lastSeen)}
        </p>
      </div>
      {!session.current && (
        <Button disabled={busy} aria-describedby={nameId} onClick={onEnd}>
          End this session
        </Button>
      )}
    </li>
  );
}

export function SessionsSection() {
  const queryClient = useQueryClient();
  const list = useQuery({ queryKey: ['sessions'], queryFn: () => api.sessions() });
  const [error, setError] = useState<unknown>();
  const [note, setNote] = useState<string>();
  const [busy, setBusy] = useState<string>();
  const [confirmAll, setConfirmAll] = useState(false);
  // This device first, then the most recently used.
  const sessions = [...(list.data ?? [])].sort(
    (a, b) => Number(b.current) - Number(a.current) || (b.lastSeen?.getTime() ?? 0) - (a.lastSeen?.getTime() ?? 0),
  );
  const others = sessions.filter((s) => !s.current).length;

  const end = async (session: DeviceSession) => {
    setBusy(session.id);
    setError(undefined);
    setNote(undefined);
    try {
      await api.endSession(session.id);
      setNote(`The session on ${describeDevice(session.device)} is ended: that device is logged out at its next action.`);
      await queryClient.invalidateQueries({ queryKey: ['sessions'] });
      void queryClient.invalidateQueries({ queryKey: ['my-activity'] });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <Section title="Sessions" testId="settings-sessions">
      <p className="text-sm text-slate-800">
        The devices logged in to your account. End a session you do not recognise, then change your password.
      </p>
      {list.isPending ? (
        <Spinner label="Loading sessions…" />
      ) : list.isError ? (
        <Alert>{settingsError(list.error)}</Alert>
      ) : (
        <ul aria-label="Sessions" className="flex flex-col">
          {sessions.map((s) => (
            <SessionRow key={s.id} session={s} busy={busy === s.id} onEnd={() => void end(s)} />
          ))}
        </ul>
      )}
      {error ? <Alert>{settingsError(error)}</Alert> : null}
      {note && <Alert kind="success">{note}</Alert>}
      <div>
        <Button variant="danger" disabled={others === 0} onClick={() => setConfirmAll(true)}>
          End all other sessions
        </Button>
      </div>
      {confirmAll && (
        <ConfirmDialog
          title="End all other sessions?"
          confirmLabel="End all other sessions"
          onClose={() => setConfirmAll(false)}
          onConfirm={async () => {
            setError(undefined);
            const count = await api.endOtherSessions();
            const ended = count === 1 ? 'One other session is ended' : `${count} other sessions are ended`;
            setNote(`${ended}: those devices are logged out at their next action.`);
            await queryClient.invalidateQueries({ queryKey: ['sessions'] });
      void queryClient.invalidateQueries({ queryKey: ['my-activity'] });
          }}
        >
          Every device but this one is logged out at its next action ({others} {others === 1 ? 'session' : 'sessions'}).
        </ConfirmDialog>
      )}
    </Section>
  );
}
