import { useEffect, useRef, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import { useAuth } from '../auth/store';
import { Alert, Spinner } from '../components/ui';
import { PageTitle, TotpStep, safeNext } from './common';

/** Where the identity provider sends the browser back with ?state=&code= (or ?error=). */
export default function OidcCallback() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const signedIn = useAuth((s) => s.signedIn);
  const [mfaToken, setMfaToken] = useState<string>();
  const refused = Boolean(params.get('error') || !params.get('state') || !params.get('code'));
  const [failure, setError] = useState<string>();
  const error = refused ? 'The sign-in was cancelled or refused by the provider.' : failure;
  const started = useRef(false);
  const next = safeNext(sessionStorage.getItem('flowdock.oidc-next'));

  useEffect(() => {
    const state = params.get('state');
    const code = params.get('code');
    if (started.current || refused || !state || !code) return;
    started.current = true;
    api.finishOidc(state, code).then(
      async (outcome) => {
        if (outcome.kind === 'mfa') setMfaToken(outcome.mfaToken);
        else {
          sessionStorage.removeItem('flowdock.oidc-next');
          await signedIn();
          void navigate(next, { replace: true });
        }
      },
      (err) => setError(describeError(err)),
    );
  }, [params, navigate, signedIn, next, refused]);

  return (
    <div className="flex flex-col gap-4">
      <PageTitle>Signing you in</PageTitle>
      {error ? (
        <>
          <Alert>{error}</Alert>
          <Link to="/login">Back to Log in</Link>
        </>
      ) : mfaToken ? (
        <TotpStep
          mfaToken={mfaToken}
          onDone={async () => {
            await signedIn();
            void navigate(next, { replace: true });
          }}
        />
      ) : (
        <Spinner label="Finishing sign-in…" />
      )}
    </div>
  );
}
