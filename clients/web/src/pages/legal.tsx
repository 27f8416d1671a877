import type { ReactNode } from 'react';
import { Link } from 'react-router';

/** The frame of Help, Terms and Privacy: a title, a short lead, sections, and links to the other two. */
export function InfoPage({ title, lead, children }: { title: string; lead: string; children: ReactNode }) {
  return (
    <article className="flex flex-col gap-4 text-slate-800" data-testid="info-page">
      <h1 className="text-2xl font-bold outline-none">{title}</h1>
      <p>{lead}</p>
      {children}
      <nav aria-label="More about FlowDock" className="flex flex-wrap gap-4 border-t border-slate-200 pt-3 text-sm">
        <Link to="/help">Help</Link>
        <Link to="/terms">Terms</Link>
        <Link to="/privacy">Privacy</Link>
      </nav>
    </article>
  );
}

export function Part({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="flex flex-col gap-2">
      <h2 className="text-lg font-semibold text-slate-900">{title}</h2>
      {children}
    </section>
  );
}
