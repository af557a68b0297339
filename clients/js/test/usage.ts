// Type-checked by `tsc -p tsconfig.json` (tests/browser/test_client.py): the README's calls compile
// against analytics.d.ts, reached through package.json's `exports` as an application reaches it, and
// calls the client would drop do not.
import createAnalytics, {
  type Analytics,
  type AnalyticsOptions,
  configure,
  flush,
  newEventId,
  pageview,
  track,
  VERSION,
} from "analytics-pipeline-client";

const options: AnalyticsOptions = {
  endpoint: "https://api.example.com",
  domain: "jav",
  flushIntervalMs: 5000,
  dedupeWindowMs: 30 * 60 * 1000,
  doubleClickMs: 2000,
  storage: "session",
  followHistory: true,
  sendBeacon: (url, data) => navigator.sendBeacon(url, data),
  fetch: (url, init) => fetch(url, init),
};
configure(options);
configure({ storage: null });
configure();

track("view", "movie", "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70");
track("download", "movie", "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70");
track("favorite", "actor", "3b9d2f5e-6a70-4f7e-8a52-0d6c7a4eb2c1");
track("view", "tag", 1234);
track("rating", "movie", "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70", { value: 4 });
pageview();
const requests: number = flush();

const client: Analytics = createAnalytics({ storage: sessionStorage });
client.track("watchlist", "movie", "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70");
client.track("rating", "movie", "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70", { value: 5 });
client.pageview();
const pending: number = client.pending;
const sent: number = client.flush();
const id: string = newEventId();
const version: string = VERSION;

// @ts-expect-error an unknown action
track("like", "movie", "abc");
// @ts-expect-error an unknown entity type
track("view", "user", "abc");
// @ts-expect-error a rating needs its value
track("rating", "movie", "abc");
// @ts-expect-error a rating's value is a number
track("rating", "movie", "abc", { value: "4" });
// @ts-expect-error an unknown storage
configure({ storage: "cookie" });
// @ts-expect-error pending is read-only
client.pending = 3;

export { id, pending, requests, sent, version };
