/* One rule: facts, switch, matches per minute, anomaly baselines, recent alerts, text and plan. */
"use strict";
(() => {
  const { el, $, api, pick, list, num, ms, bytes, time, sev, outcomes, groupText, messageOf, emptyRow, toggleSwitch } = cep;
  const id = document.body.dataset.ruleId;
  const path = `/cep/rules/${encodeURIComponent(id)}`;
  const EVERY_MS = 10000;
  let rule = null;

  function fact(dl, name, value) {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) return;
    dl.append(el("dt", { text: name }), el("dd", {}, value instanceof Node ? value : Array.isArray(value) ? value.join(", ") : String(value)));
  }

  async function loadRule() {
    rule = await api(path);
    $("#rule-title").textContent = rule.title ? `“${rule.title}”` : "";
    const enabled = pick(rule, "enabled") ?? true;
    if (!$("#rule-switch").firstChild) {
      $("#rule-switch").append(toggleSwitch(enabled, `Enable or disable rule ${id}`, async (next) => {
        await api(`${path}/toggle`, { method: "PATCH", body: { enabled: next } });
        cep.toast(`${id} ${next ? "enabled" : "disabled"}`);
      }));
    }
    const text = pick(rule, "text", "source_text", "cep");
    if (text) $("#rule-text").textContent = text;
    else {
      const versions = list(await api(`${path}/versions`).catch(() => []), "versions");
      const last = versions[versions.length - 1];
      $("#rule-text").textContent = (last && pick(last, "text")) || "(no text available)";
    }
    const origin = pick(rule, "origin");
    $("#rule-delete").hidden = origin !== "catalogue";
    if (origin === "file" || pick(rule, "read_only", "readonly")) {
      const edit = document.querySelector('a[href^="/editor/"]');
      edit.textContent = "Edit a copy";
      edit.title = "Rules declared in a file are read-only here; the editor saves a copy under a new name.";
    }
    if (rule.kind === "anomaly") { $("#anomaly-panel").hidden = false; anomaly(); }
  }

  async function loadPlan() {
    const plan = await api(`${path}/explain`).catch((e) => `explain failed: ${e.message}`);
    $("#rule-plan").textContent = typeof plan === "string" ? plan : pick(plan, "plan", "text", "explain") || JSON.stringify(plan, null, 2);
  }

  async function facts() {
    const m = await api(`${path}/metrics`).catch(() => ({}));
    const dl = $("#rule-facts");
    dl.replaceChildren();
    fact(dl, "Kind", rule.kind);
    fact(dl, "Stream", rule.stream);
    fact(dl, "Severity", rule.severity ? sev(rule.severity) : null);
    fact(dl, "Group by", pick(rule, "group_by", "group_keys"));
    fact(dl, "Notify", pick(rule, "notify"));
    fact(dl, "Declared in", pick(rule, "source", "file"));
    fact(dl, "Version", pick(rule, "version"));
    fact(dl, "Events in", num(pick(m, "events_in")));
    fact(dl, "Matches", num(pick(m, "matches")));
    fact(dl, "Last execution", pick(m, "last_execution", "last_execution_at") ? time(pick(m, "last_execution", "last_execution_at")) : "never");
    fact(dl, "Evaluation", `${ms(pick(m, "mean_ms", "mean_eval_ms"))} ms mean · ${ms(pick(m, "p99_ms", "p99_eval_ms"))} ms p99 · ${ms(pick(m, "max_ms", "max_eval_ms"))} ms max`);
    const rate = pick(m, "success_rate", "delivery_success_rate");
    if (rate !== undefined) fact(dl, "Deliveries", `${(rate * 100).toFixed(1)} % succeeded`);
    const st = pick(m, "state_bytes", "state_size");
    if (st !== undefined) fact(dl, "State", bytes(st));
    const errors = pick(m, "recent_errors", "errors") || [];
    if (errors.length) fact(dl, "Recent errors", el("ul", {}, errors.slice(-5).map((e) => el("li", { class: "error", text: typeof e === "string" ? e : pick(e, "message", "error") }))));
  }

  async function chart() {
    const until = new Date();
    const since = new Date(until.getTime() - 60 * 60000);
    const query = { rule: id, since: since.toISOString(), until: new Date(until.getTime() + 60000).toISOString(), bucket: "1m" };
    const summary = await api("/cep/events/summary", { query });
    const counts = {};
    for (const p of pick(summary, "series", "per_minute", "minutes") || []) {
      const t = cep.toDate(pick(p, "minute", "ts", "t", "bucket", "start"));
      if (!t) continue;
      const m = Math.floor(t.getTime() / 60000) * 60000;
      const bySev = pick(p, "by_severity", "severities", "counts");
      const n = bySev && typeof bySev === "object" ? Object.values(bySev).reduce((a, b) => a + b, 0) : pick(p, "count", "n", "matches") || 0;
      counts[m] = (counts[m] || 0) + n;
    }
    // A rule has one severity: its bars take that colour.
    const series = { [rule.severity || "medium"]: counts };
    const total = cep.chart.bars($("#chart-rule"), cep.chart.minutes(until.getTime(), 60), series,
      { order: [rule.severity || "medium"], label: `Matches of ${id} per minute` });
    $("#rchart-total").textContent = `${num(total)} in the last hour`;
  }

  async function alerts() {
    const rows = list(await api("/cep/events", { query: { rule: id, limit: 15 } }), "events", "alerts");
    const tbody = $("#rule-alerts").tBodies[0];
    if (!rows.length) return emptyRow(tbody, 5, "No alert from this rule yet.");
    tbody.replaceChildren(...rows.map((a) => el("tr", {},
      el("td", { class: "nowrap" }, el("a", { href: `/alerts/${encodeURIComponent(a.id)}` }, time(pick(a, "ts", "time", "emitted_at")))),
      el("td", {}, sev(a.severity)),
      el("td", { text: groupText(a) }),
      el("td", { class: "msg" }, cep.messageNode(a)),
      el("td", {}, outcomes(a)))));
  }

  async function anomaly() {
    const status = await api(`${path}/anomaly-status`);
    const groups = list(status, "groups");
    const tbody = $("#anomaly-table").tBodies[0];
    if (!groups.length) return emptyRow(tbody, 6, "No group has a baseline yet.");
    tbody.replaceChildren(...groups.map((g) => {
      const key = pick(g, "group", "key", "name");
      const label = typeof key === "object" ? Object.entries(key).map(([k, v]) => `${k}=${v}`).join(", ") : String(key ?? "(all)");
      const centre = pick(g, "mean", "median", "ema");
      const spread = pick(g, "std", "stddev");
      const q1 = pick(g, "q1"), q3 = pick(g, "q3");
      return el("tr", {},
        el("td", { text: label }),
        el("td", { class: "num", text: num(pick(g, "n", "count")) }),
        el("td", { class: "num", text: centre !== undefined ? `mean ${Number(centre).toFixed(3)}` : q1 !== undefined ? `q1 ${Number(q1).toFixed(3)}` : "–" }),
        el("td", { class: "num", text: spread !== undefined ? `std ${Number(spread).toFixed(3)}` : q3 !== undefined ? `q3 ${Number(q3).toFixed(3)}` : "–" }),
        el("td", { class: "num", text: pick(g, "last_score", "score") !== undefined ? Number(pick(g, "last_score", "score")).toFixed(2) : "–" }),
        el("td", {}, el("button", { type: "button", class: "danger", onclick: () => reset(key, label), text: "Reset" })));
    }));
  }

  async function reset(group, label) {
    const what = group === undefined ? "every group's baseline" : `the baseline of ${label}`;
    if (!confirm(`Reset ${what} for ${id}? The rule learns it again from the next events.`)) return;
    try {
      await api(`${path}/anomaly-reset`, { method: "POST", body: group === undefined ? {} : { group } });
      cep.toast(`Reset ${what}`);
      anomaly();
    } catch (e) {
      cep.toast(`Reset failed: ${e.message}`, true);
    }
  }
  $("#anomaly-reset-all").addEventListener("click", () => reset(undefined));

  $("#rule-trigger").addEventListener("click", async () => {
    try {
      const r = await api(`${path}/trigger`, { method: "POST", body: {} });
      const channels = pick(r, "channels") || [];
      cep.toast(channels.length ? `Test alert queued for ${channels.join(", ")}` : "This rule notifies no channel: nothing to send.");
    } catch (e) {
      cep.toast(`Test alert failed: ${e.message}`, true);
    }
  });
  $("#rule-delete").addEventListener("click", async () => {
    if (!confirm(`Delete rule ${id}? It stops at the next batch; its versions stay in the catalogue.`)) return;
    try {
      await api(path, { method: "DELETE" });
      location.href = "/rules";
    } catch (e) {
      cep.toast(`Delete failed: ${e.message}`, true);
    }
  });

  (async () => {
    try {
      await loadRule();
    } catch (e) {
      $("#rule-facts").replaceChildren(el("dt", { text: "Error" }), el("dd", { class: "error", text: e.status === 404 ? `No rule named ${id}.` : e.message }));
      cep.ready();
      return;
    }
    loadPlan();
    cep.poll(async () => {
      await Promise.all([facts(), chart(), alerts(), rule.kind === "anomaly" ? anomaly() : null]);
      cep.ready();
    }, EVERY_MS);
  })();
})();
