// Bar charts as SVG built node by node (no innerHTML, no inline style: the CSP forbids it;
// colours come from classes in officer.css), each with a table that says the same thing for
// screen readers and for anyone who prefers numbers. The SVG is role="img" with a text label;
// the table is the accessible alternative, always shown under the chart.
import { el } from "./shell.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let uid = 0;

function table(caption, rowHeader, series, rows, id) {
  return el("table", { class: "responsive chart-table", "data-chart-table": id },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, rowHeader),
      series.map((s) => el("th", { scope: "col" }, s.label)))),
    el("tbody", {}, rows.map((row) => el("tr", { "data-category": row.key },
      el("th", { scope: "row" }, row.label),
      series.map((s) => el("td", { "data-label": s.label, "data-series": s.key },
        String(row.values[s.key] ?? 0)))))));
}

/**
 * Vertical stacked bars: one bar per row (e.g. a day), one segment per series (e.g. permit,
 * deny, break-glass). rows: [{key, label, values: {seriesKey: n}}]; series: [{key, label}].
 */
export function stackedBars({ id, title, rowHeader, series, rows, summary }) {
  const width = 640, height = 240, left = 36, bottom = 40, top = 12;
  const max = Math.max(1, ...rows.map((r) => series.reduce((n, s) => n + (r.values[s.key] || 0), 0)));
  const slot = (width - left) / Math.max(1, rows.length);
  const barWidth = Math.max(4, slot * 0.7);
  const scale = (height - bottom - top) / max;
  const titleId = `chart-${++uid}`;
  const bars = rows.map((row, i) => {
    let y = height - bottom;
    const x = left + i * slot + (slot - barWidth) / 2;
    const segments = series.map((s) => {
      const value = row.values[s.key] || 0;
      if (!value) return null;
      const h = value * scale;
      y -= h;
      return svg("rect", {
        class: `bar bar-${s.key}`, x: x.toFixed(1), y: y.toFixed(1), width: barWidth.toFixed(1),
        height: h.toFixed(1), "data-series": s.key, "data-category": row.key, "data-value": value,
      }, svg("title", {}, `${row.label}: ${value} ${s.label}`));
    });
    const label = rows.length <= 16 || i % Math.ceil(rows.length / 16) === 0
      ? svg("text", { x: (x + barWidth / 2).toFixed(1), y: height - bottom + 14, class: "axis-label",
        "text-anchor": "middle" }, row.shortLabel || row.label)
      : null;
    return svg("g", {}, segments, label);
  });
  const axis = [
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
    svg("text", { x: left - 4, y: top + 4, class: "axis-label", "text-anchor": "end" }, String(max)),
    svg("text", { x: left - 4, y: height - bottom, class: "axis-label", "text-anchor": "end" }, "0"),
  ];
  const legend = series.map((s, i) => svg("g", {},
    svg("rect", { class: `bar bar-${s.key}`, x: left + i * 130, y: height - 16, width: 12, height: 12 }),
    svg("text", { x: left + i * 130 + 16, y: height - 6, class: "axis-label" }, s.label)));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": titleId,
    class: "chart", "data-chart": id,
  }, svg("title", { id: titleId }, `${title}. ${summary}`), axis, bars, legend);
  return el("figure", { class: "chart-figure", id },
    el("figcaption", {}, title),
    chart,
    table(title, rowHeader, series, rows, id));
}

/** Horizontal bars, one per row (e.g. denials per actor). rows: [{key, label, value}]. */
export function horizontalBars({ id, title, rowHeader, valueLabel, rows, summary, empty }) {
  if (!rows.length) {
    return el("figure", { class: "chart-figure", id },
      el("figcaption", {}, title), el("p", { class: "muted", "data-chart-empty": id }, empty));
  }
  const width = 640, labelWidth = 170, rowHeight = 26, top = 4;
  const height = top + rows.length * rowHeight + 4;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const scale = (width - labelWidth - 50) / max;
  const titleId = `chart-${++uid}`;
  const bars = rows.map((row, i) => {
    const y = top + i * rowHeight;
    const w = Math.max(1, row.value * scale);
    return svg("g", {},
      svg("text", { x: labelWidth - 6, y: y + 16, class: "axis-label", "text-anchor": "end" }, row.label),
      svg("rect", {
        class: "bar bar-deny", x: labelWidth, y: y + 3, width: w.toFixed(1), height: rowHeight - 8,
        "data-series": "deny", "data-category": row.key, "data-value": row.value,
      }, svg("title", {}, `${row.label}: ${row.value} ${valueLabel}`)),
      svg("text", { x: (labelWidth + w + 6).toFixed(1), y: y + 16, class: "axis-label" }, String(row.value)));
  });
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": titleId,
    class: "chart", "data-chart": id,
  }, svg("title", { id: titleId }, `${title}. ${summary}`), bars);
  const series = [{ key: "value", label: valueLabel }];
  const tableRows = rows.map((r) => ({ key: r.key, label: r.label, values: { value: r.value } }));
  return el("figure", { class: "chart-figure", id },
    el("figcaption", {}, title), chart, table(title, rowHeader, series, tableRows, id));
}
