"""auth_svc: accounts, passwords, sessions and the signing keys behind every access token."""
