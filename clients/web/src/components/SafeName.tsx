/** Bidirectional controls (U+202A–E, U+2066–9, U+200E/F, U+061C) can make "exe.txt" look like "txt.exe". */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** The name as text the eye can trust: bidi controls shown as visible codes, isolated from the text around it. */
export function safeName(name: string): string {
  return name.replace(BIDI, (c) => `⟪U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}⟫`);
}

export function SafeName({ name, className }: { name: string; className?: string }) {
  return (
    <bdi className={className} title={safeName(name)}>
      {safeName(name)}
    </bdi>
  );
}
