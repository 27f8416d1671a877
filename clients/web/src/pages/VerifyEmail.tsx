import { useEffect, useRef, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api } from '../api';
import { asAppError, describeError } from '../api/errors';
import { Alert, Spinner } from '../components/ui';
import { PageTitle } from './common';

export default function VerifyEmail() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [state, setState] = useState<'working' | 'ok' | 'bad'>(token ? 'working' : 'bad');
  const [error, setError] = useState<unknown>();
  const sent = useRef(false);
  useEffect(() => {
    // The token works once: StrictMode's second effect run must not spend it again.
    if (!token || sent.current) return;
    sent.current = true;
    api.verifyEmail(token).then(
      () => setState('ok'),
      (err) => {
        setError(err);
        setState('bad');
      },
    );
  }, [token]);
  return (
    <div className="flex flex-col gap-4">
      <PageTitle>Confirm your email</PageTitle>
      {state === 'working' && <Spinner label="Confirming your address…" />}
      {state === 'ok' && (
        <>
          <Alert kind="success">Your email address is confirmed.</Alert>
          <Link to="/login" className="self-start rounded-md bg-blue-700 px-4 py-2 font-medium text-white hover:bg-blue-800">
            Log in
          </Link>
        </>
      )}
      {state === 'bad' && (
        <>
          <Alert>
            {!token || ['unauthenticated', 'invalid', 'not_found'].includes(asAppError(error).kind)
              ? 'This link is not valid any more: it may have been used already or have expired.'
              : describeError(error)}
          </Alert>
          <p className="text-sm">
            <Link to="/login">Log in</Link> to ask for a new link if your address is not confirmed yet.
          </p>
        </>
      )}
    </div>
  );
}
