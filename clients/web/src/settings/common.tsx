import { useId, type ReactNode } from 'react';
import { asAppError, describeError } from '../api/errors';

/** One titled part of Settings: a landmark region named by its heading, so keyboard and screen-reader users can jump. */
export function Section({ title, children, testId }: { title: string; children: ReactNode; testId?: string }) {
  const id = useId();
  return (
    <section
      aria-labelledby={id}
      data-testid={testId}
      className="flex flex-col gap-4 rounded-lg border border-slate-200 bg-white p-4"
    >
      <h2 id={id} className="text-lg font-semibold">
        {title}
      </h2>
      {children}
    </section>
  );
}

/** The server's own sentence, capitalised ("The current password is not correct"). */
export function serverSentence(error: unknown): string {
  const text = asAppError(error).message.trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Settings' refusals in words: a wrong password or code, a change that raced another, or "log in again first" are
 * the server's sentences (they say what to do); anything else is the app-wide wording.
 */
export function settingsError(error: unknown): string {
  const e = asAppError(error);
  if ((e.kind === 'permission' || e.kind === 'conflict' || e.kind === 'precondition') && e.message) {
    return serverSentence(error);
  }
  return describeError(error);
}

/** "Password must be …": a field's label, then the server's reason for refusing it. */
export function reasonAt(label: string, reason: string | undefined): string | undefined {
  return reason ? `${label} ${reason.charAt(0).toLowerCase()}${reason.slice(1)}` : undefined;
}
