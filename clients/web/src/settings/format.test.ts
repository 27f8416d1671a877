import { describe, expect, it } from 'vitest';
import { activityQuery, describeActivity, describeDevice, matchesFilter, recoveryCodesText, svgImageUrl } from './format';

describe('describeDevice', () => {
  it('names the browser and system of a user agent', () => {
    expect(
      describeDevice(
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0.0.0 Safari/537.36',
      ),
    ).toBe('Chrome on Linux');
    expect(describeDevice('Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0')).toBe(
      'Firefox on Windows',
    );
    expect(
      describeDevice(
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
      ),
    ).toBe('Safari on iOS');
    expect(
      describeDevice(
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0',
      ),
    ).toBe('Edge on Windows');
  });

  it('shows a name another client chose as it is, and says so when there is none', () => {
    expect(describeDevice('flowdock-cli on build-box')).toBe('flowdock-cli on build-box');
    expect(describeDevice('  ')).toBe('Unknown device');
  });
});

describe('recoveryCodesText', () => {
  it('puts one code a line under a heading naming the account', () => {
    const text = recoveryCodesText('ann@example.com', ['abcde-12345', 'fghij-67890']);
    expect(text.split('\n')).toEqual([
      'FlowDock recovery codes for ann@example.com',
      'Each code logs you in once when you cannot use your authenticator app. Keep them somewhere safe.',
      '',
      'abcde-12345',
      'fghij-67890',
      '',
    ]);
  });
});

describe('svgImageUrl', () => {
  it('adds the SVG namespace an inline SVG lacks, so the browser draws it as an image', () => {
    const url = svgImageUrl('<svg width="10" height="10" class="segno"><path d="M0 0h1"/></svg>');
    expect(decodeURIComponent(url.slice('data:image/svg+xml;charset=utf-8,'.length))).toBe(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" class="segno"><path d="M0 0h1"/></svg>',
    );
  });

  it('keeps an SVG that has its namespace as it is', () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>';
    expect(decodeURIComponent(svgImageUrl(svg).split(',')[1])).toBe(svg);
  });
});

describe('activity', () => {
  it('says what a kind means, and shows an unknown kind as it is', () => {
    expect(describeActivity('password.changed')).toBe('Password changed');
    expect(describeActivity('quota.changed')).toBe('quota.changed');
  });

  it('filters by whole kind prefixes', () => {
    expect(matchesFilter('login.ok', 'logins')).toBe(true);
    expect(matchesFilter('logout', 'logins')).toBe(true);
    expect(matchesFilter('password.changed', 'logins')).toBe(false);
    expect(matchesFilter('linked.thing', 'sharing')).toBe(false);
    expect(matchesFilter('link.created', 'sharing')).toBe(true);
    expect(matchesFilter('anything.at_all', 'all')).toBe(true);
  });
});

describe('activityQuery', () => {
  it('sends the filter\'s kind prefixes and whole local days', () => {
    const { query } = activityQuery('logins', '2026-03-01', '2026-03-02');
    expect(query?.kindPrefixes).toEqual(['login', 'logout', 'session', 'oidc']);
    expect(query?.from).toEqual(new Date(2026, 2, 1));
    expect(query?.to).toEqual(new Date(2026, 2, 3)); // the end date's whole day
  });
  it('sends no prefixes for everything and no dates when unset', () => {
    expect(activityQuery('all', '', '')).toEqual({ query: { kindPrefixes: [], from: undefined, to: undefined } });
  });
  it('refuses an end before the start', () => {
    expect(activityQuery('all', '2026-03-02', '2026-03-01').error).toBe('The end date is before the start date.');
    expect(activityQuery('all', '2026-03-02', '2026-03-02').error).toBeUndefined();
  });
});
