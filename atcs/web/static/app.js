// The dashboard page: polls api/overview every refresh_s, renders the panels, handles
// login, operator actions, language and layout. When the engine cannot be reached the
// page says so, keeps the last values (dimmed) and keeps trying; it recovers by itself.

import { translate } from "./i18n.js";
import { Formatter, renderBoard, renderCameras, renderHealth } from "./views.js";
import { renderIntersections } from "./intersections.js";
import { CityMap, showDetails } from "./map.js";
import { Beeper, renderAlarms } from "./alarms.js";

const params = new URLSearchParams(window.location.search);
const stored = (key) => { try { return window.localStorage.getItem(key); } catch (_e) { return null; } };
const store = (key, value) => { try { window.localStorage.setItem(key, value); } catch (_e) { /* private mode */ } };

const state = {
  lang: params.get("lang") || stored("atcs.lang") || null,
  layout: params.get("layout") || stored("atcs.layout") || (window.innerWidth >= 1800 ? "wall" : "laptop"),
  focus: params.get("intersection"),
  focusDone: false,
  who: { user: null, role: "anonymous", may_view: true, may_operate: false },
  overview: null,
  failures: 0,
  needLogin: false,
  map: null,
  geo: null,
  sound: stored("atcs.sound") !== "off",
  beeper: new Beeper(),
};

const $ = (sel) => document.querySelector(sel);
const t = (key, vars) => translate(state.lang || "id", key, vars);

function applyI18n(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.documentElement.lang = state.lang || "id";
  $("#layout-toggle").textContent = t(state.layout === "wall" ? "layout.laptop" : "layout.wall");
  const reasons = root.querySelectorAll("input.op-reason");
  for (const input of reasons) input.placeholder = t("op.reason");
  $("#sound-toggle").textContent = t(state.sound ? "alarms.sound.on" : "alarms.sound.off");
}

function applyLayout() {
  document.body.classList.toggle("layout-wall", state.layout === "wall");
  document.body.classList.toggle("layout-laptop", state.layout !== "wall");
  document.body.dataset.layout = state.layout;
  $("#sound-toggle").hidden = state.layout !== "wall";
  applyI18n();
  if (state.map) window.setTimeout(() => state.map.resize(), 50);
}

async function loadMap() {
  try {
    const r = await api("api/map");
    if (!r.ok) return;
    state.geo = r.data;
    state.map = new CityMap($("#map"), r.data, (kind, id) => openDetails(kind, id));
    const note = $("#map-note");
    note.hidden = !r.data.unmapped.length;
    note.dataset.ids = r.data.unmapped.join(", ");
    render();
  } catch (_e) { /* the poll reports the connection */ }
}

function openDetails(kind, id) {
  const ov = state.overview;
  if (!ov) return;
  showDetails($("#details-dialog"), kind, id, ov, t, new Formatter(state.lang || ov.language, ov.timezone));
}

async function acknowledge(alarmId, comment, msg) {
  msg.hidden = false;
  msg.className = "ack-msg message";
  try {
    const r = await api(`api/alarms/${encodeURIComponent(alarmId)}/ack`, { method: "POST", body: { comment } });
    if (r.ok) {
      msg.className = "ack-msg message ok";
      msg.dataset.result = "ok";
      poll.now();
      return;
    }
    msg.className = "ack-msg message error";
    msg.dataset.result = r.data && r.data.code ? r.data.code : "error";
    msg.textContent = r.data && r.data.code === "login_required" ? t("err.login_required.ack") : errorText(r.data);
    if (r.status === 401) refreshWho();
  } catch (_e) {
    msg.className = "ack-msg message error";
    msg.textContent = t("err.network");
  }
}

function renderWho() {
  const who = state.who;
  $("#who").textContent = who.user ? t("who.user", { user: who.user, role: t(`role.${who.role}`) }) : t("who.anonymous");
  $("#who").dataset.role = who.role;
  $("#login-open").hidden = Boolean(who.user);
  $("#logout").hidden = !who.user;
}

function banner(id, text, kind = "error") {
  const box = $("#banners");
  let node = box.querySelector(`[data-banner="${id}"]`);
  if (!text) { if (node) node.remove(); return; }
  if (!node) { node = document.createElement("p"); node.dataset.banner = id; box.append(node); }
  node.className = `banner ${kind}`;
  if (node.textContent !== text) node.textContent = text;
}

function setConn(live) {
  const conn = $("#conn");
  conn.dataset.state = live ? "live" : "lost";
  $("#conn-text").textContent = live ? t("conn.live") : t("conn.lost", { n: state.failures });
  document.body.classList.toggle("disconnected", !live);
  banner("conn", live ? "" : t("conn.lost", { n: state.failures }));
}

function render() {
  const ov = state.overview;
  if (!ov) return;
  if (!state.lang) state.lang = ov.language;
  const fmt = new Formatter(state.lang, ov.timezone);
  document.title = `${ov.title} · ATCS`;
  $("#title").textContent = ov.title;
  $("#conn-updated").textContent = t("conn.updated", { time: `${fmt.time(ov.now)} ${ov.zone}` });
  renderBoard($("#segment-rows"), ov.segments, t, fmt);
  const wall = state.layout === "wall";
  const perPage = wall ? ov.wall_camera_tiles : 0;
  const page = perPage ? Math.floor(Date.now() / (ov.wall_page_s * 1000)) : 0;
  renderCameras($("#cameras"), ov.cameras, t, fmt, { segments: ov.segments, perPage, page, onEnlarge: (id) => openDetails("camera", id) });
  const pages = Number($("#cameras").dataset.pages);
  $("#wall-page").textContent = pages > 1 ? t("wall.page", { page: $("#cameras").dataset.page, pages }) : "";
  const urgent = renderAlarms($("#alarms"), ov.alarms, { t, fmt, lang: state.lang, who: state.who, onAck: acknowledge, zone: ov.zone });
  if (urgent && wall && ov.alarms.sound && state.sound) state.beeper.beep();
  if (state.map) state.map.update(ov, t, fmt);
  const note = $("#map-note");
  if (note.dataset.ids) note.textContent = t("map.nogeo", { ids: note.dataset.ids });
  renderIntersections($("#ix-list"), ov.intersections, t, fmt, state.who, submitOverride);
  renderHealth($("#health"), ov.health, t, fmt);
  const broker = ov.health.sinks.find((s) => s.kind === "mqtt");
  banner("broker", broker && !broker.connected ? t("banner.broker", { n: broker.queued }) : "", "warning");
  const db = ov.health.sinks.find((s) => s.kind === "influxdb");
  banner("database", db && !db.connected ? t("banner.database", { n: db.queued }) : "", "warning");
  const none = $("#ix-message");
  if (!ov.intersections.length && !state.focus) {
    none.hidden = false; none.className = "message muted"; none.textContent = t("ix.none");
  }
  if (state.focus) focusIntersection(ov);
  renderWho();
  applyI18n();
}

function focusIntersection(ov) {
  const msg = $("#ix-message");
  const found = ov.intersections.find((ix) => ix.intersection_id === state.focus);
  if (!found) {
    const known = ov.intersections.map((ix) => ix.intersection_id).join(", ") || "–";
    msg.hidden = false;
    msg.className = "message error";
    msg.textContent = t("ix.unknown", { id: state.focus, known });
    return;
  }
  msg.hidden = true;
  if (!state.focusDone) {
    const card = document.getElementById(`ix-${found.intersection_id}`);
    if (card) { card.classList.add("focused"); card.scrollIntoView({ block: "start" }); }
    state.focusDone = true;
  }
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", cache: "no-store", ...options };
  if (init.body && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body);
    init.headers = { "Content-Type": "application/json", ...(init.headers || {}) };
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_e) { data = null; }
  return { status: response.status, ok: response.ok, data };
}

function errorText(data) {
  if (!data || !data.code) return t("err.other");
  const label = t(`err.${data.code}`);
  const english = (state.lang || "id") === "en";
  if (label === `err.${data.code}`) return english ? data.message : t("err.other");
  // the engine's message is English: shown in English mode only
  return english && data.message ? `${label} (${data.message})` : label;
}

async function refreshWho() {
  try {
    const r = await api("api/whoami");
    if (r.ok) state.who = r.data;
  } catch (_e) { /* the poll reports the connection */ }
  renderWho();
}

let pollTimer = null;

async function poll() {
  window.clearTimeout(pollTimer);
  let delay = (state.overview ? state.overview.refresh_s : 1) * 1000;
  try {
    const r = await api("api/overview");
    if (r.status === 401) {
      state.needLogin = true;
      banner("login", t("banner.login"), "info");
      if (!$("#login-dialog").open) openLogin();
      setConn(true);
    } else if (!r.ok || !r.data) {
      throw new Error(`HTTP ${r.status}`);
    } else {
      state.needLogin = false;
      banner("login", "");
      state.failures = 0;
      state.overview = r.data;
      setConn(true);
      render();
    }
  } catch (_e) {
    state.failures += 1;
    setConn(false);
    delay = Math.min(5000, delay * Math.min(state.failures, 5));
  }
  pollTimer = window.setTimeout(poll, delay);
}
poll.now = () => { window.clearTimeout(pollTimer); pollTimer = window.setTimeout(poll, 0); };

async function submitOverride(ix, body, form) {
  const msg = form.querySelector(".op-msg");
  const button = form.querySelector(".op-submit");
  msg.hidden = false;
  msg.className = "op-msg message";
  msg.textContent = t("op.sending");
  button.disabled = true;
  try {
    const r = await api(`api/intersections/${encodeURIComponent(ix)}/override`, { method: "POST", body });
    if (r.ok) {
      msg.className = "op-msg message ok";
      msg.dataset.result = "ok";
      msg.textContent = t(r.data.applied ? "op.done" : "op.handed", { message: r.data.message });
      form.querySelector(".op-reason").value = "";
      if (r.data.intersection && state.overview) {
        state.overview.intersections = state.overview.intersections.map((x) => (x.intersection_id === ix ? r.data.intersection : x));
        render();
      }
    } else {
      msg.className = "op-msg message error";
      msg.dataset.result = r.data && r.data.code ? r.data.code : "error";
      msg.textContent = errorText(r.data);
      if (r.status === 401 || r.status === 403) refreshWho();
    }
  } catch (_e) {
    msg.className = "op-msg message error";
    msg.dataset.result = "network";
    msg.textContent = t("err.network");
  } finally {
    button.disabled = false;
  }
}

function openLogin() {
  $("#login-error").hidden = true;
  const dialog = $("#login-dialog");
  if (!dialog.open) dialog.showModal();
  $("#login-user").focus();
}

async function login(ev) {
  ev.preventDefault();
  const err = $("#login-error");
  try {
    const r = await api("api/login", { method: "POST", body: { username: $("#login-user").value, password: $("#login-password").value } });
    if (r.ok) {
      state.who = r.data;
      $("#login-password").value = "";
      $("#login-dialog").close();
      renderWho();
      render();
      return;
    }
    err.textContent = errorText(r.data);
    err.dataset.code = r.data && r.data.code ? r.data.code : "error";
  } catch (_e) {
    err.textContent = t("err.network");
    err.dataset.code = "network";
  }
  err.hidden = false;
}

async function logout() {
  try { await api("api/logout", { method: "POST" }); } catch (_e) { /* shown by the poll */ }
  await refreshWho();
  render();
}

function start() {
  $("#login-open").addEventListener("click", openLogin);
  $("#logout").addEventListener("click", logout);
  $("#login-cancel").addEventListener("click", () => $("#login-dialog").close());
  $("#login-form").addEventListener("submit", login);
  $("#lang-toggle").addEventListener("click", () => {
    state.lang = (state.lang || "id") === "id" ? "en" : "id";
    store("atcs.lang", state.lang);
    render();
    applyI18n();
    renderWho();
  });
  $("#layout-toggle").addEventListener("click", () => {
    state.layout = state.layout === "wall" ? "laptop" : "wall";
    store("atcs.layout", state.layout);
    applyLayout();
  });
  $("#sound-toggle").addEventListener("click", () => {
    state.sound = !state.sound;
    store("atcs.sound", state.sound ? "on" : "off");
    applyI18n();
  });
  applyLayout();
  refreshWho().then(() => { poll(); loadMap(); });
}

start();
