"""dav_svc: the WebDAV service (class 1 and 2) under /dav/, a client of storage_svc and share_svc."""
