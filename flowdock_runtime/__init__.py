"""The server-side runtime: `flowdock up` (one machine's supervisor) and the operator commands (`migrate`, `admin
create-user`, `keys`, `fsck`), apart from the user's client (clients/python/flowdock_cli), as oCIS keeps its runtime
apart from its services. `flowdock_runtime.main` is the one `flowdock` entry point: the runtime may import the
client's commands, the client never imports the runtime."""
