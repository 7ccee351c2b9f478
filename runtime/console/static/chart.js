/* A stacked bar chart of counts per minute, drawn as SVG (no chart library).
   Colours come from the stylesheet (.bar-<severity>); each severity is also named in
   the legend and in the tooltip, and the arrow keys walk the minutes for keyboard and
   screen-reader users (the focused minute is spoken through aria-live). */
"use strict";

cep.chart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    return n;
  };

  function niceMax(v) {
    if (v <= 4) return 4;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  /** Minute buckets from `start` (ms, floored to the minute) for `minutes` minutes. */
  function minutes(end, count) {
    const last = Math.floor(end / 60000) * 60000;
    const out = [];
    for (let i = count - 1; i >= 0; i--) out.push(last - i * 60000);
    return out;
  }

  /** Draw `series` ({severity: {minuteMs: count}}) over `buckets` (minute starts, ms). */
  function bars(container, buckets, series, { order = cep.SEVERITIES, label = "Matches per minute" } = {}) {
    const W = Math.max(container.clientWidth || 600, 280);
    const H = 220, left = 38, right = 8, top = 10, bottom = 26;
    const plotW = W - left - right, plotH = H - top - bottom;
    const totals = buckets.map((b) => order.reduce((s, k) => s + ((series[k] || {})[b] || 0), 0));
    const max = niceMax(Math.max(1, ...totals));
    const total = totals.reduce((a, b) => a + b, 0);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${label}: ${total} in ${buckets.length} minutes` });
    svg.setAttribute("preserveAspectRatio", "none");
    const axis = svgEl("g", { class: "axis" });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const y = top + plotH - (plotH * i) / 4;
      axis.append(svgEl("line", { class: "grid-line", x1: left, x2: W - right, y1: y, y2: y }));
      const t = svgEl("text", { x: left - 6, y: y + 4, "text-anchor": "end" });
      t.textContent = Number.isInteger(v) ? v : v.toFixed(1);
      axis.append(t);
    }
    const step = plotW / buckets.length;
    const labelEvery = step * 10 >= 60 ? 10 : 15;
    buckets.forEach((b, i) => {
      const d = new Date(b);
      if (d.getMinutes() % labelEvery === 0) {
        const t = svgEl("text", { x: left + i * step + step / 2, y: H - 8, "text-anchor": "middle" });
        t.textContent = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
        axis.append(t);
      }
    });
    svg.append(axis);
    const cols = [];
    const gap = Math.min(2, step * 0.2);
    buckets.forEach((b, i) => {
      const g = svgEl("g", { class: "col" });
      let y = top + plotH;
      for (const k of order.slice().reverse()) {
        const n = (series[k] || {})[b] || 0;
        if (!n) continue;
        const h = (plotH * n) / max;
        y -= h;
        g.append(svgEl("rect", { class: `bar-${k}`, x: left + i * step + gap / 2, y, width: Math.max(step - gap, 1), height: h }));
      }
      g.append(svgEl("rect", { class: "hit", x: left + i * step, y: top, width: step, height: plotH }));
      g.dataset.index = i;
      svg.append(g);
      cols.push(g);
    });
    const tip = document.querySelector(".chart-tip") || document.body.appendChild(Object.assign(document.createElement("div"), { className: "chart-tip", hidden: true }));
    const spoken = container.querySelector(".visually-hidden") || cep.el("p", { class: "visually-hidden", "aria-live": "polite" });
    function describe(i) {
      const b = buckets[i];
      const d = new Date(b);
      const parts = order.filter((k) => (series[k] || {})[b]).map((k) => `${k} ${series[k][b]}`);
      return `${d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: ${totals[i]} ${totals[i] === 1 ? "match" : "matches"}${parts.length ? "\n" + parts.join("\n") : ""}`;
    }
    svg.addEventListener("mousemove", (e) => {
      const g = e.target.closest(".col");
      if (!g) { tip.hidden = true; return; }
      tip.textContent = describe(+g.dataset.index);
      tip.hidden = false;
      tip.style.left = `${Math.min(e.clientX + 12, window.innerWidth - 160)}px`;
      tip.style.top = `${e.clientY + 12}px`;
    });
    svg.addEventListener("mouseleave", () => { tip.hidden = true; });
    // One tab stop for the chart; arrows move between minutes.
    let at = buckets.length - 1;
    svg.setAttribute("tabindex", "0");
    svg.addEventListener("keydown", (e) => {
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) return;
      e.preventDefault();
      at = e.key === "Home" ? 0 : e.key === "End" ? buckets.length - 1 : Math.max(0, Math.min(buckets.length - 1, at + (e.key === "ArrowLeft" ? -1 : 1)));
      cols.forEach((c, i) => c.querySelector(".hit").setAttribute("stroke", i === at ? "currentColor" : "none"));
      spoken.textContent = describe(at).replace(/\n/g, ", ");
    });
    const legend = cep.el("ul", { class: "legend", "aria-label": "Severities" },
      order.map((k) => {
        const n = buckets.reduce((s, b) => s + ((series[k] || {})[b] || 0), 0);
        return cep.el("li", {}, cep.sev(k), cep.el("span", { class: "muted", text: ` ${n}` }));
      }));
    container.replaceChildren(svg, legend, spoken);
    return total;
  }

  return { bars, minutes };
})();
