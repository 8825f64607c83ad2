// The history page: per segment, the last hours, day or week of density, flow by class and
// speed from InfluxDB as charts; CSV export; per intersection, the plan history.

import { translate } from "./i18n.js";
import { Formatter, el } from "./views.js";
import { COLOURS, lineChart } from "./charts.js";

const params = new URLSearchParams(window.location.search);
let lang = params.get("lang") || (() => { try { return window.localStorage.getItem("atcs.lang"); } catch (_e) { return null; } })() || "id";
const t = (key, vars) => translate(lang, key, vars);
const $ = (sel) => document.querySelector(sel);
let overview = null;

async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  const data = await r.json().catch(() => null);
  return { ok: r.ok, status: r.status, data };
}

function applyI18n() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
}

async function load() {
  const seg = $("#segment").value;
  const range = $("#range").value;
  const fmt = new Formatter(lang, overview.timezone);
  $("#csv").href = `api/history/segments/${encodeURIComponent(seg)}/export.csv?range=${range}`;
  const status = $("#status");
  status.textContent = "…";
  const r = await getJson(`api/history/segments/${encodeURIComponent(seg)}?range=${range}`);
  if (!r.ok) { status.textContent = t(`err.${r.data && r.data.code}`); return; }
  const h = r.data;
  const start = new Date(h.start), end = new Date(h.end);
  const pts = h.points.map((p) => ({ ...p, at: new Date(p.time) }));
  status.textContent = t("history.points", { n: pts.length });
  status.dataset.points = String(pts.length);
  const opts = { start, end, fmt, emptyText: t("history.nodata") };
  lineChart($("#density-chart"), [{ name: "density", label: t("history.density"), points: pts.map((p) => [p.at, p.density_pcu_km_lane]) }], { ...opts, unit: t("board.density") });
  const classes = Object.keys(pts[0] ? pts[0].flow_by_class_veh_h : {});
  lineChart($("#flow-chart"), classes.map((c, i) => ({ name: c, label: t(`class.${c}`), colour: COLOURS[i], points: pts.map((p) => [p.at, p.flow_by_class_veh_h[c]]) })), { ...opts, unit: "veh/h" });
  $("#flow-legend").replaceChildren(...classes.map((c, i) => { const s = el("span", { text: t(`class.${c}`) }); s.style.setProperty("--c", COLOURS[i]); return s; }));
  lineChart($("#speed-chart"), [{ name: "speed", label: t("history.speed"), points: pts.map((p) => [p.at, p.speed_kmh]) }], { ...opts, emptyText: t("history.nospeed"), unit: "km/h" });
  const box = $("#plans");
  box.replaceChildren();
  for (const ix of overview.intersections) {
    const pr = await getJson(`api/history/intersections/${encodeURIComponent(ix.intersection_id)}/plans?range=${range}`);
    if (!pr.ok) continue;
    const rows = pr.data.plans.slice(0, 200).map((p) => el("tr", { "data-plan": p.plan_id },
      el("td", { text: fmt.dateTime(p.valid_from) }), el("td", { text: t(`mode.${p.mode}`) }),
      el("td", { text: p.controller }), el("td", { class: "num", text: fmt.num(p.cycle_s, 0) }),
      el("td", { text: Object.entries(p.greens_s).map(([k, v]) => `${k} ${fmt.num(v, 0)}`).join(", ") })));
    box.append(el("h3", { text: ix.name || ix.intersection_id }),
      el("table", { class: "plans", "data-ix": ix.intersection_id },
        el("thead", {}, el("tr", {}, el("th", { text: t("ix.col.time") }), el("th", { text: t("ix.col.mode") }),
          el("th", { text: t("ix.col.controller") }), el("th", { text: t("ix.col.cycle") }), el("th", { text: t("ix.col.greens") }))),
        el("tbody", {}, ...rows)));
  }
}

async function start() {
  applyI18n();
  const r = await getJson("api/overview");
  if (!r.ok) { $("#status").textContent = t("banner.login"); return; }
  overview = r.data;
  for (const s of overview.segments) $("#segment").append(el("option", { value: s.segment_id, text: s.name || s.segment_id }));
  if (params.get("segment")) $("#segment").value = params.get("segment");
  if (params.get("range")) $("#range").value = params.get("range");
  $("#segment").addEventListener("change", load);
  $("#range").addEventListener("change", load);
  $("#lang-toggle").addEventListener("click", () => { lang = lang === "id" ? "en" : "id"; try { window.localStorage.setItem("atcs.lang", lang); } catch (_e) { /* private */ } applyI18n(); load(); });
  await load();
}

start();
