// The city map (data-role="map"): segments as road lines coloured and labelled by level
// of service, intersections with mode and plan, cameras with their state. Leaflet is
// served by the engine (static/vendor/leaflet). With no tile URL the map has a plain
// background and only the site's own geometry. A click opens the details.

import { el } from "./views.js";

const LOS_COLOURS = { A: "#1a9850", B: "#66bd63", C: "#d9ef8b", D: "#fee08b", E: "#fc8d59", F: "#d73027" };
const NO_DATA = "#8b949e";
const CAM_COLOURS = { streaming: "#7ee787", reconnecting: "#f2cc60", stalled: "#f2cc60", offline: "#ff9d96" };
const MODE_COLOURS = { adaptive: "#7ee787", fallback: "#f2cc60", manual: "#d2a8ff", none: "#8b949e" };

export class CityMap {
  constructor(box, geo, onDetails) {
    this.box = box;
    this.geo = geo;
    this.onDetails = onDetails;
    this.layers = { segments: new Map(), cameras: new Map(), intersections: new Map() };
    const L = window.L;
    this.map = L.map(box, { zoomControl: true, attributionControl: Boolean(geo.tile_url), preferCanvas: false });
    if (geo.tile_url) {
      L.tileLayer(geo.tile_url, { maxZoom: geo.max_zoom, attribution: geo.attribution }).addTo(this.map);
    } else {
      box.classList.add("no-basemap");
    }
    const bounds = [];
    for (const seg of geo.segments) {
      const line = L.polyline(seg.line, { color: NO_DATA, weight: 9, opacity: 0.95, lineCap: "round" }).addTo(this.map);
      line.bindTooltip("", { permanent: true, direction: "center", className: "map-label map-los" });
      line.on("click", () => this.onDetails("segment", seg.segment_id));
      this.layers.segments.set(seg.segment_id, line);
      bounds.push(...seg.line);
    }
    for (const ix of geo.intersections) {
      const mark = L.circleMarker(ix.location, { radius: 13, color: "#000", weight: 3, fillColor: MODE_COLOURS.none, fillOpacity: 1 }).addTo(this.map);
      mark.bindTooltip("", { permanent: true, direction: "right", offset: [14, 0], className: "map-label map-ix" });
      mark.on("click", () => this.onDetails("intersection", ix.id));
      this.layers.intersections.set(ix.id, mark);
      bounds.push(ix.location);
    }
    for (const cam of geo.cameras) {
      const mark = L.circleMarker(cam.location, { radius: 7, color: "#000", weight: 2, fillColor: NO_DATA, fillOpacity: 1 }).addTo(this.map);
      mark.bindTooltip(cam.name, { direction: "top" });
      mark.on("click", () => this.onDetails("camera", cam.id));
      this.layers.cameras.set(cam.id, mark);
      bounds.push(cam.location);
    }
    if (geo.center) this.map.setView(geo.center, geo.zoom);
    else if (bounds.length) this.map.fitBounds(bounds, { padding: [30, 30], maxZoom: geo.max_zoom });
    else this.map.setView([0, 0], 2);
    this.tag();
  }

  tag() {
    // data attributes on the drawn elements, for tests and monitoring
    for (const [id, line] of this.layers.segments) { const e = line.getElement(); if (e) { e.dataset.segment = id; e.classList.add("map-segment"); } }
    for (const [id, m] of this.layers.intersections) { const e = m.getElement(); if (e) { e.dataset.ix = id; e.classList.add("map-ix-mark"); } }
    for (const [id, m] of this.layers.cameras) { const e = m.getElement(); if (e) { e.dataset.camera = id; e.classList.add("map-camera"); } }
  }

  resize() { this.map.invalidateSize(); }

  update(ov, t, fmt) {
    this.tag();
    for (const seg of ov.segments) {
      const line = this.layers.segments.get(seg.segment_id);
      if (!line) continue;
      const los = seg.los || "";
      line.setStyle({ color: los ? LOS_COLOURS[los] : NO_DATA, dashArray: seg.stale ? "8 10" : null });
      const e = line.getElement();
      if (e) e.dataset.los = los;
      const label = los ? `${los} · ${t(`los.${los}`)}` : t("board.nodata");
      // the permanent label is the letter only (full names overlap where roads meet); the
      // name and the words are the line's hover title and its details on click
      line.setTooltipContent(los || "–");
      setTitle(e, `${seg.name || seg.segment_id}: ${label}`);
    }
    for (const ix of ov.intersections) {
      const mark = this.layers.intersections.get(ix.intersection_id);
      if (!mark) continue;
      const mode = ix.mode || "none";
      mark.setStyle({ fillColor: MODE_COLOURS[mode] || NO_DATA });
      const e = mark.getElement();
      if (e) e.dataset.mode = mode;
      const plan = ix.running ? t("ix.cycle", { cycle: fmt.num(ix.running.cycle_s, 0) }) : t("ix.noplan");
      mark.setTooltipContent(ix.name || ix.intersection_id);
      setTitle(e, `${ix.name || ix.intersection_id}: ${t(`mode.${mode}`)} · ${plan}`);
    }
    for (const cam of ov.cameras) {
      const mark = this.layers.cameras.get(cam.camera_id);
      if (!mark) continue;
      mark.setStyle({ fillColor: CAM_COLOURS[cam.state] || NO_DATA });
      const e = mark.getElement();
      if (e) e.dataset.state = cam.state;
      mark.setTooltipContent(`${cam.name || cam.camera_id}: ${t(`cam.${cam.state}`)}`);
    }
  }
}

// A hover title on a drawn SVG element (an SVG <title> child).
function setTitle(elem, text) {
  if (!elem) return;
  let title = elem.querySelector("title");
  if (!title) {
    title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    elem.append(title);
  }
  title.textContent = text;
}

// The details dialog a click on the map (or on a camera tile) opens.
export function showDetails(dialog, kind, id, ov, t, fmt) {
  const body = dialog.querySelector(".details-body");
  body.replaceChildren();
  const row = (label, value) => el("tr", {}, el("th", { text: label }), el("td", { text: value }));
  if (kind === "segment") {
    const seg = ov.segments.find((s) => s.segment_id === id);
    if (!seg) return;
    body.append(
      el("h2", { text: `${t("map.segment")}: ${seg.name || seg.segment_id}` }),
      el("table", { class: "facts-table" },
        row(t("board.los"), seg.los ? `${seg.los} · ${t(`los.${seg.los}`)}` : t("board.nodata")),
        row(t("board.density"), fmt.num(seg.density_pcu_km_lane, 1)),
        row(t("board.flow"), fmt.num(seg.flow_veh_h, 0)),
        row(t("board.queue"), fmt.num(seg.queue_m, 0)),
        row(t("board.vehicles"), fmt.num(seg.vehicles, 1)),
        row(t("board.updated"), fmt.time(seg.window_end))),
      el("p", {}, el("a", { href: `history?segment=${encodeURIComponent(seg.segment_id)}`, text: t("map.history") })),
    );
  } else if (kind === "intersection") {
    const ix = ov.intersections.find((x) => x.intersection_id === id);
    if (!ix) return;
    const mode = ix.mode || "none";
    body.append(
      el("h2", { text: `${t("map.ix")}: ${ix.name || ix.intersection_id}` }),
      el("table", { class: "facts-table" },
        row(t("ix.mode"), t(`mode.${mode}`)),
        row(t("ix.source"), t(`source.${ix.source}`)),
        row(t("ix.running"), ix.running ? `${t("ix.cycle", { cycle: fmt.num(ix.running.cycle_s, 0) })} · ${ix.running.phases.map((p) => `${p.phase_id} ${fmt.num(p.green_s, 0)}`).join(", ")}` : t("ix.noplan"))),
      el("p", {}, el("a", { href: `?intersection=${encodeURIComponent(ix.intersection_id)}`, text: t("map.details") })),
    );
  } else if (kind === "camera") {
    const cam = ov.cameras.find((c) => c.camera_id === id);
    if (!cam) return;
    body.append(el("h2", { text: `${t("map.camera")}: ${cam.name || cam.camera_id}` }),
      el("p", { text: `${t(`cam.${cam.state}`)} · ${t("wall.fps", { fps: fmt.num(cam.fps, 1) })}` }));
    if (cam.snapshot_url) body.append(el("img", { class: "enlarged", src: cam.snapshot_url, alt: cam.name || cam.camera_id }));
  }
  dialog.dataset.kind = kind;
  dialog.dataset.id = id;
  if (!dialog.open) dialog.showModal();
}
