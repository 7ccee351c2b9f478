/* Rules: every rule with its numbers; sort by any column, search, enable/disable. */
"use strict";
(() => {
  const { el, $, api, pick, list, num, ms, bytes, time, toggleSwitch, dataTable } = cep;
  const EVERY_MS = 10000;

  /** One row per rule: the catalogue's description joined with its performance numbers. */
  function merge(rules, byId) {
    return list(rules, "rules").map((r) => {
      const id = pick(r, "id", "name");
      const p = byId.get(id) || {};
      const last = pick(p, "last_execution", "last_execution_at", "last_run", "last_ts") ?? pick(r, "last_execution");
      const enabled = pick(r, "enabled") ?? pick(p, "enabled") ?? true;
      return {
        id,
        title: pick(r, "title") || "",
        kind: pick(r, "kind") || "",
        stream: pick(r, "stream") || "",
        enabled,
        status: pick(r, "status") || (enabled ? "enabled" : "disabled"),
        origin: pick(r, "origin", "source_kind") || "",
        loaded: pick(r, "loaded") ?? true,
        last,
        last_ts: cep.toDate(last)?.getTime() ?? 0,
        matches: pick(p, "matches") ?? pick(r, "matches") ?? 0,
        mean_ms: pick(p, "mean_ms", "mean_eval_ms") ?? null,
        p99_ms: pick(p, "p99_ms", "p99_eval_ms") ?? null,
        state_bytes: pick(p, "state_bytes", "state_size") ?? null,
        severity: pick(r, "severity") || "",
      };
    });
  }

  function render(r) {
    const href = `/rules/${encodeURIComponent(r.id)}`;
    return el("tr", { class: r.enabled ? "" : "disabled", dataset: { rule: r.id } },
      el("td", {}, el("a", { href, "data-focus": `link:${r.id}`, text: r.id }), r.title ? el("div", { class: "muted small", text: r.title }) : null),
      el("td", {}, el("span", { class: "tag", text: r.kind })),
      el("td", { text: r.stream }),
      el("td", { class: "nowrap" }, toggleSwitchFor(r),
        r.enabled && !r.loaded ? el("span", { class: "tag error", title: "Enabled but not part of the running program (see the health banner)", text: "not running" }) : null),
      el("td", { class: "nowrap" }, r.last ? time(r.last) : el("span", { class: "muted", text: "never" })),
      el("td", { class: "num", text: num(r.matches) }),
      el("td", { class: "num", text: ms(r.mean_ms) }),
      el("td", { class: "num", text: ms(r.p99_ms) }),
      el("td", { class: "num", text: r.state_bytes === null ? "–" : bytes(r.state_bytes) }));
  }

  function toggleSwitchFor(r) {
    const sw = toggleSwitch(r.enabled, `${r.enabled ? "Disable" : "Enable"} rule ${r.id}`, async (next) => {
      await api(`/cep/rules/${encodeURIComponent(r.id)}/toggle`, { method: "PATCH", body: { enabled: next } });
      r.enabled = next;
      sw.closest("tr").classList.toggle("disabled", !next);
      sw.setAttribute("aria-label", `${next ? "Disable" : "Enable"} rule ${r.id}`);
      cep.toast(`${r.id} ${next ? "enabled" : "disabled"}`);
    });
    sw.dataset.focus = `toggle:${r.id}`;
    return sw;
  }

  const table = dataTable($("#rules-table"), {
    render,
    key: (r, k) => r[k],
    filter: (r, q) => `${r.id} ${r.title} ${r.kind} ${r.stream} ${r.severity} ${r.enabled ? "enabled" : "disabled"}`.toLowerCase().includes(q),
    initialSort: { key: "name", dir: 1 },
    onRender: (shown, all) => {
      const on = all.filter((r) => r.enabled).length;
      $("#rule-count").textContent = `${shown.length === all.length ? all.length : `${shown.length} of ${all.length}`} rules · ${on} enabled`;
    },
  });
  const search = $("#rule-search");
  const fromUrl = new URLSearchParams(location.search).get("q");
  if (fromUrl) { search.value = fromUrl; table.search(fromUrl); }
  search.addEventListener("input", () => table.search(search.value));

  cep.poll(async () => {
    // A click on a switch in flight must not be undone by a redraw from older numbers.
    if (document.querySelector(".switch:disabled")) return;
    const { rules, numbers } = await cep.ruleNumbers();
    const rows = merge(rules, numbers);
    for (const r of rows) r.name = r.id;
    table.set(rows);
    cep.ready();
  }, EVERY_MS);
})();
