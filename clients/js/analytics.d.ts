// Types of analytics.js (and of window.AnalyticsClient, the classic build). A test checks that they
// declare exactly what the module exports.

/** The actions the pipeline counts. */
export type Action = "view" | "download" | "favorite" | "rating" | "watchlist";

/** The entity types the pipeline counts. */
export type EntityType = "movie" | "actor" | "tag" | "provider";

/**
 * An entity id in its type's format: a movie's or an actor's is a UUID (any case, sent in lower case),
 * a tag's a decimal integer (a non-negative integer is sent as a string), a provider's 1–64 characters
 * of `A-Z a-z 0-9 _ -`. An id in another form is dropped.
 */
export type EntityId = string | number;

/** What the client needs of a Storage (sessionStorage and localStorage are ones). */
export interface StorageLike {
  readonly length: number;
  key(index: number): string | null;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface AnalyticsOptions {
  /** Base URL of the API, without `/api/v1/...`; `""` (the default) is the page's own origin. */
  endpoint?: string;
  /** The events' domain (default `"jav"`). */
  domain?: string;
  /** How long an event waits in the queue at most (default 5000 ms). */
  flushIntervalMs?: number;
  /** How long an action is sent once per page view, and a view keeps its event id (default 30 min). */
  dedupeWindowMs?: number;
  /** A download repeated within it is a double click, and dropped (default 2000 ms). */
  doubleClickMs?: number;
  /** Where event ids are kept across reloads (default `"session"`); `null` for nowhere. */
  storage?: "session" | "local" | StorageLike | null;
  /** A history navigation that changes the path starts a new page view (default `true`). */
  followHistory?: boolean;
  /** Replaces `navigator.sendBeacon(url, data)`. */
  sendBeacon?: ((url: string, data: Blob) => boolean) | null;
  /** Replaces `fetch(url, init)`. */
  fetch?: ((url: string, init: RequestInit) => Promise<unknown>) | null;
}

/** A rating's value: rounded and clamped to 1–5. */
export interface RatingOptions {
  value: number;
}

/** A client of its own: its queue, timer and options. */
export interface Analytics {
  /** Queue a rating (its value is required). */
  track(action: "rating", entityType: EntityType, entityId: EntityId, options: RatingOptions): void;
  /** Queue one action; repeats within this page view are dropped. */
  track(action: Exclude<Action, "rating">, entityType: EntityType, entityId: EntityId): void;
  /** Send every queued event now; returns the number of requests (batches of at most 100). */
  flush(): number;
  /** Start a new page view (an SPA's route change), for every client of the page. */
  pageview(): void;
  /** The number of queued events. */
  readonly pending: number;
}

/** This module's version (the package's). */
export declare const VERSION: string;

/** A new event id: a UUID, or time + randomness when `crypto.randomUUID` is missing or broken. */
export declare function newEventId(): string;

/** A client with its own queue, timer and options. */
export declare function createAnalytics(options?: AnalyticsOptions): Analytics;

/** Set the default client's options; its queued events are sent first. */
export declare function configure(options?: AnalyticsOptions): void;

/** Queue a rating on the default client (its value is required). */
export declare function track(
  action: "rating",
  entityType: EntityType,
  entityId: EntityId,
  options: RatingOptions,
): void;
/** Queue one action on the default client; repeats within this page view are dropped. */
export declare function track(action: Exclude<Action, "rating">, entityType: EntityType, entityId: EntityId): void;

/** Send the default client's queue now; returns the number of requests. */
export declare function flush(): number;

/** Start a new page view, for every client of the page: call it on an SPA's route change. */
export declare function pageview(): void;

export default createAnalytics;
