// Rendering of the dashboard's panels. Every element is built with the DOM API and
// textContent (never innerHTML with data). Panels keep their elements between updates
// (keyed by id), so forms keep what an operator typed and images do not flicker.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

export class Formatter {
  constructor(lang, timezone) {
    this.lang = lang;
    this.locale = lang === "id" ? "id-ID" : "en-GB";
    this.timezone = timezone || undefined;
    this._num = new Map();
  }
  num(value, digits = 1) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    let f = this._num.get(digits);
    if (!f) {
      f = new Intl.NumberFormat(this.locale, { minimumFractionDigits: digits, maximumFractionDigits: digits });
      this._num.set(digits, f);
    }
    return f.format(value);
  }
  time(iso) {
    if (!iso) return "–";
    const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
    try {
      return new Date(iso).toLocaleTimeString(this.locale, { ...opts, timeZone: this.timezone });
    } catch (_e) {
      return new Date(iso).toLocaleTimeString(this.locale, opts);
    }
  }
  dateTime(iso) {
    if (!iso) return "–";
    const opts = { day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", hour12: false };
    try {
      return new Date(iso).toLocaleString(this.locale, { ...opts, timeZone: this.timezone });
    } catch (_e) {
      return new Date(iso).toLocaleString(this.locale, opts);
    }
  }
  duration(seconds, t) {
    const s = Math.max(0, Math.floor(seconds || 0));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const [uh, um, us] = t ? [t("units.h"), t("units.min"), t("units.s")] : ["h", "min", "s"];
    return h ? `${h} ${uh} ${m} ${um}` : m ? `${m} ${um} ${r} ${us}` : `${r} ${us}`;
  }
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setValue(node, value, text) {
  node.dataset.value = value === null || value === undefined ? "" : String(value);
  setText(node, text);
}

// --- congestion board -------------------------------------------------------------------

function trendWord(trend) {
  const d = trend.filter((p) => !p.stale).map((p) => p.density_pcu_km_lane);
  if (d.length < 4) return "flat";
  const k = Math.min(3, Math.floor(d.length / 2));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const before = mean(d.slice(-2 * k, -k)), after = mean(d.slice(-k));
  const scale = Math.max(1, before);
  if ((after - before) / scale > 0.1) return "up";
  if ((before - after) / scale > 0.1) return "down";
  return "flat";
}

function sparkline(trend, t) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 100 30");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const values = trend.map((p) => p.density_pcu_km_lane);
  const top = Math.max(1, ...values);
  const n = values.length;
  const points = values.map((v, i) => `${n > 1 ? (i * 100) / (n - 1) : 50},${28 - (v / top) * 26}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "2");
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(line);
  const title = document.createElementNS(SVG, "title");
  title.textContent = `${t("board.trend")}: ${values.map((v) => v.toFixed(1)).join(" → ")}`;
  svg.append(title);
  return svg;
}

export function renderBoard(body, segments, t, fmt) {
  const seen = new Set();
  for (const seg of segments) {
    seen.add(seg.segment_id);
    let row = body.querySelector(`tr[data-segment="${CSS.escape(seg.segment_id)}"]`);
    if (!row) {
      row = el("tr", { "data-segment": seg.segment_id });
      const name = el("th", { scope: "row" }, el("span", { class: "seg-name" }), el("span", { class: "seg-id muted", text: seg.segment_id }));
      row.append(name, el("td", { class: "los" }));
      for (const key of ["vehicles", "pcu", "density", "flow", "queue"]) {
        row.append(el("td", { class: `num ${key} col-${key}${key === "queue" ? " wide-only" : ""}`, "data-field": key }));
      }
      row.append(el("td", { class: "trend" }), el("td", { class: "updated wide-only" }));
      body.append(row);
    }
    setText(row.querySelector(".seg-name"), seg.name || seg.segment_id);
    const los = row.querySelector("td.los");
    los.replaceChildren();
    row.dataset.los = seg.los || "";
    if (seg.los) {
      los.append(
        el("span", { class: `los-badge los-${seg.los}`, text: seg.los }),
        el("span", { class: "los-label", text: t(`los.${seg.los}`) }),
      );
      if (seg.congested) los.append(el("span", { class: "tag congested", text: t("board.congested") }));
      if (seg.stale) los.append(el("span", { class: "tag stale", text: t("board.stale") }));
    } else {
      los.append(el("span", { class: "muted", text: t("board.nodata") }));
    }
    const cell = (k) => row.querySelector(`td[data-field="${k}"]`);
    setValue(cell("vehicles"), seg.vehicles, fmt.num(seg.vehicles, 1));
    setValue(cell("pcu"), seg.pcu, fmt.num(seg.pcu, 1));
    setValue(cell("density"), seg.density_pcu_km_lane, fmt.num(seg.density_pcu_km_lane, 1));
    setValue(cell("flow"), seg.flow_veh_h, fmt.num(seg.flow_veh_h, 0));
    setValue(cell("queue"), seg.queue_m, fmt.num(seg.queue_m, 0));
    const trend = row.querySelector("td.trend");
    trend.replaceChildren();
    if (seg.trend.length) {
      const word = trendWord(seg.trend);
      const arrow = { up: "↑", down: "↓", flat: "→" }[word];
      trend.append(sparkline(seg.trend, t), el("span", { class: `trend-word trend-${word}`, text: `${arrow} ${t(`trend.${word}`)}` }));
    }
    row.querySelector("td.updated").textContent = fmt.time(seg.window_end);
  }
  for (const row of [...body.querySelectorAll("tr[data-segment]")]) {
    if (!seen.has(row.dataset.segment)) row.remove();
  }
}

// --- camera wall ------------------------------------------------------------------------

const LOS_ORDER = "ABCDEF";

// Worst level of service and longest queue of the segments a camera sees.
function cameraTraffic(cam, segments) {
  let los = "", queue = null;
  for (const seg of segments) {
    if (!cam.segments.includes(seg.segment_id)) continue;
    if (seg.los && (!los || LOS_ORDER.indexOf(seg.los) > LOS_ORDER.indexOf(los))) los = seg.los;
    if (seg.queue_m !== null && seg.queue_m !== undefined) queue = Math.max(queue ?? 0, seg.queue_m);
  }
  return { los, queue };
}

// opts: segments (for the tint and queue), page and perPage (wall paging: 0 = all),
// onEnlarge(cameraId) on a click.
export function renderCameras(box, cameras, t, fmt, opts = {}) {
  const segments = opts.segments || [];
  const perPage = opts.perPage || 0;
  const pages = perPage ? Math.max(1, Math.ceil(cameras.length / perPage)) : 1;
  const page = perPage ? (opts.page || 0) % pages : 0;
  box.dataset.pages = String(pages);
  box.dataset.page = String(page + 1);
  cameras.forEach((cam, index) => {
    let card = box.querySelector(`figure[data-camera="${CSS.escape(cam.camera_id)}"]`);
    if (!card) {
      const img = el("img", { class: "snapshot", alt: `${cam.name || cam.camera_id}`, hidden: true });
      card = el(
        "figure",
        { class: "camera", "data-camera": cam.camera_id, tabindex: "0" },
        el("figcaption", {},
          el("span", { class: "cam-name" }),
          el("span", { class: "badge cam-state" }),
          el("span", { class: "cam-fps muted" }),
          el("span", { class: "cam-lag muted" })),
        el("div", { class: "frame" }, img, el("p", { class: "noimage muted" }),
          el("span", { class: "tile-los" }), el("span", { class: "tile-queue" })),
        el("p", { class: "cam-detail muted" }),
      );
      const open = () => { if (opts.onEnlarge) opts.onEnlarge(cam.camera_id); };
      card.addEventListener("click", open);
      card.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
      box.append(card);
    }
    card.hidden = Boolean(perPage) && Math.floor(index / perPage) !== page;
    card.title = t("wall.enlarge");
    setText(card.querySelector(".cam-name"), cam.name || cam.camera_id);
    const badge = card.querySelector(".cam-state");
    badge.className = `badge cam-state state-${cam.state}`;
    setText(badge, t(`cam.${cam.state}`));
    card.dataset.state = cam.state;
    const traffic = cameraTraffic(cam, segments);
    card.dataset.los = traffic.los;
    card.className = `camera${traffic.los ? ` tint-${traffic.los}` : ""}`;
    const losTag = card.querySelector(".tile-los");
    losTag.hidden = !traffic.los;
    losTag.className = `tile-los los-badge los-${traffic.los}`;
    setText(losTag, traffic.los);
    const queueTag = card.querySelector(".tile-queue");
    queueTag.hidden = traffic.queue === null;
    queueTag.dataset.value = traffic.queue === null ? "" : String(traffic.queue);
    setText(queueTag, traffic.queue === null ? "" : t("wall.queue", { queue: fmt.num(traffic.queue, 0) }));
    setText(card.querySelector(".cam-fps"), t("wall.fps", { fps: fmt.num(cam.fps, 1) }));
    setText(card.querySelector(".cam-lag"), t("wall.lag", { lag: fmt.num(cam.lag_s, 1) }));
    const img = card.querySelector("img.snapshot");
    const none = card.querySelector(".noimage");
    if (cam.snapshot_url && img.dataset.seq !== String(cam.snapshot_seq)) {
      img.dataset.seq = String(cam.snapshot_seq);
      img.src = cam.snapshot_url;
      img.hidden = false;
    }
    if (!cam.snapshot_url) {
      img.hidden = true;
      delete img.dataset.seq;
    }
    none.hidden = Boolean(cam.snapshot_url);
    setText(none, cam.snapshot_problem || t("wall.noimage"));
    const detail = card.querySelector(".cam-detail");
    setText(detail, t(`cam.detail.${cam.state}`, { n: cam.frames_analysed }));
    detail.title = cam.detail;
  });
}

// --- health -----------------------------------------------------------------------------

export function renderHealth(root, health, t, fmt) {
  const status = root.querySelector("#health-status");
  status.className = `health-status ${health.status}`;
  status.dataset.status = health.status;
  setText(status, t(`health.${health.status}`));
  const outputs = root.querySelector("#health-outputs");
  outputs.replaceChildren();
  for (const sink of health.sinks) {
    const label = sink.kind === "mqtt" ? t("health.broker") : sink.kind === "influxdb" ? t("health.database") : sink.name;
    const state = sink.connected ? t("health.connected") : t("health.disconnected");
    const items = [t("health.queued", { n: sink.queued }), t("health.spooled", { n: sink.spooled })];
    if (sink.kind === "mqtt") items.push(t("health.published", { n: sink.details.published ?? 0 }));
    if (sink.kind === "influxdb") items.push(t("health.written", { n: (sink.details.points_written ?? 0) + (sink.details.points_replayed ?? 0) }));
    if (sink.last_error && !sink.connected && fmt.lang === "en") items.push(t("health.error", { error: sink.last_error }));
    outputs.append(
      el("div", { class: `output ${sink.connected ? "up" : "down"}`, "data-kind": sink.kind, "data-connected": String(sink.connected) },
        el("h3", { text: label }),
        el("span", { class: `badge ${sink.connected ? "state-streaming" : "state-offline"}`, text: state }),
        el("ul", {}, ...items.map((x) => el("li", { text: x })))),
    );
  }
  const facts = root.querySelector("#health-engine");
  facts.replaceChildren();
  const rows = [
    ["health.uptime", fmt.duration(health.uptime_s, t)],
    ["health.frames", String(health.frames_detected)],
    ["health.dropped", String(health.frames_dropped)],
    ["health.windows", String(health.windows_published)],
    ["health.lag", `${fmt.num(health.max_lag_s, 1)} ${t("units.s")}`],
    ["health.queue", String(health.result_queue)],
    ["health.version", health.version],
  ];
  for (const [key, value] of rows) facts.append(el("dt", { text: t(key) }), el("dd", { text: value, "data-fact": key }));
  const problems = root.querySelector("#health-problems");
  problems.replaceChildren(...health.problem_codes.map((p) => {
    const params = { ...p.params };
    if (params.state) params.state = t(`cam.${params.state}`) === `cam.${params.state}` ? t(`health.${params.state}`) : t(`cam.${params.state}`);
    return el("li", { text: t(`problem.${p.code}`, params) });
  }));
}
