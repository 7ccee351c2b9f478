/* Streams: rate, watermark, lag behind the wall clock, late rows, dead letters; recent events. */
"use strict";
(() => {
  const { el, $, api, pick, list, num, time, duration, emptyRow } = cep;
  const EVERY_MS = 5000;
  const tbody = $("#streams-table").tBodies[0];
  const picker = $("#recent-stream");
  const lastSeen = {}; // stream → {events, at}: a rate when the API gives only counts

  function rate(s) {
    const given = pick(s, "events_per_s", "events_per_second", "rate");
    const events = pick(s, "events_in", "events", "rows");
    const now = Date.now();
    const before = lastSeen[s.name];
    if (typeof events === "number") lastSeen[s.name] = { events, at: now };
    if (typeof given === "number") return given;
    if (before && typeof events === "number" && now > before.at) return Math.max(0, (events - before.events) / ((now - before.at) / 1000));
    return null;
  }

  function sourceCell(s) {
    const src = pick(s, "source", "sources");
    const err = pick(s, "last_error", "error") || (src && typeof src === "object" && !Array.isArray(src) ? pick(src, "last_error", "error") : null);
    const label = typeof src === "string" ? src : Array.isArray(src) ? src.map((x) => (typeof x === "string" ? x : pick(x, "name", "spec"))).join(", ") : src ? pick(src, "spec", "name", "kind") || "" : "";
    return el("td", {}, label, err ? el("div", { class: "error small", text: `error: ${err}` }) : null);
  }

  function row(s) {
    const r = rate(s);
    const lag = pick(s, "lag_s", "lag_seconds", "lag");
    const dead = pick(s, "dead_letters", "dead") ?? 0;
    const late = pick(s, "late_rows", "late") ?? 0;
    return el("tr", { dataset: { stream: s.name } },
      el("th", { scope: "row" }, s.name),
      el("td", { class: "num", text: r === null ? "–" : r >= 10 ? r.toFixed(0) : r.toFixed(1) }),
      el("td", { class: "num", text: num(pick(s, "events_in", "events", "rows")) }),
      el("td", { class: "nowrap" }, time(pick(s, "watermark", "watermark_at"))),
      el("td", { class: "num", text: duration(lag) }),
      el("td", { class: `num${late ? " error" : ""}`, text: num(late) }),
      el("td", { class: `num${dead ? " error" : ""}`, text: num(dead) }),
      sourceCell(s));
  }

  async function recent() {
    const name = picker.value;
    if (!name) return;
    const data = await api(`/cep/streams/${encodeURIComponent(name)}/recent`, { query: { n: 20 } });
    const rows = list(data, "events");
    $("#recent-events").textContent = rows.length ? rows.map((e) => JSON.stringify(e)).join("\n") : "No event seen on this stream yet.";
  }
  picker.addEventListener("change", () => recent().catch((e) => cep.toast(e.message, true)));

  cep.poll(async () => {
    const streams = list(await api("/cep/streams"), "streams");
    if (!streams.length) emptyRow(tbody, 8, "No stream declared.");
    else tbody.replaceChildren(...streams.map(row));
    const names = streams.map((s) => s.name);
    if (picker.options.length !== names.length) {
      const keep = picker.value;
      picker.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
      if (names.includes(keep)) picker.value = keep;
    }
    await recent();
    cep.ready();
  }, EVERY_MS);
})();
