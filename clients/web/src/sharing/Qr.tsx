import { encode } from 'uqr';

/** A QR code drawn as one SVG path (no inline style, no innerHTML: fits the app's CSP). */
export function Qr({ text, label }: { text: string; label: string }) {
  const { data, size } = encode(text, { ecc: 'M', border: 2 });
  let d = '';
  data.forEach((line, y) =>
    line.forEach((dark, x) => {
      if (dark) d += `M${x} ${y}h1v1h-1z`;
    }),
  );
  return (
    <svg role="img" aria-label={label} viewBox={`0 0 ${size} ${size}`} className="h-40 w-40 bg-white" shapeRendering="crispEdges">
      <path d={d} fill="#000" />
    </svg>
  );
}
