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

# A page for a real browser: logs in over grpc-web in cookie mode (the LoginRequest comes base64 in the URL's
# fragment), refreshes twice, logs out, refreshes once more, and writes what it saw into the page as JSON.
COOKIE_CHECK_HTML = (
    '<!doctype html><html><head><script type="module" src="/assets/cookie-check-4c5d6e7f.js"></script></head>'
    "<body><pre id=out>pending</pre></body></html>\n"
)
COOKIE_CHECK_JS = """
const AUTH = '/flowdock.auth.v1.AuthService/';
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
function frame(message) {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}
async function call(method, message, headers = {}) {
  const resp = await fetch(AUTH + method, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', 'x-flowdock-cookie-session': '1',
               ...headers },
    body: frame(message),
  });
  const body = new Uint8Array(await resp.arrayBuffer());
  return { http: resp.status, headerStatus: resp.headers.get('grpc-status'), body: b64(body),
           setCookieVisible: resp.headers.get('set-cookie') };
}
function accessToken(body) {  // LoginResponse field 1 inside the first grpc-web frame
  const bytes = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  let pos = 5 + 1, len = 0, shift = 0, b;
  do { b = bytes[pos++]; len |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80);
  return new TextDecoder().decode(bytes.slice(pos, pos + len));
}
const out = {};
try {
  const login = Uint8Array.from(atob(location.hash.slice(1)), (c) => c.charCodeAt(0));
  out.login = await call('Login', login);
  out.cookieAfterLogin = document.cookie;
  out.refresh1 = await call('Refresh', new Uint8Array());
  out.refresh2 = await call('Refresh', new Uint8Array());
  out.logout = await call('Logout', new Uint8Array(), { authorization: 'Bearer ' + accessToken(out.refresh2.body) });
  out.refreshAfterLogout = await call('Refresh', new Uint8Array());
  out.storage = localStorage.length + sessionStorage.length;
} catch (e) {
  out.error = String(e);
}
document.getElementById('out').textContent = JSON.stringify(out);
"""


def make_dist(root: Path) -> Path:
    """Write index.html, a hashed script, a stylesheet and an image under root/dist; returns the folder."""
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True, exist_ok=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-3f2a1b9c.js").write_text(SCRIPT)
    (dist / "assets" / "index-7d9e0c1a.css").write_text(STYLE)
    (dist / "assets" / "logo-5e6f7a8b.png").write_bytes(PNG)
    (dist / "cookie-check.html").write_text(COOKIE_CHECK_HTML)
    (dist / "assets" / "cookie-check-4c5d6e7f.js").write_text(COOKIE_CHECK_JS)
    (dist / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    (dist / ".DS_Store").write_bytes(b"hidden")
    return dist
