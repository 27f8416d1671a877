import { ActivitySection } from './Activity';
import { PasswordSection } from './Password';
import { ProfileSection } from './Profile';
import { SessionsSection } from './Sessions';
import { TwoFactorSection } from './TwoFactor';

/** The signed-in account: profile, password, two-factor authentication, sessions and the activity log. */
export default function SettingsPage() {
  return (
    <div className="flex min-h-0 flex-1 flex-col overflow-y-auto p-4">
      <div className="flex w-full max-w-2xl flex-col gap-4">
        <h1 className="text-xl font-semibold outline-none">Settings</h1>
        <ProfileSection />
        <PasswordSection />
        <TwoFactorSection />
        <SessionsSection />
        <ActivitySection />
      </div>
    </div>
  );
}
