// Hand-drawn SVG line charts (no chart library): series of [time, value] points on a time
// axis, with the value axis from 0 to the largest value. Each series is a polyline with
// data-series and data-points, so tests and people can read what is drawn.

import { el } from "./views.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

export const COLOURS = ["#58a6ff", "#f2cc60", "#7ee787", "#ff9d96", "#d2a8ff", "#ffa657"];

// series: [{ name, label, colour, points: [[Date, number|null], ...] }]
export function lineChart(box, series, { start, end, fmt, unit = "", emptyText = "" }) {
  const width = 1000, height = 260, left = 56, bottom = 28, top = 10, right = 12;
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null && v !== undefined));
  const top_ = Math.max(1, ...values) * 1.1;
  const t0 = start.getTime(), t1 = Math.max(end.getTime(), t0 + 1);
  const x = (at) => left + ((at.getTime() - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => height - bottom - (v / top_) * (height - bottom - top);
  chart.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
  chart.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }));
  for (const frac of [0, 0.5, 1]) {
    const v = (top_ / 1.1) * frac;
    const label = svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = fmt.num(v, v < 10 ? 1 : 0);
    chart.append(label);
  }
  for (const frac of [0, 0.25, 0.5, 0.75, 1]) {
    const at = new Date(t0 + frac * (t1 - t0));
    const label = svg("text", { x: x(at), y: height - 8, "text-anchor": frac === 0 ? "start" : frac === 1 ? "end" : "middle" });
    label.textContent = fmt.dateTime(at.toISOString());
    chart.append(label);
  }
  let drawn = 0;
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[1] !== null && p[1] !== undefined);
    if (!pts.length) return;
    drawn += pts.length;
    const line = svg("polyline", {
      points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
      fill: "none", stroke: s.colour || COLOURS[i % COLOURS.length], "stroke-width": 2,
      "vector-effect": "non-scaling-stroke", "data-series": s.name, "data-points": pts.length,
      "data-max": Math.max(...pts.map((p) => p[1])),
    });
    const title = svg("title", {});
    title.textContent = `${s.label || s.name} (${unit})`;
    line.append(title);
    chart.append(line);
  });
  box.replaceChildren(chart);
  box.dataset.points = String(drawn);
  if (!drawn && emptyText) box.append(el("p", { class: "muted chart-empty", text: emptyText }));
}
