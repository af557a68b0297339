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
 * page. Views and downloads reuse one event id per entity for the dedupe window (30 minutes, kept in
 * sessionStorage), so a reload within it counts once; the window must stay shorter than the server's
 * dedupe TTL (48 h by default). See README.md next to this file.
 */

const ACTIONS = ["view", "download", "favorite", "rating", "watchlist"];
const ENTITY_TYPES = ["movie", "actor", "tag", "provider"];
const STABLE_ID_ACTIONS = ["view", "download"];
const ENTITY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const BATCH_PATH = "/api/v1/analytics/events/batch";
const MAX_BATCH = 100;
const STORAGE_PREFIX = "anl:";
const seen = new Set(); // identical actions of this page's life, whichever client tracked them

const DEFAULTS = {
  endpoint: "", // base URL of the API; "" is the page's own origin
  domain: "jav",
  flushIntervalMs: 5000,
  dedupeWindowMs: 30 * 60 * 1000,
  storage: "session", // "session", "local", a Storage-like object, or null for none
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

function normalizeEntityId(entityId) {
  if (typeof entityId === "number" && Number.isSafeInteger(entityId) && entityId >= 0) {
    return String(entityId);
  }
  return typeof entityId === "string" && ENTITY_ID.test(entityId) ? entityId : null;
}

/** A rating's value as an integer 1–5, or null when it is not a finite number. */
function ratingValue(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  return Math.min(5, Math.max(1, Math.round(value)));
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

  function stableEventId(domain, action, entityType, entityId) {
    const storage = resolveStorage(settings.storage);
    const key = `${STORAGE_PREFIX}${domain}:${action}:${entityType}:${entityId}`;
    const now = Date.now();
    try {
      const saved = JSON.parse(storage.getItem(key));
      if (saved && saved.expires > now && EVENT_ID.test(saved.id)) return saved.id;
    } catch (_) {
      // no storage, or nothing valid saved
    }
    const id = newEventId();
    try {
      storage.setItem(key, JSON.stringify({ id, expires: now + Number(settings.dedupeWindowMs) }));
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
        if (!key || !key.startsWith(STORAGE_PREFIX)) continue;
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

  /** Queue one event; invalid calls and repeats within this page's life are dropped. */
  function track(action, entityType, entityId, options) {
    try {
      if (!ACTIONS.includes(action)) return debug("unknown action", action);
      if (!ENTITY_TYPES.includes(entityType)) return debug("unknown entity type", entityType);
      const id = normalizeEntityId(entityId);
      if (id === null) return debug("invalid entity id", entityId);
      let value = null;
      if (action === "rating") {
        value = ratingValue(options ? options.value : undefined);
        if (value === null) return debug("a rating needs a numeric value");
      }
      const domain = String(settings.domain);
      const key = [domain, action, entityType, id, value].join("|");
      if (seen.has(key)) return;
      seen.add(key);
      const event = {
        event_id: STABLE_ID_ACTIONS.includes(action)
          ? stableEventId(domain, action, entityType, id)
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
