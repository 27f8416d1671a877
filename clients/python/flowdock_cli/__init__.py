"""The user's side of the `flowdock` command: account and file commands over the Python SDK (flowdock_sdk).

It imports no server code. The entry point (flowdock_runtime.main) adds these commands next to the server's own
(`up`, `migrate`, `keys`, ...)."""
