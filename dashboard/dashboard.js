// Admin dashboard of the analytics pipeline: a period's ranking and site-wide trend beside the previous
// period, one entity's totals and series, the pipeline's status, and the admin's sign-in (OpenID Connect,
// authorization code + PKCE). Plain ES module, no dependencies, no build step: the charts are inline SVG.

const CONFIG_URL = "/dashboard/config.json";
const DEFAULT_CONFIG = { issuer: null, client_id: null, api: "/api/v1/analytics", movie_url: null, domains: null };
const STATUS_EVERY_MS = 10000;
const COUNTERS = ["views", "downloads", "favorites", "watchlists", "ratings_count"];
// what the pipeline counted (events), and what the site's own tables hold now (its state, movies only)
const EVENT_RANKINGS = [...COUNTERS, "ratings_avg"];
const STATE_FIGURES = ["favorites_active", "watchlists_active", "ratings_current_count", "ratings_current_avg"];
const STATE_RANKINGS = STATE_FIGURES; // every one, ranked from the site's tables (movies, all time)
const RANKINGS = [...EVENT_RANKINGS, ...STATE_RANKINGS];
const AVERAGES = ["ratings_avg", "ratings_current_avg"];
// a state figure has no history: its charts show the events it comes from
const CHARTED_AS = {
  favorites_active: "favorites",
  watchlists_active: "watchlists",
  ratings_current_count: "ratings_count",
  ratings_current_avg: "ratings_avg",
};
const TYPES = ["movie", "actor", "tag", "provider"];
const PERIODS = ["7d", "30d", "90d", "month", "custom"];
const MAX_DAYS = 400;
const ENTITY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const DOMAIN = /^[A-Za-z0-9_-]{1,32}$/;
const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const PARITY_GATE_DAYS = 7; // the rollout's gate: a week of clean reports before the legacy path goes
const LABELS = {
  views: "views",
  downloads: "downloads",
  favorites: "favorites",
  watchlists: "watchlists",
  ratings_count: "ratings",
  ratings_avg: "average rating",
  favorites_active: "favorites now",
  watchlists_active: "watchlists now",
  ratings_current_count: "ratings now",
  ratings_current_avg: "average rating now",
};
// The metric dictionary, in the dashboard's words: what each figure counts, and what it does not.
export const MEANINGS = {
  views: "Views counted: every view event the pipeline accepted (attempts, as the site counted them). Bots and replayed events are not counted.",
  downloads: "Downloads counted: every download event accepted (attempts, not completed files).",
  favorites: "Favorite events: each time someone favorited it. A favorite removed on the site is not subtracted.",
  watchlists: "Watchlist events: each time someone added it to a watchlist. A removal is not subtracted.",
  ratings_count: "Rating events: every rating given. A changed rating counts again, as a new rating.",
  ratings_avg: "The average of every rating event (their sum over their count), changed ratings included: not the site's current average.",
  favorites_active: "Favorites on the site now, read from its own table: removed ones are gone. The state now, not a period's.",
  watchlists_active: "Watchlist entries on the site now, read from its own table. The state now, not a period's.",
  ratings_current_count: "Ratings on the site now, read from its own table: each user's current rating once.",
  ratings_current_avg: "The average of the site's current ratings, as its own admin page ranks top-rated titles.",
};
const NOT_CONFIGURED = "not configured";
const NOT_CONFIGURED_WHY = "The site's own tables are not configured (MYSQL_STATE): these figures are not read, which is not 0.";
const SVG_NS = "http://www.w3.org/2000/svg";

// sessionStorage keys: the tab's sign-in, gone when the tab closes (never localStorage)
const KEY = {
  token: "anl.dashboard.token",
  pending: "anl.dashboard.pending", // {state, verifier, back} of a sign-in under way
  retried: "anl.dashboard.retried", // a 401 already sent the admin to sign in again once
  signedOut: "anl.dashboard.signed-out",
};

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const average = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const percent = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1, signDisplay: "exceptZero" });

/** A number with thousands separators, or "—" when there is none. */
export function formatNumber(value, format = integer) {
  return typeof value === "number" && Number.isFinite(value) ? format.format(value) : "—";
}

const $ = (id) => document.getElementById(id);
const seg = encodeURIComponent;
const formatOf = (counter) => (AVERAGES.includes(counter) ? average : integer);
const isState = (counter) => STATE_RANKINGS.includes(counter);
const charted = (counter) => CHARTED_AS[counter] ?? counter;

// --- state, read from and written back to the URL (deep links) --------------------------------------

const DEFAULT_DOMAIN = "jav";
const state = {
  domain: DEFAULT_DOMAIN,
  type: "movie",
  period: "30d",
  from: "",
  to: "",
  counter: "views",
  min_ratings: "5",
  limit: "10",
  entity: "",
};
const URL_FIELDS = ["domain", "type", "period", "from", "to", "counter", "min_ratings", "limit", "entity"];
let config = { ...DEFAULT_CONFIG };
let token = null; // the access token, or null when the API takes calls without one
let lastTop = [];
let lastSeries = null;
let lastTrend = null;

function readUrl(search = window.location.search) {
  const params = new URLSearchParams(search);
  const pick = (name, allowed) => {
    const value = params.get(name);
    return value !== null && (!allowed || allowed.includes(value)) ? value : null;
  };
  state.domain = pick("domain") ?? state.domain; // checked against the configuration before use
  state.type = pick("type", TYPES) ?? state.type;
  state.counter = pick("counter", RANKINGS) ?? state.counter;
  if (isState(state.counter) && state.type !== "movie") state.counter = "views"; // the site's tables: movies
  state.min_ratings = pick("min_ratings") ?? state.min_ratings;
  state.limit = pick("limit") ?? state.limit;
  const entity = pick("entity") ?? "";
  state.entity = ENTITY_ID.test(entity) ? entity : ""; // never a path of its own (".." and the like)
  if (entity && !state.entity) showMessage("entity", "Entity id from the address: 1–64 characters of A-Z a-z 0-9 _ -");
  const from = pick("from");
  const to = pick("to");
  // a range without a named period is a custom one
  state.period = pick("period", PERIODS) ?? (from || to ? "custom" : state.period);
  if (state.period === "custom") {
    state.from = from ?? "";
    state.to = to ?? "";
  } else {
    Object.assign(state, presetRange(state.period));
  }
}

function writeUrl() {
  const params = new URLSearchParams();
  for (const name of URL_FIELDS) {
    if (state[name] === "") continue;
    if ((name === "from" || name === "to") && state.period !== "custom") continue; // a preset moves with today
    if (name === "min_ratings" && !AVERAGES.includes(state.counter)) continue;
    params.set(name, state[name]);
  }
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

/** The domains the page may ask about: the configured ones, or (no list served) the current one. */
function domainChoices() {
  return config.domains ?? [state.domain];
}

/** The domain from the address, checked against the vocabulary before any request uses it. */
export function checkDomain(domain, allowed) {
  const shown = domain.length > 40 ? `${domain.slice(0, 40)}…` : domain;
  if (!DOMAIN.test(domain)) return `Domain "${shown}": 1–32 characters of A-Z a-z 0-9 _ -`;
  if (allowed && !allowed.includes(domain)) return `Domain "${shown}" is not configured here (${allowed.join(", ")})`;
  return null;
}

function syncControls() {
  const choices = domainChoices();
  const select = $("domain");
  if ([...select.options].map((option) => option.value).join() !== choices.join()) {
    select.replaceChildren(...choices.map((name) => new Option(name, name)));
  }
  select.value = state.domain;
  $("entity-type").value = state.type;
  $("period").value = state.period;
  $("from").value = DAY.test(state.from) ? state.from : "";
  $("to").value = DAY.test(state.to) ? state.to : "";
  // the site's own tables hold movies' favorites and ratings: no such ranking of another type
  for (const option of $("counter").querySelectorAll("option")) option.disabled = isState(option.value) && state.type !== "movie";
  $("counter").value = state.counter;
  $("min-ratings").value = state.min_ratings;
  $("min-ratings-field").hidden = !AVERAGES.includes(state.counter);
  $("limit").value = state.limit;
  $("entity-id").value = state.entity;
  $("top-entity-header").textContent = state.type;
}

// --- dates (UTC days, as the rollups' buckets) -----------------------------------------------------------

function utcToday() {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
}

const isoDay = (date) => date.toISOString().slice(0, 10);
const addDays = (date, days) => new Date(date.getTime() + days * 86400000);
const parseDay = (text) => new Date(`${text}T00:00:00Z`);
const daysIn = (from, to) => Math.round((parseDay(to) - parseDay(from)) / 86400000) + 1;

/** The range of a preset period, ending today (UTC). */
export function presetRange(period, today = utcToday()) {
  if (period === "month") {
    return { from: isoDay(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1))), to: isoDay(today) };
  }
  const days = { "7d": 7, "30d": 30, "90d": 90 }[period] ?? 30;
  return { from: isoDay(addDays(today, 1 - days)), to: isoDay(today) };
}

/** The period of the same length that ends the day before `from`. */
export function previousRange(from, to) {
  const days = daysIn(from, to);
  return { from: isoDay(addDays(parseDay(from), -days)), to: isoDay(addDays(parseDay(from), -1)) };
}

/** What is wrong with the chosen range, or null. */
export function rangeProblem(from, to) {
  if (!DAY.test(from) || Number.isNaN(parseDay(from).getTime())) return "From: choose a day";
  if (!DAY.test(to) || Number.isNaN(parseDay(to).getTime())) return "To: choose a day";
  if (from > to) return "From: must not be after To";
  if (daysIn(from, to) > MAX_DAYS) return `To: the period covers ${daysIn(from, to)} days; at most ${MAX_DAYS}`;
  return null;
}

// --- messages ------------------------------------------------------------------------------------------

const messages = new Map();

function showMessage(source, text) {
  messages.set(source, text);
  renderMessages();
}

function clearMessage(source) {
  if (messages.delete(source)) renderMessages();
}

function renderMessages() {
  const area = $("messages");
  area.replaceChildren(
    ...[...messages].map(([source, text]) => {
      const line = document.createElement("p");
      line.dataset.source = source;
      line.textContent = text;
      return line;
    }),
  );
  area.hidden = messages.size === 0;
}

// --- sign-in: OpenID Connect authorization code flow with PKCE -------------------------------------------

const storage = {
  get(key) {
    try {
      return JSON.parse(sessionStorage.getItem(key));
    } catch {
      return null;
    }
  },
  set(key, value) {
    sessionStorage.setItem(key, JSON.stringify(value));
  },
  drop(key) {
    sessionStorage.removeItem(key);
  },
};

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const randomText = (size) => base64url(crypto.getRandomValues(new Uint8Array(size)));

/** BASE64URL(SHA-256(verifier)): the S256 code challenge of RFC 7636. */
export async function codeChallenge(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

const redirectUri = () => `${window.location.origin}${window.location.pathname}`;

class SignInError extends Error {}

async function discovery() {
  const url = `${config.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  let document_;
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    document_ = await response.json();
  } catch (error) {
    throw new SignInError(`Sign-in: the issuer's discovery document (${url}) could not be read: ${error.message}`);
  }
  if (!document_ || typeof document_.authorization_endpoint !== "string" || typeof document_.token_endpoint !== "string") {
    throw new SignInError(`Sign-in: the discovery document (${url}) names no authorization or token endpoint`);
  }
  return document_;
}

/** Send the browser to the provider; the tab comes back with ?code=…&state=…. */
async function startSignIn(search = window.location.search) {
  const endpoints = await discovery();
  const verifier = randomText(32);
  const pending = { state: randomText(16), verifier, back: search };
  storage.set(KEY.pending, pending);
  storage.drop(KEY.signedOut);
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id ?? "",
    redirect_uri: redirectUri(),
    scope: "openid",
    state: pending.state,
    code_challenge: await codeChallenge(verifier),
    code_challenge_method: "S256",
  });
  const separator = endpoints.authorization_endpoint.includes("?") ? "&" : "?";
  window.location.assign(`${endpoints.authorization_endpoint}${separator}${query}`);
}

/** The provider sent the tab back: check `state`, trade the code for a token, clean the address bar. */
async function finishSignIn(params) {
  const pending = storage.get(KEY.pending);
  storage.drop(KEY.pending);
  // whatever happens next, the code leaves the address bar and the dashboard's own query comes back
  window.history.replaceState(null, "", `${window.location.pathname}${pending?.back ?? ""}`);
  if (params.has("error")) {
    const detail = params.get("error_description");
    throw new SignInError(`Sign-in refused by the provider: ${params.get("error")}${detail ? ` (${detail})` : ""}`);
  }
  if (!pending || pending.state !== params.get("state")) {
    throw new SignInError("Sign-in failed: the answer does not match a sign-in started in this tab. Sign in again.");
  }
  const endpoints = await discovery();
  let body = null;
  let response;
  try {
    response = await fetch(endpoints.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: redirectUri(),
        client_id: config.client_id ?? "",
        code_verifier: pending.verifier,
      }),
    });
    body = await response.json().catch(() => null);
  } catch (error) {
    throw new SignInError(`Sign-in: the token endpoint could not be reached: ${error.message}`);
  }
  if (!response.ok || !body || typeof body.access_token !== "string") {
    const reason = body?.error ? `${body.error}${body.error_description ? ` (${body.error_description})` : ""}` : `HTTP ${response.status}`;
    throw new SignInError(`Sign-in: the token endpoint refused the code: ${reason}`);
  }
  const lifetime = Number(body.expires_in);
  const saved = {
    access_token: body.access_token,
    expires_at: Number.isFinite(lifetime) && lifetime > 0 ? Date.now() + lifetime * 1000 : null,
  };
  storage.set(KEY.token, saved);
  return saved.access_token;
}

function savedToken() {
  const saved = storage.get(KEY.token);
  if (!saved || typeof saved.access_token !== "string") return null;
  if (saved.expires_at && saved.expires_at <= Date.now()) {
    storage.drop(KEY.token);
    return null;
  }
  return saved.access_token;
}

function renderSession(mode, text) {
  const box = $("session");
  box.dataset.state = mode;
  $("session-text").textContent = text;
  $("sign-in").hidden = !(mode === "signed-out" || mode === "failed");
  $("sign-out").hidden = mode !== "signed-in";
}

/** The token the API calls carry: null when no issuer is configured; undefined when the page must stop. */
async function signIn() {
  if (!config.issuer) {
    renderSession("open", "No sign-in (no issuer configured)");
    return null;
  }
  const params = new URLSearchParams(window.location.search);
  try {
    if (params.has("state") && (params.has("code") || params.has("error"))) {
      const fresh = await finishSignIn(params);
      renderSession("signed-in", "Signed in");
      return fresh;
    }
    const saved = savedToken();
    if (saved) {
      renderSession("signed-in", "Signed in");
      return saved;
    }
    if (storage.get(KEY.signedOut)) {
      renderSession("signed-out", "Signed out");
      return undefined;
    }
    renderSession("redirecting", "Signing in…");
    await startSignIn();
    return undefined;
  } catch (error) {
    if (!(error instanceof SignInError)) throw error;
    showMessage("auth", error.message);
    renderSession("failed", "Not signed in");
    return undefined;
  }
}

async function signOut() {
  storage.drop(KEY.token);
  storage.drop(KEY.retried);
  storage.set(KEY.signedOut, true);
  token = undefined;
  let endSession = null;
  try {
    endSession = (await discovery()).end_session_endpoint ?? null;
  } catch {
    endSession = null; // the tab's token is gone either way
  }
  if (typeof endSession === "string") {
    const query = new URLSearchParams({ client_id: config.client_id ?? "", post_logout_redirect_uri: redirectUri() });
    const separator = endSession.includes("?") ? "&" : "?";
    window.location.assign(`${endSession}${separator}${query}`);
    return;
  }
  renderSession("signed-out", "Signed out");
  window.location.reload();
}

let restarting = false;

/** A 401 from the API: sign in again once (silent while the provider's session lasts), then say why. */
function unauthorized() {
  if (!config.issuer) {
    showMessage("auth", "The API asks for a sign-in (HTTP 401), but /dashboard/config.json names no issuer.");
    return;
  }
  if (restarting) return;
  storage.drop(KEY.token);
  if (storage.get(KEY.retried)) {
    showMessage(
      "auth",
      "The API refused the token (HTTP 401) right after signing in: the API expects another issuer or " +
        "audience than the one this dashboard signs in with. Sign in again, or ask the stack's operator.",
    );
    renderSession("failed", "Token refused");
    return;
  }
  restarting = true;
  storage.set(KEY.retried, true);
  showMessage("auth", "The sign-in has expired (HTTP 401): signing in again…");
  startSignIn().catch((error) => {
    restarting = false;
    showMessage("auth", error.message);
    renderSession("failed", "Not signed in");
  });
}

// --- HTTP ------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

function describe(body, response) {
  if (body && Array.isArray(body.errors) && body.errors.length) {
    return body.errors
      .map((error) => (error && error.field ? `${error.field}: ${error.message}` : String(error?.message ?? error)))
      .join("; ");
  }
  if (response.status === 401) return "not signed in (HTTP 401)";
  if (response.status === 403) return "this account may not read the analytics (HTTP 403)";
  const status = body && typeof body.status === "string" ? ` (${body.status})` : "";
  return `HTTP ${response.status} ${response.statusText || ""}`.trim() + status;
}

async function fetchJson(url, signal, withToken = true) {
  const headers = { Accept: "application/json" };
  if (withToken && token) headers.Authorization = `Bearer ${token}`;
  let response;
  let text;
  try {
    response = await fetch(url, { cache: "no-store", headers, signal });
    text = await response.text();
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`network error: ${error.message || error}`, 0);
  }
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (withToken && response.status === 401) unauthorized();
  if (withToken && response.status === 403) {
    showMessage("auth", "Signed in, but this account may not read the analytics (HTTP 403). Sign out and use an admin's account.");
  }
  if (!response.ok) throw new ApiError(describe(body, response), response.status);
  if (body === null || typeof body !== "object") throw new ApiError("the answer is not a JSON object", response.status);
  if (withToken && token) storage.drop(KEY.retried); // the token works: a later 401 may sign in again
  return body;
}

const running = new Map();

/** Fetch for one part of the page; a newer request of the same part cancels the older one. */
async function load(part, url) {
  running.get(part)?.abort();
  const controller = new AbortController();
  running.set(part, controller);
  try {
    const body = await fetchJson(url, controller.signal);
    return running.get(part) === controller ? { body } : null;
  } catch (error) {
    if (error.name === "AbortError" || running.get(part) !== controller) return null;
    return { error };
  }
}

const api = (path) => `${config.api.replace(/\/$/, "")}${path}`;
const kindPath = () => `/${seg(state.domain)}/${seg(state.type)}`;

// --- values -----------------------------------------------------------------------------------------------

/** A counter of one item or point; ratings_avg is computed from sum and count where the API gives none; a
 * figure of the site's state is null when the API has none (not configured), never 0. */
export function valueOf(item, counter) {
  if (STATE_FIGURES.includes(counter)) return typeof item?.[counter] === "number" ? item[counter] : null;
  if (counter !== "ratings_avg") return Number(item?.[counter]) || 0;
  if (typeof item?.ratings_avg === "number") return item.ratings_avg;
  const count = Number(item?.ratings_count) || 0;
  return count > 0 ? (Number(item.ratings_sum) || 0) / count : null;
}

/** The period's figure: a sum of counts, or for the average rating, all ratings' sum over their count. */
export function aggregate(points, counter) {
  if (counter !== "ratings_avg") return points.reduce((total, point) => total + valueOf(point, counter), 0);
  const count = points.reduce((total, point) => total + (Number(point.ratings_count) || 0), 0);
  const sum = points.reduce((total, point) => total + (Number(point.ratings_sum) || 0), 0);
  return count > 0 ? sum / count : null;
}

/** The change from `previous` to `current` in %, or null when there is nothing to compare with. */
export function change(current, previous) {
  if (typeof current !== "number" || typeof previous !== "number" || previous === 0) return null;
  return ((current - previous) / previous) * 100;
}

function movieLink(entityId) {
  const template = config.movie_url;
  if (state.type !== "movie" || typeof template !== "string" || !template.includes("{entity_id}")) return null;
  const url = template.replaceAll("{entity_id}", seg(entityId));
  return /^https?:\/\//i.test(url) || url.startsWith("/") ? url : null;
}

// --- top-N -----------------------------------------------------------------------------------------------

function rankingCaption() {
  const rows = /^\d+$/.test(state.limit) ? `${state.limit} ` : "";
  const floor = AVERAGES.includes(state.counter) ? `, at least ${state.min_ratings} ratings` : "";
  const when = isState(state.counter) ? "from the site's tables, now (events: all time)" : `${state.from} to ${state.to}`;
  return `${rows}${state.type}s by ${LABELS[state.counter]}, ${when}${floor}`;
}

// labels (and titles) of the entities the API named, by type and id: the selected one's name
const names = new Map();
const nameKey = (type, id) => `${type}/${id}`;

function remember(type, items) {
  for (const item of items) {
    const label = typeof item?.label === "string" && item.label !== "" ? item.label : null;
    const title = typeof item?.title === "string" && item.title !== "" && item.title !== label ? item.title : null;
    if (typeof item?.entity_id === "string" && (label || title)) names.set(nameKey(type, item.entity_id), { label, title });
  }
}

const nameOf = (id, type = state.type) => names.get(nameKey(type, id)) ?? null;

async function loadTop() {
  const table = $("top-table");
  table.dataset.state = "loading";
  table.setAttribute("aria-busy", "true");
  $("top-caption").textContent = rankingCaption();
  $("top-table-caption").textContent = `Top ${rankingCaption()}`;
  // a state figure is the site's now: ranked as its own admin page ranks it, not over a period
  const query = new URLSearchParams({ counter: state.counter, limit: state.limit });
  if (!isState(state.counter)) {
    query.set("from", state.from);
    query.set("to", state.to);
  }
  if (AVERAGES.includes(state.counter)) query.set("min_ratings", state.min_ratings);
  const type = state.type;
  const result = await load("top", api(`${kindPath()}/top?${query}`));
  if (!result) return;
  table.removeAttribute("aria-busy");
  if (result.error) {
    table.dataset.state = "error";
    showMessage("top", `Top ${state.type}s: ${result.error.message}`);
    lastTop = [];
    renderTop([]);
    return;
  }
  clearMessage("top");
  lastTop = Array.isArray(result.body.items) ? result.body.items : [];
  remember(type, lastTop);
  table.dataset.state = "ready";
  renderTop(lastTop);
  if (!state.entity && lastTop.length) selectEntity(lastTop[0].entity_id);
  else renderEntityCaption();
}

function entityCell(item) {
  const cell = document.createElement("td");
  cell.className = "entity";
  const known = nameOf(item.entity_id);
  const label = known?.label ?? null;
  const href = movieLink(item.entity_id);
  if (label) {
    const name = document.createElement(href ? "a" : "span");
    name.className = "label";
    name.textContent = label;
    if (href) {
      name.href = href;
      name.target = "_blank";
      name.rel = "noopener noreferrer";
      name.title = `Open ${label} on the site (new tab)`;
    }
    cell.append(name);
  }
  if (known?.title) {
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = known.title;
    title.title = known.title;
    cell.append(title);
  }
  const select = document.createElement("button");
  select.type = "button";
  select.className = label ? "link id secondary-id" : "link id";
  select.textContent = item.entity_id;
  select.title = item.entity_id;
  select.setAttribute("aria-label", `Show ${label ?? item.entity_id}`);
  cell.append(select);
  if (!label && href) {
    const open = document.createElement("a");
    open.className = "open";
    open.href = href;
    open.target = "_blank";
    open.rel = "noopener noreferrer";
    open.textContent = "open";
    open.setAttribute("aria-label", `Open ${item.entity_id} on the site (new tab)`);
    cell.append(" ", open);
  }
  return cell;
}

/** The table's figures: the state figure it is ranked by first, if any (in sight on a narrow screen),
 * then every event figure. */
const columns = () => (isState(state.counter) ? [state.counter, ...EVENT_RANKINGS] : EVENT_RANKINGS);

function renderHead() {
  const row = $("top-table").tHead.rows[0];
  for (const th of [...row.cells].slice(2)) th.remove();
  for (const counter of columns()) {
    const th = document.createElement("th");
    th.scope = "col";
    th.className = "num";
    th.dataset.counter = counter;
    th.title = MEANINGS[counter];
    th.textContent = LABELS[counter];
    row.append(th);
  }
}

function renderTop(items) {
  const table = $("top-table");
  table.dataset.count = String(items.length);
  $("top-entity-header").textContent = state.type;
  renderHead();
  for (const th of table.querySelectorAll("thead th[data-counter]")) {
    const active = th.dataset.counter === state.counter;
    th.classList.toggle("active", active);
    if (active) th.setAttribute("aria-sort", "descending");
    else th.removeAttribute("aria-sort");
  }
  const rows = items.map((item, index) => {
    const row = document.createElement("tr");
    row.dataset.entityId = item.entity_id;
    const rank = document.createElement("td");
    rank.className = "num rank";
    rank.textContent = String(index + 1);
    row.append(rank, entityCell(item));
    for (const counter of columns()) {
      const cell = document.createElement("td");
      cell.className = counter === state.counter ? "num active" : "num";
      cell.dataset.counter = counter;
      cell.textContent = formatNumber(valueOf(item, counter), formatOf(counter));
      row.append(cell);
    }
    return row;
  });
  // the empty table's message stands outside the scrolling table, so a narrow screen shows it whole
  const empty = $("top-empty");
  empty.hidden = rows.length > 0;
  empty.textContent =
    table.dataset.state === "error"
      ? "Could not load the ranking (see the message above)."
      : isState(state.counter)
        ? `No ${state.type} in the site's tables for ${LABELS[state.counter]}.`
        : `Nothing counted in this period.`;
  table.tBodies[0].replaceChildren(...rows);
  markSelected();
}

function markSelected() {
  for (const row of $("top-table").tBodies[0].rows) {
    const selected = row.dataset.entityId !== undefined && row.dataset.entityId === state.entity;
    row.classList.toggle("selected", selected);
    const button = row.querySelector("button");
    if (button) {
      if (selected) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }
}

// --- one entity: all-time totals, and its series in the period ---------------------------------------------

function selectEntity(entityId) {
  state.entity = entityId;
  $("entity-id").value = entityId;
  writeUrl();
  markSelected();
  loadTotals();
  loadSeries();
}

function renderEntityCaption() {
  const known = state.entity ? nameOf(state.entity) : null;
  $("entity-caption").textContent = state.entity ? (known?.label ?? known?.title ?? state.entity) : "";
}

async function loadTotals() {
  const box = $("totals");
  renderEntityCaption();
  if (!state.entity) {
    box.dataset.state = "empty";
    delete box.dataset.entity;
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.textContent = "Nothing selected.";
    box.replaceChildren(hint);
    return;
  }
  box.dataset.state = "loading";
  box.setAttribute("aria-busy", "true");
  const entity = state.entity;
  const type = state.type;
  const result = await load("totals", api(`${kindPath()}/${seg(entity)}/totals`));
  if (!result) return;
  box.removeAttribute("aria-busy");
  if (result.error) {
    box.dataset.state = "error";
    showMessage("totals", `Totals of ${entity}: ${result.error.message}`);
    return;
  }
  clearMessage("totals");
  remember(type, [{ ...result.body, entity_id: entity }]); // an API that labels its totals names them too
  renderEntityCaption();
  const missing = isMissing(result.body, nameOf(entity, type));
  renderTotals(entity, type, result.body, missing);
  box.dataset.state = missing ? "missing" : "ready";
}

/** Nothing ever counted, nothing in the site's tables, and no label: no such entity (not a row of zeros). */
export function isMissing(totals, known) {
  if (known) return false;
  const counted = COUNTERS.some((counter) => Number(totals?.[counter]) > 0) || Number(totals?.ratings_sum) > 0;
  const held = STATE_FIGURES.some((figure) => typeof totals?.[figure] === "number" && totals[figure] > 0);
  return !counted && !held;
}

function entityName(entity, type) {
  const known = nameOf(entity, type);
  const name = document.createElement("div");
  name.className = "entity-name";
  if (known?.label) {
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = known.label;
    name.append(label);
  }
  if (known?.title) {
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = known.title;
    name.append(title);
  }
  const line = document.createElement("span");
  line.className = "id-line";
  const code = document.createElement("code");
  code.textContent = entity;
  line.append(code);
  const href = movieLink(entity);
  if (href) {
    const open = document.createElement("a");
    open.href = href;
    open.target = "_blank";
    open.rel = "noopener noreferrer";
    open.textContent = "open on the site";
    line.append(" · ", open);
  }
  name.append(line);
  return name;
}

function figureList(fields, totals, configured) {
  const list = document.createElement("dl");
  list.className = "figures";
  for (const field of fields) {
    const item = document.createElement("div");
    item.className = field === state.counter ? "figure active" : "figure";
    item.title = MEANINGS[field];
    const term = document.createElement("dt");
    term.textContent = LABELS[field];
    const value = document.createElement("dd");
    value.dataset.field = field;
    if (configured) {
      value.textContent = formatNumber(valueOf(totals, field), formatOf(field));
    } else {
      value.textContent = NOT_CONFIGURED;
      value.classList.add("na");
    }
    item.append(term, value);
    list.append(item);
  }
  return list;
}

function renderTotals(entity, type, totals, missing) {
  const box = $("totals");
  box.dataset.entity = entity;
  const parts = [entityName(entity, type)];
  if (missing) {
    const note = document.createElement("p");
    note.className = "missing";
    note.dataset.testid = "missing";
    note.textContent =
      `No such ${type}: nothing was ever counted for this id, and no label is known for it. ` +
      (type === "movie" ? "Check the id, or look the movie up by its code." : "Check the id, or look it up by its name.");
    parts.push(note);
    box.replaceChildren(...parts);
    return;
  }
  const counted = document.createElement("h4");
  counted.textContent = "Counted events, all time";
  parts.push(counted, figureList(EVENT_RANKINGS, totals, true));
  if (type === "movie") {
    // the site's own tables: present when configured (numbers), null or absent otherwise
    const configured = STATE_FIGURES.some((figure) => typeof totals?.[figure] === "number");
    const now = document.createElement("h4");
    now.textContent = "On the site now (its own tables)";
    parts.push(now, figureList(STATE_FIGURES, totals, configured));
    if (!configured) {
      const why = document.createElement("p");
      why.className = "hint";
      why.dataset.testid = "state-not-configured";
      why.textContent = NOT_CONFIGURED_WHY;
      parts.push(why);
    }
  }
  box.replaceChildren(...parts);
}

// --- looking an entity up by the site's label (a movie's code, an actor's name) ----------------------------

/** Ids labelled `text` (case aside): the API's label search, or where it has none, the labels of the
 * all-time rankings it answers with (their first 100 by each counter). */
async function findByLabel(type, text) {
  const wanted = text.toLocaleLowerCase();
  const matching = (items) => {
    remember(type, items);
    return items.filter((item) => typeof item?.label === "string" && item.label.toLocaleLowerCase() === wanted);
  };
  const lookup = await load("lookup", api(`${kindPath()}/lookup?${new URLSearchParams({ label: text })}`));
  if (!lookup) return null;
  if (!lookup.error) return { items: matching(Array.isArray(lookup.body.items) ? lookup.body.items : []), searched: null };
  if (lookup.error.status !== 404) throw lookup.error;
  // no label search in this API: the labels its rankings carry
  for (const counter of COUNTERS) {
    const ranked = await load("lookup", api(`${kindPath()}/top?${new URLSearchParams({ counter, limit: "100" })}`));
    if (!ranked) return null;
    if (ranked.error) throw ranked.error;
    const found = matching(Array.isArray(ranked.body.items) ? ranked.body.items : []);
    if (found.length) return { items: found, searched: counter };
  }
  return { items: [], searched: "all" };
}

async function lookUp(value) {
  const type = state.type;
  // an id as the API names them (a UUID, a number) is shown at once; anything else is a label first
  if (UUID.test(value) || /^\d{1,19}$/.test(value)) {
    clearMessage("entity");
    selectEntity(UUID.test(value) ? value.toLowerCase() : value);
    return;
  }
  const form = $("entity-form");
  form.dataset.state = "searching";
  let found;
  try {
    found = await findByLabel(type, value);
  } catch (error) {
    form.dataset.state = "error";
    showMessage("entity", `Looking up "${value}": ${error.message}`);
    return;
  }
  if (!found || state.type !== type) return; // a newer search, or another type chosen meanwhile
  form.dataset.state = "done";
  const ids = [...new Set(found.items.map((item) => item.entity_id))];
  if (ids.length) {
    if (ids.length > 1) showMessage("entity", `${ids.length} ${type}s are labelled "${value}": showing ${ids[0]} (also ${ids.slice(1).join(", ")}).`);
    else clearMessage("entity");
    selectEntity(ids[0]);
    return;
  }
  const where = found.searched === "all" ? " among the 100 highest of each ranking (this API has no label search)" : "";
  if (ENTITY_ID.test(value)) {
    // no label: perhaps an id of another form (a slug); its totals say whether anything has it
    if (where) showMessage("entity", `No ${type} labelled "${value}"${where}: shown as an id.`);
    else clearMessage("entity");
    selectEntity(value);
    return;
  }
  showMessage("entity", `No ${type} labelled "${value}"${where}.`);
}

async function loadSeries() {
  const figure = $("series");
  if (!state.entity) {
    figure.dataset.state = "empty";
    $("series-chart").replaceChildren();
    $("series-caption").textContent = "";
    lastSeries = null;
    return;
  }
  figure.dataset.state = "loading";
  figure.setAttribute("aria-busy", "true");
  const request = { entity: state.entity, from: state.from, to: state.to };
  const query = new URLSearchParams({ bucket: "day", from: request.from, to: request.to });
  const result = await load("series", api(`${kindPath()}/${seg(request.entity)}/series?${query}`));
  if (!result) return;
  figure.removeAttribute("aria-busy");
  if (result.error) {
    showChartError("series", result.error.message);
    lastSeries = null;
    return;
  }
  $("series-error").hidden = true;
  lastSeries = { ...request, points: Array.isArray(result.body.points) ? result.body.points : [] };
  drawSeries();
  figure.dataset.state = "ready";
}

function showChartError(part, text) {
  const line = $(`${part}-error`);
  line.textContent = text;
  line.hidden = false;
  const box = $(part);
  box.dataset.state = "error";
  box.removeAttribute("aria-busy");
  $(`${part}-chart`).replaceChildren();
}

function drawSeries() {
  if (!lastSeries) return;
  const { entity, from, to, points } = lastSeries;
  const counter = charted(state.counter);
  drawChart($("series-chart"), {
    title: `${LABELS[counter]} per day of ${entity}, ${from} to ${to}`,
    periods: points.map((point) => point.period),
    lines: [{ name: "current", values: points.map((point) => valueOf(point, counter)) }],
    counter,
  });
  const figure = aggregate(points, counter);
  $("series-caption").textContent =
    (counter === "ratings_avg"
      ? `Average rating in the period: ${formatNumber(figure, average)}`
      : `${formatNumber(figure)} ${LABELS[counter]} in the period`) + stateNote();
}

/** Ranked by a state figure, the charts show the events it comes from: the site's tables keep no history. */
function stateNote() {
  return isState(state.counter)
    ? ` (${LABELS[charted(state.counter)]} events: the site's tables keep no history of ${LABELS[state.counter]})`
    : "";
}

// --- the site-wide trend, beside the previous period ---------------------------------------------------------

async function loadTrend() {
  const box = $("trend");
  box.dataset.state = "loading";
  box.setAttribute("aria-busy", "true");
  $("trend-caption").textContent = `${LABELS[charted(state.counter)]} of every ${state.type}, per day`;
  const previous = previousRange(state.from, state.to);
  const url = (range) => api(`${kindPath()}/series?${new URLSearchParams({ bucket: "day", ...range })}`);
  running.get("trend-previous")?.abort();
  const [now, before] = await Promise.all([
    load("trend", url({ from: state.from, to: state.to })),
    load("trend-previous", url(previous)),
  ]);
  if (!now || !before) return;
  box.removeAttribute("aria-busy");
  const error = now.error ?? before.error;
  if (error) {
    lastTrend = null;
    showChartError("trend", `Site-wide trend: ${error.message}`);
    for (const id of ["trend-current", "trend-previous", "trend-change"]) setUnknown($(id));
    return;
  }
  $("trend-error").hidden = true;
  lastTrend = {
    current: Array.isArray(now.body.points) ? now.body.points : [],
    previous: Array.isArray(before.body.points) ? before.body.points : [],
    range: { from: state.from, to: state.to },
    previousRange: previous,
  };
  drawTrend();
  box.dataset.state = "ready";
}

function drawTrend() {
  if (!lastTrend) return;
  const counter = charted(state.counter);
  const { current, previous, range, previousRange: before } = lastTrend;
  $("trend-caption").textContent = `${LABELS[counter]} of every ${state.type}, per day${stateNote()}`;
  $("trend-legend-current").textContent = `this period, ${range.from} to ${range.to}`;
  $("trend-legend-previous").textContent = `previous period, ${before.from} to ${before.to}`;
  const format = formatOf(counter);
  const now = aggregate(current, counter);
  const then = aggregate(previous, counter);
  const delta = change(now, then);
  const show = (id, value, text) => {
    const cell = $(id);
    cell.textContent = text;
    cell.dataset.value = typeof value === "number" ? String(value) : "";
    cell.classList.remove("unknown");
  };
  show("trend-current", now, formatNumber(now, format));
  show("trend-previous", then, formatNumber(then, format));
  show(
    "trend-change",
    delta,
    delta === null ? (then === 0 && now > 0 ? "new" : "—") : `${percent.format(delta)} %`,
  );
  const changeCell = $("trend-change");
  changeCell.classList.toggle("up", delta !== null && delta > 0);
  changeCell.classList.toggle("down", delta !== null && delta < 0);
  drawChart($("trend-chart"), {
    title: `Site-wide ${LABELS[counter]} per day, ${range.from} to ${range.to}, beside ${before.from} to ${before.to}`,
    periods: current.map((point) => point.period),
    lines: [
      { name: "previous", values: previous.map((point) => valueOf(point, counter)), periods: previous.map((p) => p.period) },
      { name: "current", values: current.map((point) => valueOf(point, counter)) },
    ],
    counter,
  });
}

// --- charts: inline SVG lines, one per period, aligned day by day -----------------------------------------

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

/** Round tick values from 0 to at least `max` (whole steps for counts, halves for ratings). */
export function niceTicks(max, count = 4, whole = true) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normal = raw / magnitude;
  let step = (normal <= 1 ? 1 : normal <= 2 ? 2 : normal <= 5 ? 5 : 10) * magnitude;
  if (whole) step = Math.max(1, step);
  const ticks = [];
  for (let index = 0; ; index += 1) {
    const value = Number((index * step).toFixed(6));
    ticks.push(value);
    if (value >= max) break;
  }
  return ticks;
}

function drawChart(host, { title, periods, lines, counter }) {
  const format = formatOf(counter);
  const all = lines.flatMap((line) => line.values).filter((value) => typeof value === "number");
  // a rating is 1 to 5: its axis is the scale itself, whatever the values (one day's average included)
  const rated = AVERAGES.includes(counter);
  const ticks = rated ? [1, 2, 3, 4, 5] : niceTicks(Math.max(0, ...all), 4, true);
  const bottom = ticks[0];
  const top = ticks[ticks.length - 1];
  const tickText = ticks.map((tick) => formatNumber(tick, integer));
  const width = Math.max(240, Math.floor(host.clientWidth || 600));
  const height = width < 480 ? 200 : 240;
  const charWidth = 7;
  const margin = { top: 10, right: 12, bottom: 28, left: 12 + charWidth * Math.max(...tickText.map((t) => t.length)) };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const step = periods.length > 1 ? plotWidth / (periods.length - 1) : 0;
  const x = (index) => margin.left + (periods.length > 1 ? step * index : plotWidth / 2);
  const y = (value) => margin.top + plotHeight - ((value - bottom) / (top - bottom)) * plotHeight;

  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": title,
    class: "chart",
    "data-counter": counter,
    "data-points": periods.length,
    "data-ticks": ticks.join(","),
  });
  chart.append(svg("title", {}, title));
  ticks.forEach((tick, index) => {
    const at = y(tick);
    chart.append(
      svg("line", { x1: margin.left, x2: width - margin.right, y1: at, y2: at, class: index ? "grid" : "axis" }),
      svg("text", { x: margin.left - 6, y: at + 4, "text-anchor": "end", class: "y-label" }, tickText[index]),
    );
  });
  // period labels, thinned so that none overlaps the one before or leaves the chart
  const labelWidth = charWidth * 10;
  let clear = 0;
  periods.forEach((period, index) => {
    const at = x(index);
    let anchor = "middle";
    let left = at - labelWidth / 2;
    if (left < 0) [anchor, left] = ["start", at];
    if (left + labelWidth > width) [anchor, left] = ["end", at - labelWidth];
    if (left < clear) return;
    clear = left + labelWidth + 12;
    chart.append(svg("text", { x: at, y: height - 8, "text-anchor": anchor, class: "x-label" }, period));
  });

  for (const line of lines) {
    const group = svg("g", { class: `line ${line.name}`, "data-values": line.values.map((v) => v ?? "").join(",") });
    let path = "";
    let pen = false;
    line.values.forEach((value, index) => {
      if (typeof value !== "number") {
        pen = false; // a day without ratings has no average: a gap, not a zero
        return;
      }
      path += `${pen ? "L" : "M"}${x(index).toFixed(1)} ${y(value).toFixed(1)}`;
      pen = true;
    });
    if (line.name === "current" && path) {
      const first = line.values.findIndex((value) => typeof value === "number");
      const last = line.values.length - 1 - [...line.values].reverse().findIndex((value) => typeof value === "number");
      if (counter !== "ratings_avg") {
        group.append(
          svg("path", {
            d: `${path}L${x(last).toFixed(1)} ${y(0).toFixed(1)}L${x(first).toFixed(1)} ${y(0).toFixed(1)}Z`,
            class: "area",
          }),
        );
      }
    }
    group.append(svg("path", { d: path, class: "stroke" }));
    if (periods.length <= 62) {
      line.values.forEach((value, index) => {
        if (typeof value !== "number") return;
        const dot = svg("circle", { cx: x(index).toFixed(1), cy: y(value).toFixed(1), r: 2.5, class: "dot" });
        const period = line.periods?.[index] ?? periods[index];
        dot.append(svg("title", {}, `${period}: ${formatNumber(value, format)} ${LABELS[counter]}`));
        group.append(dot);
      });
    }
    chart.append(group);
  }
  host.replaceChildren(chart);
}

// --- the pipeline's status: a part that did not run is unknown, never 0 -------------------------------------

let statusTimer = null;

function setUnknown(cell, why = "unknown") {
  cell.textContent = why;
  cell.dataset.value = "";
  cell.classList.add("unknown");
  cell.classList.remove("up", "down", "na");
}

function setFigure(cell, value, format = integer) {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    // present but empty (nothing waiting has no age): none, which is not an error
    cell.textContent = "—";
    cell.dataset.value = "";
    cell.classList.remove("unknown", "na");
    return;
  }
  cell.textContent = formatNumber(value, format);
  cell.dataset.value = String(value);
  cell.classList.remove("unknown", "na");
}

async function pollStatus() {
  clearTimeout(statusTimer);
  const result = await load("status", api("/status"));
  if (result) {
    if (result.error) {
      showMessage("status", `Pipeline status: ${result.error.message}`);
      renderStatus(null, result.error.message);
    } else {
      clearMessage("status");
      renderStatus(result.body, null);
    }
  }
  if (token !== undefined) statusTimer = setTimeout(pollStatus, STATUS_EVERY_MS);
}

/** "90 s", "12 min", "5 h", "3 d": how long ago, in the unit a reader takes in at a glance. */
export function elapsed(seconds) {
  if (seconds < 90) return `${formatNumber(seconds)} s`;
  if (seconds < 90 * 60) return `${formatNumber(Math.round(seconds / 60))} min`;
  if (seconds < 36 * 3600) return `${formatNumber(Math.round(seconds / 3600))} h`;
  return `${formatNumber(Math.round(seconds / 86400))} d`;
}

function ago(rfc3339) {
  const moment = new Date(rfc3339);
  if (typeof rfc3339 !== "string" || Number.isNaN(moment.getTime())) return null;
  const seconds = Math.max(0, Math.round((Date.now() - moment.getTime()) / 1000));
  return `${moment.toISOString().slice(0, 19).replace("T", " ")} UTC (${elapsed(seconds)} ago)`;
}

/** A figure that does not apply, or not yet: said in words, muted, never an error and never 0. */
function setWaiting(cell, why) {
  cell.textContent = why;
  cell.dataset.value = "";
  cell.classList.remove("unknown");
  cell.classList.add("na");
}

function setMoment(cell, rfc3339) {
  const text = ago(rfc3339);
  if (!text) return setUnknown(cell, "unknown");
  cell.textContent = text;
  cell.dataset.value = rfc3339;
  cell.classList.remove("unknown", "na");
}

/** "1,000 checked, 0 mismatches, 2 movies without a row": the last parity report in a line. */
export function paritySummary(last) {
  const count = (value) => (Array.isArray(value) ? value.length : typeof value === "number" ? value : null);
  const parts = [];
  const checked = count(last?.checked);
  const mismatched = count(last?.mismatched ?? last?.mismatches);
  const missing = count(last?.missing_rows);
  const outside = count(last?.outside);
  if (checked !== null) parts.push(`${formatNumber(checked)} checked`);
  if (mismatched !== null) parts.push(`${formatNumber(mismatched)} ${mismatched === 1 ? "mismatch" : "mismatches"}`);
  if (missing) parts.push(`${formatNumber(missing)} without a row in the site's table`);
  if (outside) parts.push(`${formatNumber(outside)} outside the tolerance`);
  const by = { anl: "anl parity", watchdog: "the watchdog" }[last?.source];
  if (by || last?.mode === "shadow") parts.push(`${last?.mode === "shadow" ? "shadow run" : "run"}${by ? ` by ${by}` : ""}`);
  if (typeof last?.summary === "string" && last.summary) parts.push(last.summary);
  const verdict = last?.ok === true ? "clean" : last?.ok === false ? "not clean" : null;
  return [verdict, parts.join(", ")].filter(Boolean).join(": ");
}

function renderParity(parity, failed) {
  const streak = $("status-parity-days");
  const report = $("status-parity-last");
  const box = streak.parentElement;
  box.classList.remove("bad", "good");
  if (!parity) {
    if (failed) {
      setUnknown(streak);
      setUnknown(report);
    } else {
      // no report recorded yet: the watchdog runs one each UTC day, `anl parity` any time
      setWaiting(streak, "no report yet");
      setWaiting(report, "no parity report recorded yet (the watchdog runs one each UTC day)");
    }
    return;
  }
  const days = parity.clean_days;
  const last = parity.last && typeof parity.last === "object" ? parity.last : null;
  if (!last) {
    // nothing recorded yet: a streak of 0 that no report made
    setWaiting(streak, "no report yet");
    setWaiting(report, "no parity report recorded yet (the watchdog runs one each UTC day)");
    return;
  }
  if (typeof days === "number" && Number.isFinite(days)) {
    streak.textContent = `${formatNumber(days)} ${days === 1 ? "day" : "days"}`;
    streak.dataset.value = String(days);
    streak.classList.remove("unknown", "na");
    box.classList.toggle("good", days >= PARITY_GATE_DAYS);
  } else setUnknown(streak);
  const when = ago(last.at ?? last.time);
  report.textContent = [when ?? "time unknown", paritySummary(last)].filter(Boolean).join(" — ");
  report.dataset.value = String(last.at ?? last.time ?? "");
  report.classList.remove("unknown", "na");
  box.classList.toggle("bad", last.ok === false);
}

function renderStatus(status, failure) {
  const section = $("status");
  const part = (name) => (status && status[name] && typeof status[name] === "object" ? status[name] : null);
  const lag = part("lag");
  const spool = part("spool");
  const deadLetter = part("dead_letter");
  const watchdog = part("watchdog");
  const parity = part("parity");

  const errors = [];
  if (failure) errors.push({ check: "status", message: failure });
  for (const error of Array.isArray(status?.errors) ? status.errors : []) {
    errors.push({ check: String(error?.check ?? "status"), message: String(error?.message ?? error) });
  }
  const named = new Set(errors.map((error) => error.check));
  // A part the API answers as null without naming an error was never recorded or does not exist here:
  // the dead-letter queue of a spool that has none, the watchdog before its first run, parity before its
  // first report. Only a part that failed (or a status that could not be read) is unknown.
  const failed = (name) => !status || named.has(name);

  const fill = (id, owner, field, format) => (owner ? setFigure($(id), owner[field], format) : setUnknown($(id)));
  fill("status-dirty", lag, "dirty");
  fill("status-in-flight", lag, "in_flight");
  fill("status-oldest-dirty", lag, "oldest_dirty_s", decimal);
  fill("status-oldest-in-flight", lag, "oldest_in_flight_s", decimal);
  fill("status-last-flush", lag, "last_flush_age_s", decimal);
  fill("status-spool", spool, "pending");
  if (deadLetter || failed("dead_letter")) fill("status-dead-letter", deadLetter, "pending");
  else {
    const kind = typeof spool?.kind === "string" ? spool.kind : "file";
    setWaiting($("status-dead-letter"), kind === "file" ? "n/a (file spool)" : `n/a (no dead-letter queue)`);
  }
  const watchdogCells = ["status-checked", "status-mismatches", "status-watchdog-errors"];
  if (watchdog || failed("watchdog")) {
    fill("status-checked", watchdog, "checked");
    fill("status-mismatches", watchdog, "mismatches");
    fill("status-watchdog-errors", watchdog, "errors");
    const at = $("status-watchdog-at");
    if (!watchdog) setUnknown(at, "unknown: no check read");
    else setMoment(at, watchdog.at);
  } else {
    for (const id of watchdogCells) setWaiting($(id), "—");
    setWaiting($("status-watchdog-at"), "waiting for the first run (every minute)");
  }
  renderParity(parity, failed("parity"));

  for (const [name, owner] of [["redis", lag], ["spool", spool]]) {
    if (status && !owner && !named.has(name)) errors.push({ check: name, message: "not reported (the check did not run)" });
  }
  const list = $("status-errors");
  list.replaceChildren(
    ...errors.map((error) => {
      const item = document.createElement("li");
      item.dataset.check = error.check;
      const name = document.createElement("strong");
      name.textContent = `${error.check}: `;
      item.append(name, error.message);
      return item;
    }),
  );
  list.hidden = errors.length === 0;
  // what needs an operator's look: letters left dead, counts that disagree, checks that failed
  const flagged = [
    ["status-dead-letter", deadLetter?.pending > 0],
    ["status-mismatches", watchdog?.mismatches > 0],
    ["status-watchdog-errors", watchdog?.errors > 0],
    ["status-parity-days", parity?.last?.ok === false],
  ];
  for (const [id, bad] of flagged) $(id).parentElement.classList.toggle("bad", Boolean(bad));
  const trouble = flagged.some(([, bad]) => bad);
  section.classList.toggle("failed", errors.length > 0);
  section.classList.toggle("warn", errors.length === 0 && Boolean(trouble));
  section.dataset.state = errors.length ? "error" : "ready";
  $("status-at").textContent = status ? `(read ${new Date().toISOString().slice(11, 19)} UTC)` : "";
}

// --- wiring -------------------------------------------------------------------------------------------

function reloadData() {
  const problem = rangeProblem(state.from, state.to);
  writeUrl();
  if (problem) {
    showMessage("range", problem);
    for (const part of ["top", "totals", "series", "trend", "trend-previous"]) running.get(part)?.abort();
    return;
  }
  clearMessage("range");
  loadTop();
  loadTrend();
  loadTotals();
  loadSeries();
}

function wire() {
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    state.domain = $("domain").value;
    state.limit = $("limit").value.trim();
    state.min_ratings = $("min-ratings").value.trim();
    reloadData();
    pollStatus();
  });
  $("domain").addEventListener("change", () => {
    state.domain = $("domain").value; // one of the configured domains: the list is the control
    clearMessage("domain");
    state.entity = "";
    $("entity-id").value = "";
    reloadData();
  });
  $("entity-type").addEventListener("change", () => {
    state.type = $("entity-type").value;
    if (isState(state.counter) && state.type !== "movie") state.counter = "views";
    syncControls();
    state.entity = ""; // an id names an entity of one type
    $("entity-id").value = "";
    reloadData();
  });
  $("period").addEventListener("change", () => {
    state.period = $("period").value;
    if (state.period !== "custom") Object.assign(state, presetRange(state.period));
    syncControls();
    reloadData();
  });
  const onRange = () => {
    state.period = "custom";
    state.from = $("from").value;
    state.to = $("to").value;
    $("period").value = "custom";
    reloadData();
  };
  $("from").addEventListener("change", onRange);
  $("to").addEventListener("change", onRange);
  $("counter").addEventListener("change", () => {
    const before = state.counter;
    state.counter = $("counter").value;
    $("min-ratings-field").hidden = !AVERAGES.includes(state.counter);
    writeUrl();
    if (rangeProblem(state.from, state.to)) return;
    loadTop();
    if (lastSeries) drawSeries();
    if (lastTrend) drawTrend();
    if (before !== state.counter) {
      for (const item of $("totals").querySelectorAll(".figure")) {
        item.classList.toggle("active", item.querySelector("dd")?.dataset.field === state.counter);
      }
    }
  });
  for (const [id, field] of [["limit", "limit"], ["min-ratings", "min_ratings"]]) {
    $(id).addEventListener("change", () => {
      state[field] = $(id).value.trim();
      writeUrl();
      if (!rangeProblem(state.from, state.to)) loadTop();
    });
  }
  $("top-table").tBodies[0].addEventListener("click", (event) => {
    if (event.target.closest("a")) return; // the link to the site opens the site
    const row = event.target.closest("tr[data-entity-id]");
    if (row) selectEntity(row.dataset.entityId);
  });
  $("entity-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("entity-id").value.trim();
    if (!value) {
      showMessage("entity", `Id or label: type a ${state.type}'s id or its label (a movie's code such as ABP-123)`);
      return;
    }
    if (rangeProblem(state.from, state.to)) return;
    lookUp(value);
  });
  $("sign-in").addEventListener("click", () => {
    clearMessage("auth");
    storage.drop(KEY.retried);
    startSignIn().catch((error) => showMessage("auth", error.message));
  });
  $("sign-out").addEventListener("click", () => {
    signOut();
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      drawSeries();
      drawTrend();
    }, 150);
  });
}

// Nothing the page does may end as an uncaught exception: show it instead.
window.addEventListener("error", (event) => showMessage("page", `Page error: ${event.message}`));
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  showMessage("page", `Page error: ${event.reason?.message ?? event.reason}`);
});

async function loadConfig() {
  try {
    const body = await fetchJson(CONFIG_URL, undefined, false);
    return {
      issuer: typeof body.issuer === "string" && body.issuer ? body.issuer : null,
      client_id: typeof body.client_id === "string" ? body.client_id : null,
      api: typeof body.api === "string" && body.api ? body.api : DEFAULT_CONFIG.api,
      movie_url: typeof body.movie_url === "string" && body.movie_url ? body.movie_url : null,
      domains:
        Array.isArray(body.domains) && body.domains.length && body.domains.every((name) => DOMAIN.test(String(name)))
          ? body.domains.map(String)
          : null,
    };
  } catch (error) {
    showMessage("config", `Configuration (${CONFIG_URL}): ${error.message}; calling the API without signing in.`);
    return { ...DEFAULT_CONFIG };
  }
}

async function start() {
  const callback = new URLSearchParams(window.location.search);
  const pending = storage.get(KEY.pending);
  // back from the provider: the dashboard's own query is the one saved before leaving
  readUrl(callback.has("state") && pending ? pending.back : window.location.search);
  syncControls();
  wire();
  config = await loadConfig();
  const wrong = checkDomain(state.domain, config.domains);
  if (wrong) {
    // never asked of the API: the address may come from anyone's link
    const fallback = config.domains?.[0] ?? DEFAULT_DOMAIN;
    showMessage("domain", `${wrong}: showing ${fallback} instead.`);
    state.domain = fallback;
  }
  syncControls();
  token = await signIn();
  document.documentElement.dataset.ready = "true";
  if (token === undefined) {
    // not signed in: nothing to ask the API, and no empty figures that could pass for zeros
    document.body.classList.add("signed-out");
    if (!messages.has("auth") && $("session").dataset.state === "signed-out") {
      showMessage("auth", "Signed out. Sign in to see the analytics.");
    }
    return;
  }
  writeUrl();
  reloadData();
  pollStatus();
}

start();
