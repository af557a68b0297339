/**
 * Browser client of the analytics counter pipeline: a dependency-free ES module.
 *
 *   <script type="module">
 *     import { configure, track } from "/clients/js/analytics.js";
 *     configure({ endpoint: "https://api.example.com" }); // optional: same origin by default
 *     track("view", "movie", movieUuid);
 *     track("rating", "movie", movieUuid, { value: 4 });
 *   </script>
 *
 * Events are queued and sent as one batch (`POST /api/v1/analytics/events/batch`, at most 100 events
 * a request) every few seconds, when the page is hidden or left, and on `flush()`. Sending uses
 * `navigator.sendBeacon` with a text/plain body (no CORS preflight), or `fetch(..., {keepalive: true})`
 * when the beacon is missing or refused. Invalid calls are dropped; nothing here ever throws into the
 * page.
 *
 * Duplicates are judged per page view: the same action on the same entity is sent once per page view
 * and dedupe window (30 minutes). A page view starts with each page load but a reload, with
 * `pageview()`, and with a history navigation (pushState, replaceState, back/forward) that changes the
 * path. A view keeps its event id across reloads of its page view during the window (the id is kept in
 * sessionStorage), so a reload counts once; the window must stay shorter than the server's dedupe TTL
 * (48 h by default). Each download attempt counts (the design's Decision 1) but a repeat within
 * `doubleClickMs` (2 s), a double click, does not. See README.md next to this file.
 */

export const VERSION = "0.2.0";

const ACTIONS = ["view", "download", "favorite", "rating", "watchlist"];
const ENTITY_TYPES = ["movie", "actor", "tag", "provider"];
const STABLE_ID_ACTIONS = ["view"];
const ENTITY_ID = /^[A-Za-z0-9_-]{1,64}$/;
// Each entity type's id format, as the server's ENTITY_ID_FORMATS defaults: a UUID (any case, sent in
// lower case: one movie whatever case the page holds), a decimal integer, or a slug (ENTITY_ID).
const UUID_ID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const INT_ID = /^(0|[1-9][0-9]{0,18})$/;
const ENTITY_ID_FORMATS = {"movie": "uuid", "actor": "uuid", "tag": "int", "provider": "slug"};
const EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const BATCH_PATH = "/api/v1/analytics/events/batch";
const MAX_BATCH = 100;
const STORAGE_PREFIX = "anl:";
const PAGE_KEY = `${STORAGE_PREFIX}page`;

// The page view is the document's, shared by every client of it: its id and path, and the actions
// tracked in it (key -> time until which a repeat is dropped). Both are reset by a new page view.
let page = null;
const seen = new Map();
let followingHistory = false;

const DEFAULTS = {
  endpoint: "", // base URL of the API; "" is the page's own origin
  domain: "jav",
  flushIntervalMs: 5000,
  dedupeWindowMs: 30 * 60 * 1000,
  doubleClickMs: 2000, // a download repeated within it is a double click: dropped
  storage: "session", // "session", "local", a Storage-like object, or null for none
  followHistory: true, // a history navigation that changes the path starts a new page view
  sendBeacon: null, // overrides of navigator.sendBeacon(url, blob) and fetch(url, init)
  fetch: null,
};

function noop() {}

function debug(...args) {
  try {
    console.debug("analytics:", ...args);
  } catch (_) {
    // no console
  }
}

function randomString(length) {
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(Math.random() * alphabet.length)];
  return out;
}

/** A new event id: a UUID, or time + randomness when crypto.randomUUID is missing or broken. */
export function newEventId() {
  try {
    const id = globalThis.crypto.randomUUID();
    if (typeof id === "string" && EVENT_ID.test(id)) return id;
  } catch (_) {
    // fall through
  }
  return `${Date.now().toString(36)}-${randomString(20)}`;
}

function resolveStorage(option) {
  try {
    if (option === "session") return globalThis.sessionStorage || null;
    if (option === "local") return globalThis.localStorage || null;
    return option || null;
  } catch (_) {
    return null; // storage denied (e.g. blocked cookies)
  }
}

/** The id in its type's one form (a UUID in lower case), or null when it is not in that format. */
function normalizeEntityId(entityType, entityId) {
  let id = entityId;
  if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) id = String(id);
  if (typeof id !== "string") return null;
  const format = ENTITY_ID_FORMATS[entityType];
  if (format === "uuid") return UUID_ID.test(id) ? id.toLowerCase() : null;
  if (format === "int") return INT_ID.test(id) ? id : null;
  return ENTITY_ID.test(id) ? id : null;
}

/** A rating's value as an integer 1–5, or null when it is not a finite number. */
function ratingValue(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  return Math.min(5, Math.max(1, Math.round(value)));
}

function currentPath() {
  try {
    return String(globalThis.location.pathname);
  } catch (_) {
    return "";
  }
}

function isReload() {
  try {
    return globalThis.performance.getEntriesByType("navigation")[0].type === "reload";
  } catch (_) {
    return false;
  }
}

/** Start a new page view: what was tracked before may count again. */
function newPage() {
  page = { id: newEventId(), path: currentPath() };
  seen.clear();
}

/** The current page view; a reload carries on the one it reloads, when `storage` remembers it. */
function currentPage(storage) {
  if (page !== null) return page;
  if (isReload()) {
    try {
      const saved = JSON.parse(storage.getItem(PAGE_KEY));
      if (saved && EVENT_ID.test(saved.id) && saved.path === currentPath()) {
        page = { id: saved.id, path: saved.path };
        return page;
      }
    } catch (_) {
      // no storage, or nothing valid saved
    }
  }
  newPage();
  return page;
}

/** A new page view when a history navigation changed the path (query and hash changes are not). */
function historyChanged() {
  try {
    if (page !== null && page.path !== currentPath()) newPage();
  } catch (error) {
    debug("page change failed", error);
  }
}

function followHistory() {
  if (followingHistory) return;
  try {
    const history = globalThis.history;
    for (const name of ["pushState", "replaceState"]) {
      const original = history[name];
      if (typeof original !== "function") continue;
      history[name] = function (...args) {
        const result = original.apply(this, args);
        historyChanged();
        return result;
      };
    }
    addEventListener("popstate", historyChanged);
    followingHistory = true;
  } catch (_) {
    // not in a page: pageview() by hand
  }
}

/** A client with its own queue, timer and settings; `track` and `flush` below use a default one. */
export function createAnalytics(options = {}) {
  const settings = { ...DEFAULTS };
  let url = BATCH_PATH;
  try {
    for (const key of Object.keys(DEFAULTS)) {
      if (options && options[key] !== undefined) settings[key] = options[key];
    }
    url = String(settings.endpoint || "").replace(/\/+$/, "") + BATCH_PATH;
  } catch (_) {
    // unreadable options: the defaults
  }
  let queue = [];
  let timer = null;

  /** The event id of this page view's action: the one saved before a reload, while in the window. */
  function stableEventId(storage, domain, action, entityType, entityId) {
    const key = `${STORAGE_PREFIX}${domain}:${action}:${entityType}:${entityId}`;
    const now = Date.now();
    try {
      const saved = JSON.parse(storage.getItem(key));
      if (saved && saved.page === page.id && saved.expires > now && EVENT_ID.test(saved.id)) {
        return saved.id;
      }
    } catch (_) {
      // no storage, or nothing valid saved
    }
    const id = newEventId();
    try {
      const expires = now + Number(settings.dedupeWindowMs);
      storage.setItem(key, JSON.stringify({ id, page: page.id, expires }));
      storage.setItem(PAGE_KEY, JSON.stringify(page));
    } catch (_) {
      // not saved: a reload will count again
    }
    return id;
  }

  function pruneStorage() {
    try {
      const storage = resolveStorage(settings.storage);
      const now = Date.now();
      for (let i = storage.length - 1; i >= 0; i--) {
        const key = storage.key(i);
        if (!key || !key.startsWith(STORAGE_PREFIX) || key === PAGE_KEY) continue;
        let saved = null;
        try {
          saved = JSON.parse(storage.getItem(key));
        } catch (_) {
          // unreadable: removed below
        }
        if (!saved || !(saved.expires > now)) storage.removeItem(key);
      }
    } catch (_) {
      // no storage
    }
  }

  function send(body) {
    try {
      const beacon =
        settings.sendBeacon ||
        (globalThis.navigator && typeof navigator.sendBeacon === "function"
          ? (u, data) => navigator.sendBeacon(u, data)
          : null);
      if (beacon && beacon(url, new Blob([body], { type: "text/plain" }))) return;
    } catch (_) {
      // fall back to fetch
    }
    try {
      const doFetch = settings.fetch || ((u, init) => globalThis.fetch(u, init));
      const init = {
        method: "POST",
        body,
        keepalive: true,
        credentials: "omit",
        headers: { "content-type": "text/plain" },
      };
      // a keepalive request over the browser's in-flight quota is refused: retry it as a plain one
      Promise.resolve(doFetch(url, init))
        .catch(() => doFetch(url, { ...init, keepalive: false }))
        .catch(noop);
    } catch (_) {
      // nothing more to try
    }
  }

  /** Send every queued event now, in batches of at most 100; returns the number of requests. */
  function flush() {
    try {
      clearTimeout(timer);
      timer = null;
      const events = queue;
      queue = [];
      let requests = 0;
      for (let i = 0; i < events.length; i += MAX_BATCH) {
        send(JSON.stringify({ events: events.slice(i, i + MAX_BATCH) }));
        requests++;
      }
      return requests;
    } catch (error) {
      debug("flush failed", error);
      return 0;
    }
  }

  /** Queue one event; invalid calls and repeats within this page view are dropped. */
  function track(action, entityType, entityId, options) {
    try {
      if (!ACTIONS.includes(action)) return debug("unknown action", action);
      if (!ENTITY_TYPES.includes(entityType)) return debug("unknown entity type", entityType);
      const id = normalizeEntityId(entityType, entityId);
      if (id === null) return debug("invalid entity id", entityId);
      let value = null;
      if (action === "rating") {
        value = ratingValue(options ? options.value : undefined);
        if (value === null) return debug("a rating needs a numeric value");
      }
      const domain = String(settings.domain);
      const storage = resolveStorage(settings.storage);
      currentPage(storage);
      const key = [domain, action, entityType, id, value].join("|");
      const now = Date.now();
      if (now < seen.get(key)) return; // a repeat within this page view's window
      const repeatMs = action === "download" ? settings.doubleClickMs : settings.dedupeWindowMs;
      seen.set(key, now + (Number(repeatMs) || 0));
      const event = {
        event_id: STABLE_ID_ACTIONS.includes(action)
          ? stableEventId(storage, domain, action, entityType, id)
          : newEventId(),
        domain,
        entity_type: entityType,
        entity_id: id,
        action,
        occurred_at: new Date().toISOString(),
      };
      if (value !== null) event.value = value;
      queue.push(event);
      if (queue.length >= MAX_BATCH) flush();
      else if (timer === null) timer = setTimeout(flush, Number(settings.flushIntervalMs) || 0);
    } catch (error) {
      debug("track failed", error);
    }
  }

  /**
   * Start a new page view (an SPA's route change): what was tracked before may count again. The
   * first call before anything is tracked is the page load's own view (a router's initial
   * navigation), so a reload still carries on the page view it reloads.
   */
  function pageview() {
    try {
      if (page === null) currentPage(resolveStorage(settings.storage));
      else newPage();
    } catch (error) {
      debug("pageview failed", error);
    }
  }

  try {
    if (settings.followHistory) followHistory();
  } catch (_) {
    // not followed: pageview() by hand
  }
  try {
    pruneStorage();
    addEventListener("pagehide", flush);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") flush();
    });
  } catch (_) {
    // not in a page: flush() by hand
  }

  return {
    track,
    flush,
    pageview,
    get pending() {
      return queue.length;
    },
  };
}

let defaultClient = null;

function client() {
  if (defaultClient === null) defaultClient = createAnalytics();
  return defaultClient;
}

/** Set the default client's options (endpoint, domain, ...); queued events are sent first. */
export function configure(options) {
  try {
    if (defaultClient !== null) defaultClient.flush();
    defaultClient = createAnalytics(options);
  } catch (error) {
    debug("configure failed", error);
  }
}

/** Track one action: track("view", "movie", uuid), track("rating", "movie", uuid, { value: 4 }). */
export function track(action, entityType, entityId, options) {
  try {
    client().track(action, entityType, entityId, options);
  } catch (error) {
    debug("track failed", error);
  }
}

/** Start a new page view, for every client of the page: call it on an SPA's route change. */
export function pageview() {
  try {
    client().pageview();
  } catch (error) {
    debug("pageview failed", error);
  }
}

/** Send the default client's queue now. */
export function flush() {
  try {
    return client().flush();
  } catch (error) {
    debug("flush failed", error);
    return 0;
  }
}

export default createAnalytics;
