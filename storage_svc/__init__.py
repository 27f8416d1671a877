"""storage_svc: every user's folder tree, resumable uploads and streaming downloads."""
