import { Link } from 'react-router';
import { InfoPage, Part } from './legal';
import { DEFAULTS } from './policy';

/** /terms: the rules of using this server, as the software enforces them. */
export default function Terms() {
  return (
    <InfoPage
      title="Terms of use"
      lead="FlowDock is self-hosted software: the organisation that runs this server decides who may use it and answers for it. These terms describe what the software does; the operator may add rules of their own."
    >
      <Part title="Your files">
        <p>
          Your files stay yours. You are responsible for what you upload and share, and for having the right to share
          it. Files may be scanned for viruses when they are uploaded; an infected file is refused.
        </p>
      </Part>
      <Part title="Keeping and deleting">
        <p>
          Deleted items stay in the trash for {DEFAULTS.storage_trash_days} days and are then deleted for good; older
          versions beyond the last {DEFAULTS.storage_versions_kept} of a file are deleted as new ones arrive. What is
          deleted for good cannot be brought back by you. Keep your own copy of anything you cannot afford to lose:
          backups of this server are the operator&apos;s choice.
        </p>
      </Part>
      <Part title="Sharing and links">
        <p>
          Whoever has a public link&apos;s address can use it as its settings allow, until it expires, reaches its
          download limit or you revoke it. Use a password and an expiry for anything private.
        </p>
      </Part>
      <Part title="Your account">
        <p>
          Keep your password and recovery codes to yourself. An administrator can disable or delete an account (a
          disabled account is logged out everywhere) and set its storage limit. Deleting an account deletes its files,
          shares and links.
        </p>
      </Part>
      <p className="text-sm">
        See also <Link to="/privacy">Privacy</Link> for what the server records.
      </p>
    </InfoPage>
  );
}
