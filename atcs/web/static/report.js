// The printable daily report by vehicle class: one table, one row per segment, vehicles
// counted and mean vehicles present per class, windows, observed hours and density.

import { translate } from "./i18n.js";
import { Formatter, el } from "./views.js";

const params = new URLSearchParams(window.location.search);
let lang = params.get("lang") || (() => { try { return window.localStorage.getItem("atcs.lang"); } catch (_e) { return null; } })() || "id";
const t = (key, vars) => translate(lang, key, vars);
const $ = (sel) => document.querySelector(sel);

function applyI18n() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
}

async function load() {
  const day = $("#day").value;
  const query = day ? `?day=${day}` : "";
  $("#csv").href = `api/reports/daily.csv${query}`;
  const r = await fetch(`api/reports/daily${query}`, { credentials: "same-origin", cache: "no-store" });
  const data = await r.json().catch(() => null);
  if (!r.ok) { $("#status").textContent = t(`err.${data && data.code}`); return; }
  $("#status").textContent = "";
  if (!day) $("#day").value = data.day;
  const fmt = new Formatter(lang, data.timezone);
  $("#site").textContent = `${data.site_name} · ${data.day}`;
  $("#range").textContent = t("report.range", { start: fmt.dateTime(data.start), end: fmt.dateTime(data.end), zone: data.timezone });
  const head = el("tr", {}, el("th", { text: t("board.segment") }));
  for (const c of data.classes) head.append(el("th", { class: "num", text: `${t(`class.${c}`)}: ${t("report.counted")} / ${t("report.present")}` }));
  head.append(el("th", { class: "num", text: t("report.windows") }), el("th", { class: "num", text: t("report.observed") }), el("th", { class: "num", text: t("report.density") }));
  const rows = data.segments.map((s) => {
    const tr = el("tr", { "data-segment": s.segment_id }, el("th", { scope: "row", text: s.name }));
    for (const c of data.classes) tr.append(el("td", { class: "num", "data-class": c, "data-counted": String(s.counted_by_class[c]), text: `${s.counted_by_class[c]} / ${fmt.num(s.present_by_class[c], 1)}` }));
    tr.append(el("td", { class: "num", text: String(s.windows) }), el("td", { class: "num", text: fmt.num(s.observed_h, 2) }),
      el("td", { class: "num", text: `${fmt.num(s.density_mean, 1)} / ${fmt.num(s.density_peak, 1)}` }));
    return tr;
  });
  const total = el("tr", { class: "total" }, el("th", { text: t("report.total") }));
  for (const c of data.classes) total.append(el("td", { class: "num", "data-class": c, text: String(data.segments.reduce((a, s) => a + s.counted_by_class[c], 0)) }));
  $("#report").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows, total));
}

function start() {
  applyI18n();
  if (params.get("day")) $("#day").value = params.get("day");
  $("#day").addEventListener("change", load);
  $("#print").addEventListener("click", () => window.print());
  $("#lang-toggle").addEventListener("click", () => { lang = lang === "id" ? "en" : "id"; applyI18n(); load(); });
  load();
}

start();
