/* The console's script layer: an API client, live polling, the degraded banner,
   formatting, sortable tables and keyboard navigation.  Pages add one small script
   each.  Data only ever enters the page as text nodes (never innerHTML), so an alert
   message or a rule title cannot inject markup. */
"use strict";

const cep = (() => {
  const TOKEN_KEY = "cep.token";
  const SEVERITIES = ["critical", "high", "medium", "low", "info"];
  const body = document.body;

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function emptyRow(tbody, cols, text) {
    tbody.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: cols, text })));
  }

  let toastTimer = null;
  function toast(text, bad) {
    let node = $("#toast");
    if (!node) {
      node = el("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
      document.body.append(node);
    }
    node.textContent = text;
    node.classList.toggle("bad", !!bad);
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, bad ? 8000 : 4000);
  }

  // ------------------------------------------------------------------ token
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  let asking = null;
  /** Ask for the token once; concurrent callers wait on the same dialog. */
  function askToken(message) {
    if (asking) return asking;
    const dialog = $("#token-dialog");
    const input = $("#token-input");
    const err = $("#token-error");
    err.hidden = !message;
    err.textContent = message || "";
    input.value = "";
    asking = new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        asking = null;
        if (dialog.returnValue === "ok" && input.value) {
          sessionStorage.setItem(TOKEN_KEY, input.value);
          resolve(true);
        } else resolve(false);
        input.value = "";
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
    return asking;
  }

  // ------------------------------------------------------------------ API client
  class ApiError extends Error {
    constructor(status, body, path) {
      // The API answers errors as {"error": {"code", "message", "diagnostics"?}}.
      const inner = body && typeof body === "object" ? (typeof body.error === "object" && body.error ? body.error : body) : null;
      const detail = inner ? (inner.message || inner.detail || inner.error || inner.code) : body;
      super(typeof detail === "string" && detail ? detail : `HTTP ${status} on ${path}`);
      this.code = inner && inner.code;
      this.diagnostics = (inner && inner.diagnostics) || null;
      this.status = status;
      this.body = body;
    }
  }

  function qs(query) {
    if (!query) return "";
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === null || v === undefined || v === "") continue;
      p.set(k, v);
    }
    const s = p.toString();
    return s ? `?${s}` : "";
  }

  /** Call a documented API route.  Every call carries `X-CEP-Request: 1` (the server's
      cross-site guard when no token is set) and, when one is kept, the bearer token.  A
      401 asks for the token once and retries. */
  async function api(path, opts = {}) {
    const method = (opts.method || "GET").toUpperCase();
    const headers = { "X-CEP-Request": "1", Accept: "application/json" };
    let payload;
    if (opts.text !== undefined) {
      headers["Content-Type"] = opts.contentType || "text/plain";
      payload = opts.text;
    } else if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(opts.body);
    }
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const url = path + qs(opts.query);
    const resp = await fetch(url, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
    if (resp.status === 401 && !opts.retried) {
      if (t) sessionStorage.removeItem(TOKEN_KEY);
      const ok = await askToken(t ? "That token was refused. Try again." : "This action needs the API token.");
      if (ok) return api(path, { ...opts, retried: true });
    }
    const type = resp.headers.get("Content-Type") || "";
    const data = resp.status === 204 ? null : type.includes("json") ? await resp.json().catch(() => null) : await resp.text();
    if (!resp.ok && !(opts.accept || []).includes(resp.status)) throw new ApiError(resp.status, data, path);
    if (opts.withStatus) return { status: resp.status, data };
    return data;
  }

  /** The first of `names` that `obj` has (not null): the console reads a few spellings
      where the API's field names are young, and one place says which. */
  function pick(obj, ...names) {
    if (!obj) return undefined;
    for (const n of names) if (obj[n] !== undefined && obj[n] !== null) return obj[n];
    return undefined;
  }
  /** A list from a response that is a list or wraps one (`items`, `events`, ...). */
  function list(data, ...names) {
    if (Array.isArray(data)) return data;
    for (const n of [...names, "items", "data", "results"]) if (data && Array.isArray(data[n])) return data[n];
    if (data && typeof data === "object") {
      // {name: {...}} maps become [{name, ...}]
      const vals = Object.entries(data);
      if (vals.length && vals.every(([, v]) => v && typeof v === "object" && !Array.isArray(v))) {
        return vals.map(([k, v]) => ({ name: k, ...v }));
      }
    }
    return [];
  }

  /** Per-rule numbers for every rule in one read: `/cep/stats` (the engine's own
      counters, O(rules)).  `/cep/rules/performance` gives the same fields but costs a
      full engine read per rule (over a minute at 1,000 rules), so tables use this.
      Last execution = when the rule's stream last delivered rows (what the API's
      performance route reports too), from the stream's idle time. */
  async function ruleNumbers({ withRules = true } = {}) {
    const [stats, rules] = await Promise.all([api("/cep/stats"), withRules ? api("/cep/rules") : []]);
    const at = Date.now();
    const streams = stats.streams || {};
    const out = new Map();
    const streamOf = new Map(list(rules, "rules").map((r) => [r.id, r.stream]));
    for (const [id, r] of Object.entries(stats.rules || {})) {
      const st = streams[streamOf.get(id)] || {};
      const idle = st.idle_s;
      out.set(id, {
        id,
        events_in: r.events_in, matches: r.matches, batches: r.batches,
        mean_ms: r.batches ? r.mean_eval_ms : null, p99_ms: r.batches ? r.p99_eval_ms : null, state_bytes: r.state_bytes,
        last_execution: r.batches && typeof idle === "number" ? new Date(at - idle * 1000).toISOString() : null,
      });
    }
    return { rules, numbers: out };
  }

  // ------------------------------------------------------------------ formatting
  const nf = new Intl.NumberFormat();
  function num(v) { return v === null || v === undefined || Number.isNaN(v) ? "–" : nf.format(v); }
  function ms(v) {
    if (v === null || v === undefined || Number.isNaN(Number(v))) return "–";
    v = Number(v);
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
  }
  function bytes(v) {
    if (v === null || v === undefined) return "–";
    const units = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${i ? v.toFixed(1) : v} ${units[i]}`;
  }
  function toDate(v) {
    if (v === null || v === undefined || v === "") return null;
    const d = typeof v === "number" ? new Date(v > 1e14 ? v / 1000 : v > 1e11 ? v : v * 1000) : new Date(v);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  const pad = (n) => String(n).padStart(2, "0");
  /** Local time, with the date when it is not today; the full RFC 3339 value goes in a tooltip. */
  function time(v, withSeconds = true) {
    const d = toDate(v);
    if (!d) return el("span", { class: "muted", text: "–" });
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    let text = `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? ":" + pad(d.getSeconds()) : ""}`;
    if (!sameDay) text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${text}`;
    return el("time", { datetime: d.toISOString(), title: d.toISOString(), text });
  }
  function ago(v) {
    const d = toDate(v);
    if (!d) return "never";
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 2) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "–";
    const s = Math.abs(Number(seconds));
    if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
    if (s < 120) return `${s.toFixed(1)} s`;
    if (s < 7200) return `${(s / 60).toFixed(1)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function sev(s) {
    const name = SEVERITIES.includes(s) || s === "other" ? s : "info";
    return el("span", { class: `sev sev-${name}`, text: s || "info" });
  }

  // The history's list entries name an alert's channels but carry neither the rendered
  // message nor the delivery outcomes: those are in the alert's own record
  // (`/cep/events/{id}`), fetched for the rows on screen, a few at a time.  Records
  // whose deliveries are final are kept; pending ones are asked again on the next poll.
  const details = new Map(); // id → Promise<detail>
  const detailQueue = [];
  let detailActive = 0;
  function pumpDetails() {
    while (detailActive < 4 && detailQueue.length) {
      const job = detailQueue.shift();
      detailActive++;
      api(`/cep/events/${encodeURIComponent(job.id)}`)
        .then((d) => {
          const final = deliveries(d).every((x) => ["sent", "failed", "skipped"].includes(outcomeClass(x.outcome)));
          if (!final) details.delete(job.id);
          job.resolve(d);
        })
        .catch((e) => { details.delete(job.id); job.reject(e); })
        .finally(() => { detailActive--; pumpDetails(); });
    }
  }
  function alertDetail(id) {
    if (!details.has(id)) {
      details.set(id, new Promise((resolve, reject) => { detailQueue.push({ id, resolve, reject }); pumpDetails(); }));
    }
    return details.get(id);
  }
  const needsDetail = (a) => !a.deliveries && !a.messages && !a.message && (a.channels || []).length > 0;

  /** Delivery outcome per channel, as words (and marks). */
  function outcomes(alert) {
    const wrap = el("span", { class: "outcomes", dataset: { alert: alert.id } });
    if (needsDetail(alert)) {
      fillOutcomes(wrap, { ...alert, deliveries: alert.channels.map((c) => ({ channel: c, outcome: "…" })) });
      alertDetail(alert.id).then((d) => fillOutcomes(wrap, d), () => {});
      return wrap;
    }
    return fillOutcomes(wrap, alert);
  }

  /** The rendered message of an alert, as a node that fills in when the record arrives. */
  function messageNode(alert) {
    const span = el("span", { class: "message-text" }, messageOf(alert));
    if (needsDetail(alert)) alertDetail(alert.id).then((d) => { span.textContent = messageOf(d); }, () => {});
    else if (!messageOf(alert) && !(alert.channels || []).length) {
      span.append(el("span", { class: "muted", text: summaryOf(alert) }));
    }
    return span;
  }

  /** A rule without channels renders no message: show the record's own fields instead. */
  function summaryOf(alert) {
    const r = alert.record || {};
    const skip = new Set(["rule", "ts", "severity", "title"]);
    return Object.entries(r).filter(([k]) => !skip.has(k)).slice(0, 6)
      .map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : v}`).join(" ");
  }

  function fillOutcomes(wrap, alert) {
    wrap.replaceChildren();
    const list = deliveries(alert);
    if (!list.length) {
      const why = alert.silenced ? "silenced" : alert.throttled ? "throttled" : "no channel";
      wrap.append(el("span", { class: `outcome ${alert.silenced ? "silenced" : alert.throttled ? "throttled" : "none"}`, text: why }));
      return wrap;
    }
    for (const d of list) {
      const state = outcomeClass(d.outcome);
      wrap.append(el("span", { class: `outcome ${state}`, title: d.detail || d.outcome, text: `${d.channel}: ${d.outcome ?? "not enqueued"}` }));
    }
    return wrap;
  }
  function outcomeClass(o) {
    o = String(o || "").toLowerCase();
    if (["sent", "delivered", "ok", "success", "test"].includes(o)) return "sent";
    if (["failed", "dead", "error", "refused", "gave_up"].includes(o)) return "failed";
    if (["silenced", "throttled", "skipped"].includes(o)) return o;
    return "pending";
  }
  /** `deliveries` (or `channels`) of an alert as [{channel, outcome, detail}], whichever
      of the list/object shapes the history returns. */
  function deliveries(alert) {
    const raw = alert.deliveries ?? alert.delivery ?? [];
    if (Array.isArray(raw)) {
      return raw.map((d) => typeof d === "string" ? { channel: d, outcome: "pending" }
        : { channel: d.channel ?? d.name, outcome: d.outcome ?? d.status ?? d.state ?? "pending", detail: d.error ?? d.detail ?? d.last_error });
    }
    return Object.entries(raw).map(([channel, d]) => typeof d === "string" ? { channel, outcome: d }
      : { channel, outcome: d.outcome ?? d.status ?? d.state ?? "pending", detail: d.error ?? d.detail ?? d.last_error });
  }

  /** The rendered message of an alert (the first channel's, when there are several). */
  function messageOf(a) {
    const m = pick(a, "message", "text", "rendered");
    if (typeof m === "string") return m;
    const msgs = pick(a, "messages");
    if (Array.isArray(msgs)) return msgs.length ? (pick(msgs[0], "text", "message", "body") || "") : "";
    if (msgs && typeof msgs === "object") {
      const first = Object.values(msgs)[0];
      return typeof first === "string" ? first : (pick(first, "text", "message", "body") || "");
    }
    return "";
  }

  function groupText(alert) {
    const g = alert.group ?? alert.group_key ?? alert.group_keys;
    if (g === null || g === undefined || g === "") return "";
    if (typeof g === "object") return Object.entries(g).map(([k, v]) => `${k}=${v}`).join(", ");
    return String(g);
  }

  // ------------------------------------------------------------------ live polling
  const live = $("#live");
  const liveText = $("#live-text");
  let lastOk = null;
  function markLive(ok, note) {
    if (ok) lastOk = Date.now();
    live.classList.toggle("ok", ok);
    live.classList.toggle("down", !ok);
    live.classList.remove("stale");
    liveText.textContent = ok ? `live · updated ${new Date().toLocaleTimeString()}` : (note || "server unreachable");
  }
  setInterval(() => {
    if (lastOk && Date.now() - lastOk > 30000) { live.classList.add("stale"); live.classList.remove("ok"); }
  }, 5000);

  /** Run `fn` now and every `every` ms (≤ 15 s, the console's freshness promise);
      paused while the tab is hidden, resumed at once when it shows again. */
  function poll(fn, every = 5000) {
    let timer = null;
    let running = false;
    async function tick() {
      clearTimeout(timer);
      if (running) return;
      running = true;
      try {
        await fn();
        markLive(true);
      } catch (e) {
        console.error(e);
        markLive(false, e.status ? `error ${e.status}: ${e.message}` : "server unreachable");
      } finally {
        running = false;
        if (!document.hidden) timer = setTimeout(tick, every);
      }
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
    tick();
    return { now: tick };
  }

  // ------------------------------------------------------------------ degraded banner
  /** What to do about a reason `/cep/health` gives (its reasons are sentences that
      start with what they are about). */
  const REMEDIES = [
    [/^state store|redis/i, "The engine keeps running with its state in memory. Start Redis again (or fix --state); the state is written back as soon as it answers."],
    [/^source /i, "Check what its --source names: the file must exist, the Redis stream or URL must be reachable. The engine retries by itself and catches up."],
    [/reload.*refused|refused.*reload/i, "The previous rules keep running. Fix the rule file (`cep check FILE` lists every error) and save it again; it reloads on its own."],
    [/^channel .*circuit breaker/i, "Deliveries to that channel are paused after repeated failures. Check its endpoint or credentials, then send a test from the Channels page."],
    [/notification worker/i, "Alerts are stored but not sent. Restart `cep serve`; queued notifications are delivered from the outbox."],
    [/no program is loaded/i, "Start `cep serve` with a rule file, or create a rule in the Editor."],
    [/^engine: /i, "See the server's log for the full error."],
  ];

  /** What is wrong, each with what to do about it, from `/cep/health`. */
  function degradedReasons(h) {
    if (!h || typeof h !== "object") return [];
    const out = [];
    for (const r of h.reasons || []) {
      const what = typeof r === "string" ? r : r.message || r.reason || JSON.stringify(r);
      const remedy = REMEDIES.find(([re]) => re.test(what));
      let todo = remedy ? remedy[1] : "";
      if (/reload/i.test(what) && h.last_reload && (h.last_reload.diagnostics || []).length) {
        const d = h.last_reload.diagnostics[0];
        todo = `${d.file}:${d.line}:${d.col}: ${d.message}. ${todo}`;
      }
      out.push({ what: what.charAt(0).toUpperCase() + what.slice(1), todo });
    }
    if (!out.length && (h.degraded || h.status === "degraded")) {
      out.push({ what: h.reason || "The engine reports itself degraded.", todo: "See /cep/health for the details." });
    }
    return out;
  }

  function showBanner(reasons, kind) {
    const banner = $("#banner");
    if (!reasons.length) { banner.hidden = true; banner.replaceChildren(); return; }
    banner.className = `banner${kind === "bad" ? " bad" : ""}`;
    banner.replaceChildren(
      el("strong", { text: kind === "bad" ? "The console cannot reach the server" : "Degraded: the engine runs, but something needs attention" }),
      el("ul", {}, reasons.map((r) => el("li", {}, r.what, r.todo ? el("span", { class: "todo" }, el("b", { text: "What to do: " }), r.todo) : null))),
    );
    banner.hidden = false;
  }

  async function checkHealth() {
    try {
      const { data } = await api("/cep/health", { withStatus: true, accept: [503] });
      showBanner(degradedReasons(data));
      body.dataset.health = degradedReasons(data).length ? "degraded" : "ok";
    } catch (e) {
      if (e.status) return; // an error answer is shown by the page's own poll
      showBanner([{ what: "No answer from cep serve.", todo: "Is the process still running? The page retries every 10 s." }], "bad");
      body.dataset.health = "down";
    }
  }

  // ------------------------------------------------------------------ sortable, searchable tables
  /** A table whose rows are data objects: headers with `data-sort` sort it (click or
      Enter/Space on the header button), `filter` narrows it.  The first rows go in at
      once and the rest in chunks between frames: a thousand rows took ~0.45 s to build on
      a loaded machine, with nothing on screen meanwhile; now the top of the table shows
      first and the page never freezes. A newer draw abandons an older one's chunks. */
  const FIRST_ROWS = 120, CHUNK_ROWS = 1000; // few chunks: each one lays the whole table out again
  const collator = new Intl.Collator(undefined, { numeric: true }); // one collator, not one per comparison
  function dataTable(table, { render, key, filter, initialSort, onRender }) {
    const tbody = table.tBodies[0];
    const cols = table.tHead.rows[0].cells.length;
    let rows = [];
    let sortKey = initialSort?.key || null;
    let sortDir = initialSort?.dir || 1;
    let query = "";
    let generation = 0;
    function value(r, k) { const v = key(r, k); return v === null || v === undefined ? "" : v; }
    function draw() {
      const mine = ++generation;
      let shown = query ? rows.filter((r) => filter(r, query)) : rows.slice();
      if (sortKey) {
        shown.sort((a, b) => {
          const x = value(a, sortKey), y = value(b, sortKey);
          const c = typeof x === "number" && typeof y === "number" ? x - y : collator.compare(String(x), String(y));
          return c * sortDir;
        });
      }
      // A redraw must not steal the keyboard focus from a row's link or switch.
      let focused = tbody.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
      const refocus = () => {
        const again = focused && tbody.querySelector(`[data-focus="${CSS.escape(focused)}"]`);
        if (again) { again.focus(); focused = null; }
      };
      if (!shown.length) {
        emptyRow(tbody, cols, rows.length ? "Nothing matches the search." : "Nothing here yet.");
        table.dataset.complete = "1";
      } else {
        const frag = document.createDocumentFragment();
        for (const r of shown.slice(0, FIRST_ROWS)) frag.append(render(r));
        tbody.replaceChildren(frag);
        let next = FIRST_ROWS;
        const more = () => {
          if (mine !== generation || next >= shown.length) return;
          const part = document.createDocumentFragment();
          for (const r of shown.slice(next, next + CHUNK_ROWS)) part.append(render(r));
          tbody.append(part);
          next += CHUNK_ROWS;
          refocus();
          if (next < shown.length) setTimeout(more, 0);
          else table.dataset.complete = "1";
        };
        table.dataset.complete = shown.length <= FIRST_ROWS ? "1" : "";
        if (shown.length > FIRST_ROWS) setTimeout(more, 0);
      }
      refocus();
      onRender && onRender(shown, rows);
    }
    for (const th of table.tHead.rows[0].cells) {
      const k = th.dataset.sort;
      const btn = th.querySelector("button");
      if (!k || !btn) continue;
      btn.addEventListener("click", () => {
        sortDir = sortKey === k ? -sortDir : (th.classList.contains("num") ? -1 : 1);
        sortKey = k;
        for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", sortDir === 1 ? "ascending" : "descending");
        draw();
      });
    }
    return {
      set(newRows) { rows = newRows; draw(); },
      search(q) { query = q.trim().toLowerCase(); draw(); },
      get rows() { return rows; },
    };
  }

  // ------------------------------------------------------------------ switches
  /** An on/off switch (role=switch) that calls `change(next)`; stays as it was if the call fails. */
  function toggleSwitch(on, label, change) {
    const btn = el("button", { type: "button", class: "switch", role: "switch", "aria-checked": String(!!on), "aria-label": label },
      el("span", { class: "track", "aria-hidden": "true" }), el("span", { class: "label", text: on ? "enabled" : "disabled" }));
    btn.addEventListener("click", async () => {
      const next = btn.getAttribute("aria-checked") !== "true";
      btn.disabled = true;
      try {
        await change(next);
        btn.setAttribute("aria-checked", String(next));
        btn.querySelector(".label").textContent = next ? "enabled" : "disabled";
      } catch (e) {
        toast(`Could not ${next ? "enable" : "disable"}: ${e.message}`, true);
      } finally {
        btn.disabled = false;
        btn.focus();
      }
    });
    return btn;
  }

  // ------------------------------------------------------------------ keyboard
  const pages = {};
  for (const a of $$(".nav a[data-key]")) pages[a.dataset.key] = a.getAttribute("href");
  let gPressed = 0;
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/") {
      const search = $("[data-search]");
      if (search) { e.preventDefault(); search.focus(); search.select && search.select(); }
    } else if (e.key === "?") {
      $("#help-dialog").showModal();
    } else if (e.key === "g") {
      gPressed = Date.now();
    } else if (gPressed && Date.now() - gPressed < 1500 && pages[e.key]) {
      location.href = pages[e.key];
    } else gPressed = 0;
  });

  // ------------------------------------------------------------------ start
  if (body.dataset.tokenRequired === "1" && !token()) {
    // Asked once per tab, before the first change; reads may still work without it.
    setTimeout(() => askToken(), 0);
  }
  checkHealth();
  setInterval(() => { if (!document.hidden) checkHealth(); }, 10000);

  /** Pages set this when their first data is on screen (tests and the bench wait on it). */
  function ready() {
    if (body.dataset.ready === "1") return;
    body.dataset.ready = "1";
    body.dataset.readyMs = String(Math.round(performance.now())); // since navigation start
  }

  return {
    SEVERITIES, el, $, $$, pick, list, ruleNumbers, emptyRow, toast, api, ApiError, qs, num, ms, bytes, time, ago, duration, toDate,
    sev, outcomes, outcomeClass, deliveries, groupText, messageOf, messageNode, alertDetail, poll, dataTable, toggleSwitch, degradedReasons,
    checkHealth, ready, token, askToken,
  };
})();
