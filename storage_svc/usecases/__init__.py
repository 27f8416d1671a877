"""Storage use cases, one module per seam, written against the ports (storage_svc/ports.py):

- `access`: who may touch a node (`Access`, shared by the others) and public-link resolution;
- `tree`: folders, moves, copies, trash, versions, quota, search (`Tree`);
- `uploads`: upload sessions, small files in one call, the streaming `UploadWriter` (`Uploads`);
- `hashing`: the SHA-256 of an upload computed as its bytes arrive (`UploadHashes`, used by `uploads`);
- `downloads`: file downloads and signed download URLs (`Downloads`);
- `links`: anonymous visitors of public links: listing, downloads, file drops (`PublicLinks`);
- `housekeeping`: expiry, resumed finishes, the trash retention purge (`Housekeeping`);
- `scrub`: the background verification of stored blobs, paced, resumable, one replica at a time (`Scrubber`);
- `common`: the limits and paging helpers they share.

storage_svc/bootstrap.py composes them; the servicer gets the ones it needs.
"""

from storage_svc.usecases.access import Access
from storage_svc.usecases.common import DropLimits, Limits
from storage_svc.usecases.downloads import Downloads
from storage_svc.usecases.housekeeping import Housekeeping
from storage_svc.usecases.links import PublicLinks
from storage_svc.usecases.scrub import Scrubber, ScrubReport
from storage_svc.usecases.tree import Tree
from storage_svc.usecases.uploads import Uploads, UploadWriter

__all__ = [
    "Access",
    "Downloads",
    "DropLimits",
    "Housekeeping",
    "Limits",
    "PublicLinks",
    "ScrubReport",
    "Scrubber",
    "Tree",
    "UploadWriter",
    "Uploads",
]
