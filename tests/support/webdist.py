"""A stand-in for the Vite build (clients/web/dist) so gateway tests need no npm: same shape, known bytes."""

from __future__ import annotations

from pathlib import Path

INDEX = (
    "<!doctype html><html><head><title>FlowDock</title>"
    '<script type="module" src="/assets/index-3f2a1b9c.js"></script>'
    '<link rel="stylesheet" href="/assets/index-7d9e0c1a.css"></head>'
    '<body><div id="root"></div>' + "<!-- padding so the page is worth compressing -->" * 40 + "</body></html>\n"
)
SCRIPT = 'export function hello(){return "FlowDock"}\n' * 400  # ~18 KB of repetitive text: compresses well
STYLE = "body{margin:0;font-family:system-ui}\n" * 200
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16  # binary, with every byte value (NUL included)


def make_dist(root: Path) -> Path:
    """Write index.html, a hashed script, a stylesheet and an image under root/dist; returns the folder."""
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True, exist_ok=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-3f2a1b9c.js").write_text(SCRIPT)
    (dist / "assets" / "index-7d9e0c1a.css").write_text(STYLE)
    (dist / "assets" / "logo-5e6f7a8b.png").write_bytes(PNG)
    (dist / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    (dist / ".DS_Store").write_bytes(b"hidden")
    return dist
