/**
 * The numbers Help, Terms and Privacy quote: the server's default settings (a deployment may change them). Each key
 * is the setting's name; tests/unit/test_web_policy_numbers.py fails when a default changes and this file does not.
 */
export const DEFAULTS = {
  storage_trash_days: 30,
  storage_versions_kept: 10,
  storage_default_quota_bytes: 10 * 1024 * 1024 * 1024,
  storage_download_url_seconds: 60,
  share_link_session_seconds: 3600,
  share_link_password_window_seconds: 300,
  share_link_password_failures_per_link: 10,
  share_link_password_failures_per_ip: 20,
  auth_access_token_ttl_seconds: 300,
  auth_session_idle_seconds: 7 * 86400,
  auth_session_max_age_seconds: 30 * 86400,
  auth_verify_token_hours: 24,
  auth_reset_token_minutes: 30,
} as const;

/** Link passwords' length rule (share_svc/domain.py MIN_LINK_PASSWORD, MAX_LINK_PASSWORD). */
export const LINK_PASSWORD = { min: 8, max: 128 } as const;

export const days = (seconds: number): number => Math.round(seconds / 86400);
export const minutes = (seconds: number): number => Math.round(seconds / 60);
