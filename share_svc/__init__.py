"""share_svc: user shares, public links and the access decisions storage_svc asks for."""
