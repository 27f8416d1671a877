"""storage_svc tests."""
