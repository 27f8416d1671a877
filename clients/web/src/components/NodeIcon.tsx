/** A folder or file glyph drawn as inline SVG: emoji depend on the reader's fonts (a box where none has them). */
export function NodeIcon({ kind }: { kind: 'folder' | 'file' | string }) {
  return (
    <svg aria-hidden="true" focusable="false" viewBox="0 0 24 24" className="h-5 w-5 shrink-0 text-slate-500" fill="currentColor">
      {kind === 'folder' ? (
        <path d="M3 6.5A1.5 1.5 0 0 1 4.5 5h4.2l2 2h8.8A1.5 1.5 0 0 1 21 8.5v9a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 17.5z" />
      ) : (
        <path d="M6.5 3h7.3L19 8.2v11.3a1.5 1.5 0 0 1-1.5 1.5h-11A1.5 1.5 0 0 1 5 19.5v-15A1.5 1.5 0 0 1 6.5 3zm7 1.5V9h4.5" />
      )}
    </svg>
  );
}
