// Admin dashboard of the analytics pipeline: top-N, an entity's totals and series, the pipeline's lag.
// Plain ES module, no dependencies: everything it draws (the chart included) is built here as DOM/SVG.

const API = "/api/v1/analytics";
const STATUS_URL = "/dashboard/status.json";
const STATUS_EVERY_MS = 5000;
const COUNTERS = ["views", "downloads", "favorites", "watchlists", "ratings_count", "ratings_sum"];
const TYPES = ["movie", "actor", "tag", "provider"];
const BUCKETS = ["day", "week", "month", "year"];
const ENTITY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const LABELS = {
  views: "views",
  downloads: "downloads",
  favorites: "favorites",
  watchlists: "watchlists",
  ratings_count: "ratings count",
  ratings_sum: "ratings sum",
  ratings_avg: "ratings average",
};
const SVG_NS = "http://www.w3.org/2000/svg";

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const average = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** A number with thousands separators, or "—" when there is none. */
export function formatNumber(value, format = integer) {
  return typeof value === "number" && Number.isFinite(value) ? format.format(value) : "—";
}

const $ = (id) => document.getElementById(id);

// --- state, read from and written back to the URL (deep links) --------------------------------------

const state = {
  domain: "jav",
  type: "movie",
  counter: "views",
  limit: "10",
  entity: "",
  bucket: "day",
  from: "",
  to: "",
};
let lastSeries = null; // {entity, bucket, from, to, points} of the chart on screen
let lastTop = [];

function readUrl() {
  const params = new URLSearchParams(window.location.search);
  const pick = (name, allowed) => {
    const value = params.get(name);
    return value !== null && (!allowed || allowed.includes(value)) ? value : null;
  };
  state.domain = pick("domain") ?? state.domain;
  state.type = pick("type", TYPES) ?? state.type;
  state.counter = pick("counter", COUNTERS) ?? state.counter;
  state.limit = pick("limit") ?? state.limit;
  state.entity = pick("entity") ?? "";
  state.bucket = pick("bucket", BUCKETS) ?? state.bucket;
  const range = defaultRange(state.bucket);
  state.from = pick("from") ?? range.from;
  state.to = pick("to") ?? range.to;
}

function writeUrl() {
  const params = new URLSearchParams();
  for (const name of ["domain", "type", "counter", "limit", "entity", "bucket", "from", "to"]) {
    if (state[name] !== "") params.set(name, state[name]);
  }
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

function syncControls() {
  $("domain").value = state.domain;
  $("entity-type").value = state.type;
  $("counter").value = state.counter;
  $("limit").value = state.limit;
  $("entity-id").value = state.entity;
  $("bucket").value = state.bucket;
  $("from").value = DAY.test(state.from) ? state.from : "";
  $("to").value = DAY.test(state.to) ? state.to : "";
}

// --- dates (UTC, as the rollups' buckets) -------------------------------------------------------------

function utcToday() {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
}

const isoDay = (date) => date.toISOString().slice(0, 10);
const addDays = (date, days) => new Date(date.getTime() + days * 86400000);

/** The default range of a bucket: 30 days, 26 ISO weeks, 12 months or 5 years, ending today. */
export function defaultRange(bucket, today = utcToday()) {
  const year = today.getUTCFullYear();
  const month = today.getUTCMonth();
  let from;
  if (bucket === "week") {
    const monday = addDays(today, -((today.getUTCDay() + 6) % 7));
    from = addDays(monday, -25 * 7);
  } else if (bucket === "month") {
    from = new Date(Date.UTC(year, month - 11, 1));
  } else if (bucket === "year") {
    from = new Date(Date.UTC(year - 4, 0, 1));
  } else {
    from = addDays(today, -29);
  }
  return { from: isoDay(from), to: isoDay(today) };
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
  const status = body && typeof body.status === "string" ? ` (${body.status})` : "";
  return `HTTP ${response.status} ${response.statusText || ""}`.trim() + status;
}

async function fetchJson(url, signal) {
  let response;
  let text;
  try {
    response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" }, signal });
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
  if (!response.ok) throw new ApiError(describe(body, response), response.status);
  if (body === null || typeof body !== "object") throw new ApiError("the answer is not a JSON object", response.status);
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

const seg = encodeURIComponent;

// --- top-N -----------------------------------------------------------------------------------------------

async function loadTop() {
  const table = $("top-table");
  table.dataset.state = "loading";
  table.setAttribute("aria-busy", "true");
  const shown = /^\d+$/.test(state.limit) && Number(state.limit) >= 1 ? `${state.limit} ` : "";
  $("top-caption").textContent = `${shown}${state.type} by ${LABELS[state.counter]}`;
  const query = new URLSearchParams({ counter: state.counter, limit: state.limit });
  const result = await load("top", `${API}/${seg(state.domain)}/${seg(state.type)}/top?${query}`);
  if (!result) return;
  table.removeAttribute("aria-busy");
  if (result.error) {
    table.dataset.state = "error";
    showMessage("top", `Top ${state.type}: ${result.error.message}`);
    renderTop([]);
    return;
  }
  clearMessage("top");
  lastTop = Array.isArray(result.body.items) ? result.body.items : [];
  renderTop(lastTop);
  table.dataset.state = "ready";
  if (!state.entity && lastTop.length) selectEntity(lastTop[0].entity_id);
}

function renderTop(items) {
  const table = $("top-table");
  table.dataset.count = String(items.length);
  for (const th of table.querySelectorAll("thead th[data-counter]")) {
    th.classList.toggle("active", th.dataset.counter === state.counter);
    if (th.dataset.counter === state.counter) th.setAttribute("aria-sort", "descending");
    else th.removeAttribute("aria-sort");
  }
  const rows = items.map((item, index) => {
    const row = document.createElement("tr");
    row.dataset.entityId = item.entity_id;
    row.dataset.rank = String(index + 1);
    const rank = document.createElement("td");
    rank.className = "num rank";
    rank.textContent = String(index + 1);
    const id = document.createElement("td");
    id.className = "entity";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = item.entity_id;
    button.title = `Show ${item.entity_id}`;
    id.append(button);
    row.append(rank, id);
    for (const counter of COUNTERS) {
      const cell = document.createElement("td");
      cell.className = counter === state.counter ? "num active" : "num";
      cell.dataset.counter = counter;
      cell.dataset.value = String(item[counter] ?? "");
      cell.textContent = formatNumber(item[counter]);
      row.append(cell);
    }
    return row;
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 2 + COUNTERS.length;
    cell.className = "empty";
    cell.textContent = table.dataset.state === "error" ? "Could not load." : `Nothing counted for ${state.type} yet.`;
    row.append(cell);
    rows.push(row);
  }
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

// --- one entity: totals and series -------------------------------------------------------------------

function selectEntity(entityId) {
  state.entity = entityId;
  $("entity-id").value = entityId;
  writeUrl();
  markSelected();
  loadTotals();
  loadSeries();
}

async function loadTotals() {
  const box = $("totals");
  if (!state.entity) {
    box.dataset.state = "empty";
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.textContent = "No entity selected.";
    box.replaceChildren(hint);
    return;
  }
  box.dataset.state = "loading";
  box.setAttribute("aria-busy", "true");
  const entity = state.entity;
  const result = await load("totals", `${API}/${seg(state.domain)}/${seg(state.type)}/${seg(entity)}/totals`);
  if (!result) return;
  box.removeAttribute("aria-busy");
  if (result.error) {
    box.dataset.state = "error";
    showMessage("totals", `Totals of ${entity}: ${result.error.message}`);
    return;
  }
  clearMessage("totals");
  renderTotals(entity, result.body);
  box.dataset.state = "ready";
}

function renderTotals(entity, totals) {
  const box = $("totals");
  box.dataset.entity = entity;
  const name = document.createElement("p");
  name.className = "entity-name";
  const code = document.createElement("code");
  code.textContent = entity;
  name.append(code, ` · ${state.type} · ${state.domain}`);
  const list = document.createElement("dl");
  list.className = "figures";
  for (const field of [...COUNTERS, "ratings_avg"]) {
    const item = document.createElement("div");
    item.className = field === state.counter ? "figure active" : "figure";
    const term = document.createElement("dt");
    term.textContent = LABELS[field];
    const value = document.createElement("dd");
    value.dataset.testid = `totals-${field}`;
    value.dataset.field = field;
    value.dataset.value = totals[field] === null || totals[field] === undefined ? "" : String(totals[field]);
    value.textContent = formatNumber(totals[field], field === "ratings_avg" ? average : integer);
    item.append(term, value);
    list.append(item);
  }
  box.replaceChildren(name, list);
}

function seriesProblem() {
  if (!DAY.test(state.from)) return "from: choose a date";
  if (!DAY.test(state.to)) return "to: choose a date";
  return null;
}

async function loadSeries() {
  const figure = $("series");
  const errorLine = $("series-error");
  if (!state.entity) {
    figure.dataset.state = "empty";
    $("series-chart").replaceChildren();
    $("series-caption").textContent = "";
    lastSeries = null;
    return;
  }
  const problem = seriesProblem();
  if (problem) {
    running.get("series")?.abort();
    showSeriesError(problem);
    return;
  }
  figure.dataset.state = "loading";
  figure.setAttribute("aria-busy", "true");
  const request = { entity: state.entity, bucket: state.bucket, from: state.from, to: state.to };
  const query = new URLSearchParams({ bucket: request.bucket, from: request.from, to: request.to });
  const url = `${API}/${seg(state.domain)}/${seg(state.type)}/${seg(request.entity)}/series?${query}`;
  const result = await load("series", url);
  if (!result) return;
  figure.removeAttribute("aria-busy");
  if (result.error) {
    showSeriesError(result.error.message);
    return;
  }
  errorLine.hidden = true;
  errorLine.textContent = "";
  lastSeries = { ...request, points: Array.isArray(result.body.points) ? result.body.points : [] };
  drawSeries();
  figure.dataset.state = "ready";
}

function showSeriesError(text) {
  const errorLine = $("series-error");
  errorLine.textContent = text;
  errorLine.hidden = false;
  $("series").dataset.state = "error";
  $("series").removeAttribute("aria-busy");
  $("series-chart").replaceChildren();
  $("series-caption").textContent = "";
  lastSeries = null;
}

// --- the chart: an inline SVG bar chart ---------------------------------------------------------------

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

/** Round tick values from 0 to at least `max` (integers: counters are counts). */
export function niceTicks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normal = raw / magnitude;
  const step = Math.max(1, (normal <= 1 ? 1 : normal <= 2 ? 2 : normal <= 5 ? 5 : 10) * magnitude);
  const ticks = [];
  for (let value = 0; value < max + step; value += step) {
    ticks.push(value);
    if (value >= max) break;
  }
  return ticks;
}

function drawSeries() {
  const host = $("series-chart");
  if (!lastSeries) return;
  const { entity, bucket, from, to, points } = lastSeries;
  const counter = state.counter;
  const values = points.map((point) => Number(point[counter]) || 0);
  const ticks = niceTicks(Math.max(0, ...values));
  const top = ticks[ticks.length - 1];
  const tickText = ticks.map((tick) => formatNumber(tick));

  const width = Math.max(320, Math.floor(host.clientWidth || 640));
  const height = 280;
  const charWidth = 7;
  const margin = {
    top: 14,
    right: 14,
    bottom: 52,
    left: 30 + charWidth * Math.max(...tickText.map((text) => text.length)),
  };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const band = plotWidth / Math.max(1, points.length);
  const barWidth = Math.max(1, Math.min(48, band * 0.72));
  const y = (value) => margin.top + plotHeight - (value / top) * plotHeight;
  const title = `${LABELS[counter]} per ${bucket} of ${entity}, ${from} to ${to}`;

  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-labelledby": "series-svg-title",
    class: "chart",
    "data-bucket": bucket,
    "data-counter": counter,
    "data-points": points.length,
  });
  chart.append(svg("title", { id: "series-svg-title" }, title));

  const grid = svg("g", { class: "y-axis" });
  ticks.forEach((tick, index) => {
    const at = y(tick);
    grid.append(
      svg("line", { x1: margin.left, x2: width - margin.right, y1: at, y2: at, class: index ? "grid" : "axis" }),
      svg("text", { x: margin.left - 6, y: at + 4, "text-anchor": "end", class: "y-label" }, tickText[index]),
    );
  });
  grid.append(
    svg(
      "text",
      {
        x: 0,
        y: 0,
        transform: `translate(12 ${margin.top + plotHeight / 2}) rotate(-90)`,
        "text-anchor": "middle",
        class: "axis-title",
      },
      LABELS[counter],
    ),
  );
  chart.append(grid);

  const bars = svg("g", { class: "bars" });
  points.forEach((point, index) => {
    const value = values[index];
    const x = margin.left + band * index + (band - barWidth) / 2;
    const rect = svg("rect", {
      x: x.toFixed(2),
      y: (value > 0 ? Math.min(y(value), margin.top + plotHeight - 1.5) : y(value)).toFixed(2),
      width: barWidth.toFixed(2),
      height: (value > 0 ? Math.max(1.5, margin.top + plotHeight - y(value)) : 0).toFixed(2),
      class: "bar",
      "data-period": point.period,
      "data-value": value,
    });
    rect.append(svg("title", {}, `${point.period}: ${formatNumber(value)} ${LABELS[counter]}`));
    bars.append(rect);
  });
  chart.append(bars);

  const labelWidth = charWidth * Math.max(4, ...points.map((point) => String(point.period).length)) + 12;
  const every = Math.max(1, Math.ceil(points.length / Math.max(1, Math.floor(plotWidth / labelWidth))));
  const xAxis = svg("g", { class: "x-axis" });
  points.forEach((point, index) => {
    if (index % every !== 0) return;
    const center = margin.left + band * (index + 0.5);
    xAxis.append(
      svg("line", { x1: center, x2: center, y1: margin.top + plotHeight, y2: margin.top + plotHeight + 4, class: "axis" }),
      svg(
        "text",
        { x: center, y: margin.top + plotHeight + 18, "text-anchor": "middle", class: "x-label" },
        point.period,
      ),
    );
  });
  xAxis.append(
    svg("text", { x: margin.left + plotWidth / 2, y: height - 8, "text-anchor": "middle", class: "axis-title" }, bucket),
  );
  chart.append(xAxis);

  host.replaceChildren(chart);
  const total = values.reduce((sum, value) => sum + value, 0);
  $("series-caption").textContent =
    `${points.length} ${bucket}${points.length === 1 ? "" : "s"}, ` + `${formatNumber(total)} ${LABELS[counter]} in all`;
}

// --- lag ---------------------------------------------------------------------------------------------------

let statusTimer = null;

async function pollStatus() {
  clearTimeout(statusTimer);
  const result = await load("status", STATUS_URL);
  if (result) {
    if (result.error) {
      $("lag").dataset.state = "error";
      showMessage("status", `Pipeline status: ${result.error.message}`);
    } else {
      clearMessage("status");
      renderLag(result.body);
    }
  }
  statusTimer = setTimeout(pollStatus, STATUS_EVERY_MS);
}

function formatTime(epochSeconds) {
  if (typeof epochSeconds !== "number") return "—";
  const moment = new Date(epochSeconds * 1000);
  const ago = Math.max(0, Math.round(Date.now() / 1000 - epochSeconds));
  return `${moment.toISOString().slice(0, 19).replace("T", " ")} UTC (${formatNumber(ago)} s ago)`;
}

function renderLag(status) {
  const report = status.watchdog ?? status.flush ?? null;
  const set = (id, value, format = integer) => {
    const cell = $(id);
    cell.textContent = formatNumber(value, format);
    cell.dataset.value = typeof value === "number" ? String(value) : "";
  };
  set("lag-dirty", report?.dirty);
  set("lag-in-flight", report?.in_flight);
  set("lag-oldest-in-flight", report?.oldest_in_flight_s, decimal);
  set("lag-last-flush-age", report?.last_flush_age_s, decimal);
  const mismatches = status.watchdog?.mismatches;
  set("lag-mismatches", Array.isArray(mismatches) ? mismatches.length : mismatches);
  const at = $("lag-at");
  at.textContent = formatTime(status.at);
  at.dataset.value = typeof status.at === "number" ? String(status.at) : "";
  const checked = status.watchdog?.checked;
  $("lag-source").textContent =
    report === null
      ? "(no flush or watchdog run yet)"
      : `(${status.watchdog ? "watchdog" : "flush"}${typeof checked === "number" ? `, ${formatNumber(checked)} checked` : ""}` +
        `${typeof status.every_s === "number" ? `, every ${formatNumber(status.every_s, decimal)} s` : ""})`;
  const errors = [...(status.flush?.errors ?? []), ...(status.watchdog?.errors ?? [])].map(String);
  const unique = [...new Set(errors)];
  const line = $("lag-errors");
  line.hidden = unique.length === 0;
  line.textContent = unique.length ? `Errors of the last run: ${unique.join("; ")}` : "";
  const mismatchCount = Array.isArray(mismatches) ? mismatches.length : Number(mismatches) || 0;
  $("lag").classList.toggle("warn", unique.length > 0 || mismatchCount > 0);
  $("lag").dataset.state = report === null ? "waiting" : "ready";
}

// --- wiring -------------------------------------------------------------------------------------------

function reloadAll() {
  writeUrl();
  loadTop();
  loadTotals();
  loadSeries();
}

function wire() {
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    state.domain = $("domain").value.trim();
    state.limit = $("limit").value.trim();
    reloadAll();
    pollStatus();
  });
  $("domain").addEventListener("change", () => {
    state.domain = $("domain").value.trim();
    reloadAll();
  });
  $("entity-type").addEventListener("change", () => {
    state.type = $("entity-type").value;
    state.entity = ""; // an id names an entity of one type
    $("entity-id").value = "";
    reloadAll();
  });
  $("counter").addEventListener("change", () => {
    state.counter = $("counter").value;
    writeUrl();
    loadTop();
    if (lastSeries) drawSeries();
    for (const item of $("totals").querySelectorAll(".figure")) {
      item.classList.toggle("active", item.querySelector("dd")?.dataset.field === state.counter);
    }
  });
  $("limit").addEventListener("change", () => {
    state.limit = $("limit").value.trim();
    writeUrl();
    loadTop();
  });
  $("top-table").tBodies[0].addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-entity-id]");
    if (row) selectEntity(row.dataset.entityId);
  });
  $("entity-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("entity-id").value.trim();
    if (!ENTITY_ID.test(value)) {
      showMessage("entity", "Entity id: 1–64 characters of A-Z a-z 0-9 _ -");
      return;
    }
    clearMessage("entity");
    selectEntity(value);
  });
  $("bucket").addEventListener("change", () => {
    state.bucket = $("bucket").value;
    Object.assign(state, defaultRange(state.bucket));
    $("from").value = state.from;
    $("to").value = state.to;
    writeUrl();
    loadSeries();
  });
  const onRange = () => {
    state.from = $("from").value;
    state.to = $("to").value;
    writeUrl();
    loadSeries();
  };
  $("from").addEventListener("change", onRange);
  $("to").addEventListener("change", onRange);
  $("series-form").addEventListener("submit", (event) => {
    event.preventDefault();
    onRange();
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawSeries, 150);
  });
}

// Nothing the page does may end as an uncaught exception: show it instead.
window.addEventListener("error", (event) => showMessage("page", `Page error: ${event.message}`));
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  showMessage("page", `Page error: ${event.reason?.message ?? event.reason}`);
});

function start() {
  readUrl();
  syncControls();
  wire();
  writeUrl();
  loadTop();
  if (state.entity) {
    loadTotals();
    loadSeries();
  }
  pollStatus();
  document.documentElement.dataset.ready = "true";
}

start();
