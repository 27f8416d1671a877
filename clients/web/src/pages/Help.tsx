import { Link } from 'react-router';
import { formatBytes } from '../files/format';
import { InfoPage, Part } from './legal';
import { DEFAULTS, LINK_PASSWORD, days, minutes } from './policy';

/** /help: how FlowDock works, in the words of what it does (numbers are the server's defaults). */
export default function Help() {
  return (
    <InfoPage
      title="Help"
      lead="FlowDock keeps your files on this server: upload them, organise them in folders, share them with people who have an account here, or send a public link to anyone."
    >
      <Part title="Files and folders">
        <p>
          Open <Link to="/files">My files</Link> to upload files or whole folders (drag them onto the page, or use
          Upload). Large uploads go in chunks and carry on after a lost connection or a reload. Uploading a file with
          the name of one already there asks whether to replace it (the old content stays as a version), keep both or
          skip.
        </p>
        <p>
          Each file keeps its last {DEFAULTS.storage_versions_kept} versions, the current one included. Open a
          file&apos;s details to see them, download any of them, or restore one: restoring adds it again as the newest
          version, so nothing is lost.
        </p>
        <p>
          Your storage limit is set by the administrator ({formatBytes(DEFAULTS.storage_default_quota_bytes)} unless
          they chose otherwise). Old versions and the trash count towards it, as do uploads still in progress.
        </p>
      </Part>
      <Part title="Trash">
        <p>
          Deleted items go to the <Link to="/trash">Trash</Link> and are deleted for good{' '}
          {DEFAULTS.storage_trash_days} days later. Until then you can restore them: they go back to their folder (or
          to My files if that folder is gone), renamed like “report (1).pdf” if the name is taken there. Deleting
          from the trash, or emptying it, frees the space at once and cannot be undone.
        </p>
      </Part>
      <Part title="Sharing with people">
        <p>
          Share a file or folder with someone who has a FlowDock account on this server, by their email address. Pick
          what they may do:
        </p>
        <ul className="list-disc pl-6">
          <li>
            <strong>Viewer</strong>: sees names and sizes, cannot download.
          </li>
          <li>
            <strong>Downloader</strong>: also downloads.
          </li>
          <li>
            <strong>Editor</strong>: also uploads, creates folders, renames, moves and deletes inside the shared
            folder (deleted items go to your trash).
          </li>
        </ul>
        <p>
          Only the owner can share an item; people you share with cannot pass it on. They are told by email and find
          it under <Link to="/shared">Shared</Link>. Changing a role or ending a share takes effect on their very next
          action.
        </p>
      </Part>
      <Part title="Public links">
        <p>
          A public link lets anyone with the address see (view), download, or only send files into a folder (file
          drop: visitors never see what the folder holds). A link can have a password ({LINK_PASSWORD.min} to{' '}
          {LINK_PASSWORD.max} characters), an expiry date and a download limit. After{' '}
          {DEFAULTS.share_link_password_failures_per_link} wrong passwords within{' '}
          {minutes(DEFAULTS.share_link_password_window_seconds)} minutes the link stops taking attempts for a while.
          A visitor who entered the password stays in for up to {minutes(DEFAULTS.share_link_session_seconds)} minutes.
          Revoke a link under Shared by me: it stops working at once, and an expired, used-up or revoked link shows
          the same “not found” page.
        </p>
      </Part>
      <Part title="Your account">
        <p>
          In <Link to="/settings">Settings</Link> you change your name, email address and password, turn on
          two-factor authentication (an authenticator app, plus 10 recovery codes shown once), and see the devices
          logged in to your account. A device that is not used for {days(DEFAULTS.auth_session_idle_seconds)} days is
          logged out, and every login ends after {days(DEFAULTS.auth_session_max_age_seconds)} days. Ending a session
          there sends that device to Log in at its next action.
        </p>
        <p>
          Forgot your password? Use “Forgot password” on the <Link to="/login">Log in</Link> page: the link it mails
          works for {DEFAULTS.auth_reset_token_minutes} minutes and logs out every device.
        </p>
      </Part>
    </InfoPage>
  );
}
