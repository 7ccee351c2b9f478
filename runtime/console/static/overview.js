/* Overview: today's numbers, matches per minute by severity, latest alerts, busiest rules. */
"use strict";
(() => {
  const { el, $, api, pick, list, num, ms, time, sev, emptyRow, messageOf } = cep;
  const EVERY_MS = 5000;
  let previous = null; // {events, at} for the events/s estimate

  function setKpi(name, value) {
    const node = document.querySelector(`[data-kpi="${name}"]`);
    if (!node || node.textContent === value) return;
    const first = node.textContent === "–";
    node.textContent = value;
    if (first) return; // flash changes, not the first fill
    const card = node.closest(".kpi");
    card.classList.remove("flash");
    void card.offsetWidth; // restart the animation
    card.classList.add("flash");
  }

  async function kpis() {
    const s = await api("/cep/stats/summary");
    const events = pick(s, "events_today", "events_in_today", "events");
    setKpi("active_rules", num(pick(s, "active_rules", "rules_active")));
    setKpi("events_today", num(events));
    setKpi("matches_today", num(pick(s, "matches_today", "matches")));
    const failed = pick(s, "alerts_failed_today", "alerts_failed", "failed_today") ?? 0;
    setKpi("alerts_sent", num(pick(s, "alerts_sent_today", "alerts_sent", "sent_today")));
    setKpi("alerts_failed", num(failed));
    $("#kpi-alerts").classList.toggle("bad", failed > 0);
    setKpi("mean_eval_ms", ms(pick(s, "mean_eval_ms", "eval_mean_ms", "mean_ms")));
    setKpi("p99_eval_ms", ms(pick(s, "p99_eval_ms", "eval_p99_ms", "p99_ms")));
    const disabled = pick(s, "disabled_rules");
    $('[data-kpi-sub="rules"]').textContent = typeof disabled === "number" ? `${num(disabled)} disabled` : "\u00a0";
    const now = Date.now();
    if (previous && typeof events === "number" && now > previous.at) {
      const rate = Math.max(0, (events - previous.events) / ((now - previous.at) / 1000));
      $('[data-kpi-sub="rate"]').textContent = `${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)} events/s`;
    }
    if (typeof events === "number") previous = { events, at: now };
  }

  /** {minuteMs: count} from a summary's per-minute series. */
  function perMinute(summary) {
    const out = {};
    for (const p of pick(summary, "per_minute", "series", "minutes") || []) {
      const t = cep.toDate(pick(p, "minute", "ts", "t", "bucket", "start"));
      if (t) { const m = Math.floor(t.getTime() / 60000) * 60000; out[m] = (out[m] || 0) + (pick(p, "count", "n") || 0); }
    }
    return out;
  }
  const sevKeys = (summary) => Object.entries(pick(summary, "by_severity") || {}).filter(([, n]) => n > 0).map(([k]) => k);

  /** Matches per minute by severity: from the summary's per-minute `by_severity` when
      the API gives it (one call).  Otherwise the split is asked for as narrowly as the
      API allows: one severity in the hour → exact at once; else a per-severity filter when the
      API honours it (checked, not assumed); else one series per busiest rule that fired,
      grouped by the rule's severity (a rule has exactly one). */
  async function seriesBySeverity(query) {
    const all = await api("/cep/events/summary", { query });
    busiest(all);
    const points = pick(all, "per_minute", "series", "minutes") || [];
    if (points.some((p) => p.by_severity && Object.keys(p.by_severity).length)) {
      // The series is split already: one call.
      const out = {};
      for (const p of points) {
        const t = cep.toDate(pick(p, "minute", "ts", "t"));
        if (!t) continue;
        const m = Math.floor(t.getTime() / 60000) * 60000;
        for (const [k, n] of Object.entries(p.by_severity)) (out[k] ||= {})[m] = ((out[k] || {})[m] || 0) + n;
      }
      return out;
    }
    const sevs = sevKeys(all);
    if (sevs.length <= 1) return { [sevs[0] || "medium"]: perMinute(all) };
    const filtered = await Promise.all(sevs.map((s) => api("/cep/events/summary", { query: { ...query, severity: s } })));
    if (filtered.every((f, i) => sevKeys(f).every((k) => k === sevs[i]))) {
      return Object.fromEntries(sevs.map((s, i) => [s, perMinute(filtered[i])]));
    }
    const ruleSev = {};
    for (const c of pick(all, "counts") || []) ruleSev[c.rule] = c.severity;
    const rules = Object.entries(pick(all, "by_rule") || {}).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([r]) => r);
    const perRule = await Promise.all(rules.map((r) => api("/cep/events/summary", { query: { ...query, rule: r } })));
    const out = {};
    const total = perMinute(all);
    const covered = {};
    rules.forEach((r, i) => {
      const s = ruleSev[r] || "medium";
      for (const [m, n] of Object.entries(perMinute(perRule[i]))) {
        (out[s] ||= {})[m] = (out[s][m] || 0) + n;
        covered[m] = (covered[m] || 0) + n;
      }
    });
    for (const [m, n] of Object.entries(total)) {
      // Beyond the 8 busiest rules: counted, shown without a severity split.
      if (n > (covered[m] || 0)) (out.other ||= {})[m] = n - (covered[m] || 0);
    }
    return out;
  }

  async function chart() {
    const until = new Date();
    const since = new Date(until.getTime() - 60 * 60000);
    const query = { since: since.toISOString(), until: new Date(until.getTime() + 60000).toISOString() };
    const series = await seriesBySeverity(query);
    const buckets = cep.chart.minutes(until.getTime(), 60);
    const order = series.other ? [...cep.SEVERITIES, "other"] : cep.SEVERITIES;
    const total = cep.chart.bars($("#chart-matches"), buckets, series, { order, label: "Matches per minute, last hour" });
    $("#chart-total").textContent = `${num(total)} in the last hour`;
  }

  async function latest() {
    const data = await api("/cep/events", { query: { limit: 8 } });
    const rows = list(data, "events", "alerts");
    const tbody = $("#recent-alerts").tBodies[0];
    if (!rows.length) return emptyRow(tbody, 4, "No alert yet.");
    tbody.replaceChildren(...rows.map((a) => el("tr", {},
      el("td", { class: "nowrap" }, el("a", { href: `/alerts/${encodeURIComponent(a.id)}` }, time(pick(a, "ts", "time", "emitted_at")))),
      el("td", {}, sev(a.severity)),
      el("td", {}, el("a", { href: `/rules/${encodeURIComponent(a.rule)}`, text: a.rule })),
      el("td", { class: "msg" }, cep.messageNode(a)))));
  }

  /** The rules with the most matches in the last hour, from the chart's own summary
      (no extra call: the summary counts by rule and severity). */
  function busiest(summary) {
    const rows = (pick(summary, "counts") || []).slice()
      .sort((x, y) => y.count - x.count || x.rule.localeCompare(y.rule)).slice(0, 8);
    const tbody = $("#busy-rules").tBodies[0];
    if (!rows.length) return emptyRow(tbody, 3, "No rule matched in the last hour.");
    tbody.replaceChildren(...rows.map((r) => el("tr", {},
      el("td", {}, el("a", { href: `/rules/${encodeURIComponent(r.rule)}`, text: r.rule })),
      el("td", {}, sev(r.severity)),
      el("td", { class: "num", text: num(r.count) }))));
  }

  cep.poll(async () => {
    const results = await Promise.allSettled([kpis(), chart(), latest()]);
    cep.ready();
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }, EVERY_MS);
  window.addEventListener("resize", () => { clearTimeout(window.__cepResize); window.__cepResize = setTimeout(chart, 200); });
})();
