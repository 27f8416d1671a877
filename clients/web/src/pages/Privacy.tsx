import { InfoPage, Part } from './legal';
import { DEFAULTS } from './policy';

/** /privacy: what is stored, what is encrypted and what is not, what the activity log records. */
export default function Privacy() {
  return (
    <InfoPage
      title="Privacy"
      lead="What this server keeps about you and your files, and who can read it."
    >
      <Part title="What is encrypted">
        <p>
          The content of every file and every version is encrypted on the server&apos;s disk (AES-256-GCM, a key per
          file version), uploads in progress included. Someone who takes the disk without the server&apos;s keys
          cannot read your files, and a changed file is refused rather than served.
        </p>
      </Part>
      <Part title="What is not encrypted">
        <p>
          File and folder <strong>names</strong>, the folder structure, sizes, types, dates, a SHA-256 fingerprint of
          each file&apos;s content, and who shares what with whom are kept in the server&apos;s database without
          encryption, as are your email address and display name. The running server can read your files (it has to,
          to send them to you): encryption at rest is not end-to-end encryption, and the server&apos;s operator can
          reach your files.
        </p>
      </Part>
      <Part title="The activity log">
        <p>
          FlowDock records events about your account with their time, the IP address and the browser or app they came
          from: account creation, logins (and failed logins), logouts, password, email and two-factor changes, ended
          sessions, shares and public links created, changed or removed, links opened, downloads through your links,
          and wrong link passwords. It never records passwords, codes or tokens. You can read it in Settings under My
          activity; administrators can read everyone&apos;s. It is not purged automatically.
        </p>
      </Part>
      <Part title="Sessions and cookies">
        <p>
          Logging in sets one cookie that keeps you logged in (HttpOnly: the page&apos;s scripts cannot read it); the
          short-lived access token stays in the page&apos;s memory ({DEFAULTS.auth_access_token_ttl_seconds / 60}{' '}
          minutes, renewed while you use FlowDock). Opening a password-protected public link sets a cookie for that
          link only. There are no tracking or advertising cookies and no third-party scripts.
        </p>
      </Part>
      <Part title="Mail">
        <p>
          The server mails you to confirm your address (the link works for {DEFAULTS.auth_verify_token_hours} hours),
          to reset a forgotten password, to tell your old address that your email changed, and when someone shares
          something with you. It sends no newsletters.
        </p>
      </Part>
      <Part title="Deleting">
        <p>
          Trash is deleted for good after {DEFAULTS.storage_trash_days} days. When an administrator deletes your
          account, its files, versions, shares and links are deleted with it.
        </p>
      </Part>
    </InfoPage>
  );
}
