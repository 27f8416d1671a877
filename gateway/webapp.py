"""The browser app's files as Envoy routes: each file of the Vite build becomes a `direct_response` route.

Envoy reads the bodies once, when it loads the config, and serves them from memory: no extra process, no extra hop,
and the app's responses go through the same listener filters (compression, security headers) as everything else.
A rebuilt app needs a restart of the gateway (`flowdock up`), which re-reads the folder.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "APP_SECURITY_HEADERS",
    "BUILD_HINT",
    "IMMUTABLE",
    "MAX_FILE_BYTES",
    "NO_CACHE",
    "AppFile",
    "default_web_dir",
    "resolve_web_dir",
    "scan",
]

_log = logging.getLogger(__name__)

#: Vite puts content-hashed files under assets/: a new build gives new names, so browsers may keep them forever.
IMMUTABLE = "public, max-age=31536000, immutable"
#: index.html and the other unhashed files: revalidated on every load, so a new build is picked up at once.
NO_CACHE = "no-cache"
#: Envoy keeps each body in memory (per route); a bigger file is left out with a warning rather than loaded.
MAX_FILE_BYTES = 16 * 1024 * 1024

#: On every response of the app (not on the API's). connect-src 'self' covers grpc-web to the same origin.
APP_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    # Public-link tokens live in URLs (/s/<token>): never hand them to another site in a Referer.
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)

BUILD_HINT = (
    "The FlowDock web app is not built yet; the API works. Build the app with\n"
    "  npm ci --prefix clients && npm --prefix clients run build\n"
    "(or run ./dev up, which does it), then restart flowdock up."
)

# The few types Python's table gets wrong or lacks on some machines; charset on text so nothing is sniffed.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".wasm": "application/wasm",
}


@dataclass(frozen=True)
class AppFile:
    """One file of the build and how it is answered."""

    url: str
    path: Path
    content_type: str
    cache_control: str
    size: int


def default_web_dir() -> Path:
    """clients/web/dist of the source tree this package runs from (an editable install, as `./dev` makes)."""
    return Path(__file__).resolve().parent.parent / "clients" / "web" / "dist"


def resolve_web_dir(configured: str | Path | None) -> Path:
    """The folder to serve: the setting when given, else the source tree's build folder."""
    if configured is None or str(configured) == "":
        return default_web_dir()
    return Path(configured).expanduser().resolve()


def content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def scan(web_dir: Path) -> list[AppFile] | None:
    """Every servable file of the build, or None when there is no build (no index.html).

    Hidden files and symlinks leaving the folder are skipped: only what the build wrote is published.
    """
    root = web_dir.resolve()
    if not (root / "index.html").is_file():
        return None
    files: list[AppFile] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        real = path.resolve()
        if not real.is_relative_to(root):
            _log.warning("web app: %s points outside %s; not served", relative, root)
            continue
        size = real.stat().st_size
        if size > MAX_FILE_BYTES:
            _log.warning("web app: %s is %d bytes (over %d); not served", relative, size, MAX_FILE_BYTES)
            continue
        url = "/" + relative.as_posix()
        # Route paths are matched exactly; a name Envoy would normalise differently could never be requested.
        if any(ch in url for ch in "?#%\\ ") or not url.isprintable():
            _log.warning("web app: %s has characters a URL path cannot carry as is; not served", relative)
            continue
        immutable = relative.parts[0] == "assets" and len(relative.parts) > 1
        files.append(
            AppFile(
                url=url,
                path=real,
                content_type=content_type(real),
                cache_control=IMMUTABLE if immutable else NO_CACHE,
                size=size,
            )
        )
    return files
