import { Link } from 'react-router';
import { PageTitle } from './common';

/** The same page for a wrong address, a missing folder and someone else's folder: no hint which it was. */
export function NotFoundContent() {
  return (
    <div className="flex flex-col gap-3" data-testid="not-found">
      <PageTitle>Page not found</PageTitle>
      <p className="text-slate-800">
        There is nothing here. The link may be wrong, or the file or folder was moved or deleted.
      </p>
      <Link to="/files">Go to My files</Link>
    </div>
  );
}

export default function NotFound() {
  return <NotFoundContent />;
}
