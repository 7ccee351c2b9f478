/* One alert: its facts, the message each channel got, every delivery attempt, the record. */
"use strict";
(() => {
  const { el, $, api, pick, list, time, sev, outcomes, outcomeClass, groupText, emptyRow } = cep;
  const id = document.body.dataset.alertId;

  function fact(dl, name, value) {
    if (value === undefined || value === null || value === "") return;
    dl.append(el("dt", { text: name }), el("dd", {}, value instanceof Node ? value : String(value)));
  }

  /** [{channel, text}] from `messages` as a map or a list. */
  function messages(a) {
    const raw = pick(a, "messages", "rendered") || {};
    if (typeof raw === "string") return [{ channel: "message", text: raw }];
    if (Array.isArray(raw)) return raw.map((m) => ({ channel: pick(m, "channel", "name") || "", text: pick(m, "text", "message", "body") || JSON.stringify(m) }));
    return Object.entries(raw).map(([channel, m]) => ({ channel, text: typeof m === "string" ? m : pick(m, "text", "message", "body") || JSON.stringify(m, null, 2) }));
  }

  /** Delivery attempts as rows, from `attempts` (flat) or per-channel `deliveries`. */
  function attempts(a) {
    const flat = pick(a, "attempts");
    if (Array.isArray(flat)) return flat;
    const out = [];
    const per = pick(a, "deliveries", "delivery") || {};
    const entries = Array.isArray(per) ? per.map((d) => [pick(d, "channel", "name"), d]) : Object.entries(per);
    for (const [channel, d] of entries) {
      const inner = d && Array.isArray(d.attempts) ? d.attempts : [d];
      inner.forEach((x, i) => out.push({ channel, attempt: pick(x, "attempt", "n") ?? i + 1, ...x }));
    }
    return out;
  }

  async function load() {
    const a = await api(`/cep/events/${encodeURIComponent(id)}`);
    const dl = $("#alert-facts");
    dl.replaceChildren();
    fact(dl, "Rule", el("a", { href: `/rules/${encodeURIComponent(a.rule)}`, text: a.rule }));
    fact(dl, "Severity", sev(a.severity));
    fact(dl, "Event time", time(pick(a, "ts", "time")));
    fact(dl, "Emitted", pick(a, "emitted_at", "emitted") ? time(pick(a, "emitted_at", "emitted")) : null);
    fact(dl, "Group", groupText(a) || null);
    fact(dl, "Notification key", pick(a, "key", "dedup_key", "idempotency_key"));
    fact(dl, "Delivery", outcomes(a));
    if (a.silenced) fact(dl, "Silenced", typeof a.silenced === "string" ? `by ${a.silenced}` : "yes");
    if (a.test) fact(dl, "Test", "sent by a manual trigger");
    dl.append(el("dt", {}, "Actions"), el("dd", {}, el("button", { type: "button", class: "danger", onclick: remove, text: "Delete this alert" })));

    const msgs = messages(a);
    $("#alert-messages").replaceChildren(...(msgs.length ? msgs.map((m) => el("div", { class: "message" }, el("h3", { text: m.channel }), el("pre", { text: m.text })))
      : [el("p", { class: "muted", text: "No message was rendered (the rule has no channel, or it was silenced)." })]));

    const rows = attempts(a);
    const tbody = $("#alert-attempts").tBodies[0];
    if (!rows.length) emptyRow(tbody, 5, "No delivery attempt recorded.");
    else {
      tbody.replaceChildren(...rows.map((x) => {
        const outcome = pick(x, "outcome", "status", "state") || "pending";
        return el("tr", {},
          el("td", { class: "nowrap" }, time(pick(x, "at", "ts", "time", "attempted_at", "updated_at"))),
          el("td", { text: x.channel || "" }),
          el("td", { class: "num", text: String(x.attempt ?? "") }),
          el("td", {}, el("span", { class: `outcome ${outcomeClass(outcome)}`, text: outcome })),
          el("td", { class: "msg", text: pick(x, "error", "detail", "last_error", "response") || "" }));
      }));
    }
    $("#alert-record").textContent = JSON.stringify(pick(a, "record") || a, null, 2);
  }

  async function remove() {
    if (!confirm(`Delete alert ${id} from the history? Deliveries already sent are not recalled.`)) return;
    try {
      await api(`/cep/events/${encodeURIComponent(id)}`, { method: "DELETE" });
      location.href = "/alerts";
    } catch (e) {
      cep.toast(`Delete failed: ${e.message}`, true);
    }
  }

  cep.poll(async () => {
    try {
      await load();
    } catch (e) {
      if (e.status !== 404) throw e;
      $("#alert-facts").replaceChildren(el("dt", { text: "Not found" }), el("dd", { text: `No alert ${id} in the history (deleted, or older than the retention).` }));
    }
    cep.ready();
  }, 10000);
})();
