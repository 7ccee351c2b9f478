/* Alerts: recent alerts with filters (rule, severity, time); the address keeps the filters. */
"use strict";
(() => {
  const { el, $, api, pick, list, time, sev, outcomes, groupText, messageOf, emptyRow } = cep;
  const EVERY_MS = 10000;
  const PAGE = 50;
  const form = $("#alert-filters");
  const tbody = $("#alerts-table").tBodies[0];
  const more = $("#alerts-more");
  let cursor = null;
  let pages = 1;
  const RANGES = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };

  function localInput(d) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** Form → the API's query (times as RFC 3339 UTC). */
  function query() {
    const f = new FormData(form);
    const q = { rule: f.get("rule")?.trim(), severity: f.get("severity"), limit: PAGE };
    const range = f.get("range");
    if (RANGES[range]) q.since = new Date(Date.now() - RANGES[range]).toISOString();
    if (range === "custom") {
      if (f.get("since")) q.since = new Date(f.get("since")).toISOString();
      if (f.get("until")) q.until = new Date(f.get("until")).toISOString();
    }
    return q;
  }

  function syncUrl() {
    const f = new FormData(form);
    const p = new URLSearchParams();
    for (const k of ["rule", "severity", "range", "since", "until"]) if (f.get(k)) p.set(k, f.get(k));
    history.replaceState(null, "", p.toString() ? `?${p}` : location.pathname);
  }

  function fromUrl() {
    const p = new URLSearchParams(location.search);
    for (const k of ["rule", "severity", "range", "since", "until"]) if (p.get(k) && form.elements[k]) form.elements[k].value = p.get(k);
    showCustom();
  }

  function showCustom() {
    const custom = form.elements.range.value === "custom";
    for (const l of form.querySelectorAll(".custom-range")) l.hidden = !custom;
    if (custom && !form.elements.since.value) form.elements.since.value = localInput(new Date(Date.now() - 3600e3));
  }

  function row(a) {
    const href = `/alerts/${encodeURIComponent(a.id)}`;
    const flags = [];
    if (a.silenced) flags.push(el("span", { class: "tag", title: typeof a.silenced === "string" ? `silenced by ${a.silenced}` : "silenced", text: "silenced" }));
    if (a.throttled) flags.push(el("span", { class: "tag", text: "throttled" }));
    if (a.test) flags.push(el("span", { class: "tag", text: "test" }));
    return el("tr", { dataset: { alert: a.id, rule: a.rule } },
      el("td", { class: "nowrap" }, el("a", { href, "data-focus": `a:${a.id}`, "aria-label": `Alert ${a.id} of ${a.rule}` }, time(pick(a, "ts", "time", "emitted_at")))),
      el("td", {}, sev(a.severity)),
      el("td", {}, el("a", { href: `/rules/${encodeURIComponent(a.rule)}`, text: a.rule })),
      el("td", { text: groupText(a) }),
      el("td", { class: "msg" }, cep.messageNode(a), " ", flags),
      el("td", {}, outcomes(a)));
  }

  async function load(append) {
    const q = query();
    if (append && cursor) q.cursor = cursor;
    const data = await api("/cep/events", { query: q });
    const rows = list(data, "events", "alerts");
    cursor = pick(data, "next_cursor", "cursor", "next") || null;
    if (!append) {
      if (!rows.length) emptyRow(tbody, 6, "No alert matches these filters.");
      else tbody.replaceChildren(...rows.map(row));
    } else tbody.append(...rows.map(row));
    more.hidden = !cursor;
    const shown = tbody.querySelectorAll("tr[data-alert]").length;
    const total = pick(data, "total", "count");
    $("#alert-count").textContent = `${shown}${typeof total === "number" ? ` of ${total}` : ""} alerts shown${cursor ? " (more below)" : ""}`;
  }

  async function ruleNames() {
    const rules = list(await api("/cep/rules").catch(() => []), "rules");
    $("#rule-names").replaceChildren(...rules.map((r) => el("option", { value: pick(r, "id", "name") })));
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    pages = 1;
    syncUrl();
    load(false).catch((err) => cep.toast(err.message, true));
  });
  form.addEventListener("reset", () => setTimeout(() => { showCustom(); form.requestSubmit(); }, 0));
  form.elements.range.addEventListener("change", showCustom);
  form.elements.severity.addEventListener("change", () => form.requestSubmit());
  more.addEventListener("click", () => { pages++; load(true).catch((err) => cep.toast(err.message, true)); });

  fromUrl();
  ruleNames();
  cep.poll(async () => {
    // Refresh only while the user looks at the newest page: paging must not jump.
    if (pages === 1 && !form.contains(document.activeElement)) await load(false);
    else if (pages === 1 && tbody.querySelector("tr.empty")) await load(false);
    cep.ready();
  }, EVERY_MS);
})();
