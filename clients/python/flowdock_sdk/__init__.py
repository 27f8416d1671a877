"""FlowDock Python SDK: your files over native gRPC, through the gateway.

```python
from flowdock_sdk import Client

with Client("http://127.0.0.1:8080", email="ada@example.org", password="correct horse battery") as fd:
    fd.upload("photos", "/Backup")                 # a whole tree, 4 files at a time, resumable
    fd.download("/Backup/photos", "restored")      # checked against SHA-256, renamed into place
```

`AsyncClient` is the same with `async`/`await` (grpc.aio); `Client` runs it on a private event loop thread.
Every failure is a `FlowDockError`; subclasses follow the gRPC status.
"""

from flowdock_sdk._client import AsyncClient, NodeRef, ProgressCallback
from flowdock_sdk._errors import (
    AlreadyExists,
    AuthenticationError,
    FailedPrecondition,
    FieldViolation,
    FlowDockError,
    IntegrityError,
    InvalidArgument,
    LocalFileError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    TotpRequired,
    TransferInterrupted,
    Unavailable,
    UnsafeName,
    from_rpc_error,
)
from flowdock_sdk._models import (
    AppPassword,
    Link,
    NewAppPassword,
    Node,
    Quota,
    Session,
    Share,
    TotpEnrollment,
    TransferProgress,
    TrashEntry,
    User,
    Version,
)
from flowdock_sdk._sync import Client

__all__ = [
    "AlreadyExists",
    "AppPassword",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "FailedPrecondition",
    "FieldViolation",
    "FlowDockError",
    "IntegrityError",
    "InvalidArgument",
    "Link",
    "LocalFileError",
    "NewAppPassword",
    "Node",
    "NodeRef",
    "NotFound",
    "PermissionDenied",
    "ProgressCallback",
    "Quota",
    "QuotaExceeded",
    "RateLimited",
    "Session",
    "Share",
    "TotpEnrollment",
    "TotpRequired",
    "TransferInterrupted",
    "TransferProgress",
    "TrashEntry",
    "Unavailable",
    "UnsafeName",
    "User",
    "Version",
    "from_rpc_error",
]
