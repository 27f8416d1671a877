import { Link } from 'react-router';
import { useAuth } from '../auth/store';
import { PageTitle } from './common';

export default function Home() {
  const status = useAuth((s) => s.status);
  return (
    <div className="flex flex-col gap-5">
      <PageTitle>Your files, on your own server</PageTitle>
      <p className="text-slate-800">
        FlowDock keeps your files on a server you run: upload whole folders, pick up large uploads where they stopped,
        keep old versions, and get back what you deleted from the trash. Every file is scanned for viruses and stored
        encrypted.
      </p>
      <ul className="list-disc pl-5 text-slate-800">
        <li>Resumable uploads of files and folders of any size</li>
        <li>Versions and trash, so nothing is lost by mistake</li>
        <li>Two-factor login and sign-in with your organisation's account</li>
      </ul>
      {status === 'signed-in' ? (
        <Link to="/files" className="self-start rounded-md bg-blue-700 px-4 py-2 font-medium text-white hover:bg-blue-800">
          Open my files
        </Link>
      ) : (
        <div className="flex flex-wrap gap-3">
          <Link to="/signup" className="rounded-md bg-blue-700 px-4 py-2 font-medium text-white hover:bg-blue-800">
            Create an account
          </Link>
          <Link to="/login" className="rounded-md border border-slate-400 bg-white px-4 py-2 font-medium">
            Log in
          </Link>
        </div>
      )}
    </div>
  );
}
