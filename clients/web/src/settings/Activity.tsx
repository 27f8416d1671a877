import { useId, useState } from 'react';
import { api } from '../api';
import { ActivityList } from '../components/ActivityList';
import { Section, settingsError } from './common';
import { ACTIVITY_FILTERS, activityQuery, describeActivity, type ActivityFilter } from './format';

/** The activity log about this account, newest first, a page at a time. */
export function ActivitySection() {
  const kindId = useId();
  const fromId = useId();
  const toId = useId();
  const toErrorId = useId();
  const [filter, setFilter] = useState<ActivityFilter>('all');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  // The server filters (kind prefixes, a time range) before paging: every page holds matching entries only.
  const query = activityQuery(filter, from, to);
  return (
    <Section title="My activity" testId="settings-activity">
      <p className="text-sm text-slate-800">
        What happened to your account: logins, password, email and 2FA changes, shares and links, newest first.
        “Show older” loads more.
      </p>
      <div className="flex flex-wrap gap-3">
        <div className="flex flex-col gap-1">
          <label htmlFor={kindId} className="text-sm font-medium text-slate-800">
            Show
          </label>
          <select
            id={kindId}
            value={filter}
            onChange={(e) => setFilter(e.target.value as ActivityFilter)}
            className="rounded-md border border-slate-400 bg-white px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-blue-700"
          >
            {(Object.keys(ACTIVITY_FILTERS) as ActivityFilter[]).map((key) => (
              <option key={key} value={key}>
                {ACTIVITY_FILTERS[key].label}
              </option>
            ))}
          </select>
        </div>
        <div className="flex flex-col gap-1">
          <label htmlFor={fromId} className="text-sm font-medium text-slate-800">
            From date
          </label>
          <input
            id={fromId}
            type="date"
            value={from}
            onChange={(e) => setFrom(e.target.value)}
            className="rounded-md border border-slate-400 px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-blue-700"
          />
        </div>
        <div className="flex flex-col gap-1">
          <label htmlFor={toId} className="text-sm font-medium text-slate-800">
            To date
          </label>
          <input
            id={toId}
            type="date"
            value={to}
            onChange={(e) => setTo(e.target.value)}
            aria-invalid={query.error ? true : undefined}
            aria-describedby={query.error ? toErrorId : undefined}
            className="rounded-md border border-slate-400 px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-blue-700"
          />
          {query.error && (
            <p id={toErrorId} className="text-sm text-red-800">
              {query.error}
            </p>
          )}
        </div>
      </div>
      {query.query && (
        <ActivityList
          queryKey={['my-activity', filter, from, to]}
          fetchPage={(pageToken) => api.myActivity(pageToken, query.query)}
          title={(e) => describeActivity(e.kind)}
          rowTestId="activity-row"
          empty="Nothing to show."
          describeFailure={settingsError}
        />
      )}
    </Section>
  );
}
