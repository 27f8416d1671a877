/**
 * A session's device in words. The web app logs in with the browser's user agent as the device name; other clients
 * (the CLI, scripts) send a name of their own, shown as it is.
 */
export function describeDevice(name: string): string {
  const ua = name.trim();
  if (!ua) return 'Unknown device';
  if (!ua.startsWith('Mozilla/')) return ua;
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /OPR\//.test(ua)
      ? 'Opera'
      : /Firefox\//.test(ua)
        ? 'Firefox'
        : /(Chrome|Chromium|CriOS)\//.test(ua)
          ? 'Chrome'
          : /Safari\//.test(ua)
            ? 'Safari'
            : 'A browser';
  const system = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad|iPod/.test(ua)
      ? 'iOS'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS X|Macintosh/.test(ua)
          ? 'macOS'
          : /CrOS/.test(ua)
            ? 'ChromeOS'
            : /Linux|X11/.test(ua)
              ? 'Linux'
              : '';
  return system ? `${browser} on ${system}` : browser;
}

/** The recovery codes as a text file's content: one a line, with what they are for. */
export function recoveryCodesText(email: string, codes: string[]): string {
  return [
    `FlowDock recovery codes for ${email}`,
    'Each code logs you in once when you cannot use your authenticator app. Keep them somewhere safe.',
    '',
    ...codes,
    '',
  ].join('\n');
}

/**
 * The server's QR code as an image URL. Its SVG is made for inlining and may lack the SVG namespace, without which a
 * browser does not draw it as an image; a data: image keeps it out of the page's DOM and within the CSP.
 */
export function svgImageUrl(svg: string): string {
  const withNs = /<svg\b[^>]*\bxmlns=/.test(svg) ? svg : svg.replace(/<svg\b/, '<svg xmlns="http://www.w3.org/2000/svg"');
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(withNs)}`;
}
