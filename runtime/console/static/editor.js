/* Editor: rule text with diagnostics as you type (the checker's own messages and
   positions, underlined in place), simulate, dry-run and save.

   The text area is transparent over a "backdrop" that holds the same text with the
   diagnostic spans wrapped in <mark>; both use the same font, padding and scroll
   offsets, so an underline sits exactly under its word. */
"use strict";
(() => {
  const { el, $, api, pick, list } = cep;
  const source = $("#source");
  const backdrop = $("#backdrop");
  const gutter = $("#gutter");
  const diagList = $("#diagnostics");
  const state = $("#check-state");
  const saveBtn = $("#save");
  let ruleId = document.body.dataset.ruleId || null;
  let origin = null; // "file" rules are read-only through the API
  let saved = "";
  let diagnostics = [];
  let seq = 0;
  let timer = null;

  const NEW_RULE = (stream) => `rule my_rule "Describe what it catches"
  from ${stream}
  where true
  severity medium
`;

  // ------------------------------------------------------------------ text helpers
  const lines = () => source.value.split("\n");
  /** Column (1-based, counted in characters as the checker counts them) → UTF-16 index in the line. */
  function colIndex(line, col) {
    const chars = Array.from(line);
    return chars.slice(0, Math.max(0, col - 1)).join("").length;
  }
  function offsetOf(lineNo, col) {
    const ls = lines();
    let off = 0;
    for (let i = 0; i < Math.min(lineNo - 1, ls.length); i++) off += ls[i].length + 1;
    return off + colIndex(ls[lineNo - 1] || "", col);
  }
  /** Rule names and the first stream named in the text (for "last N events of its stream"). */
  const ruleNames = () => Array.from(source.value.matchAll(/^\s*rule\s+([A-Za-z_][A-Za-z0-9_]*)/gm), (m) => m[1]);
  const streamOf = () => (source.value.match(/^\s*from\s+([A-Za-z_][A-Za-z0-9_]*)/m) || [])[1] || null;

  // ------------------------------------------------------------------ drawing
  /** [start, end) UTF-16 ranges of the diagnostics that belong to this text. */
  function ranges() {
    const ls = lines();
    const out = [];
    diagnostics.forEach((d, i) => {
      if (!d.mine || !d.line) return;
      const text = ls[d.line - 1];
      if (text === undefined) return;
      const start = colIndex(text, d.col);
      let end;
      if (d.end_line === d.line && d.end_col > d.col) end = colIndex(text, d.end_col);
      else end = Math.max(text.trimEnd().length, start + 1); // several lines: to the end of the first, as `cep check` marks it
      const base = offsetOf(d.line, 1);
      // An empty span (end of input) still gets a visible mark: one cell wide.
      out.push({ start: base + start, end: base + Math.max(end, start + 1), i, severity: d.severity });
    });
    return out.sort((a, b) => a.start - b.start);
  }

  function drawBackdrop() {
    const text = source.value;
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const r of ranges()) {
      if (r.start < at) continue; // overlapping spans: the first one wins
      frag.append(text.slice(at, r.start));
      const word = text.slice(r.start, Math.min(r.end, text.length));
      const mark = el("mark", { class: r.severity === "warning" ? "warning" : "", dataset: { diag: r.i } });
      mark.textContent = word && word !== "\n" ? word.replace(/\n/g, " ") : " ";
      frag.append(mark);
      at = Math.min(r.end, text.length);
      if (word.endsWith("\n")) frag.append("\n");
    }
    frag.append(text.slice(at) + "\n"); // a trailing newline keeps the last line's height
    backdrop.replaceChildren(frag);
    const bad = new Set(diagnostics.filter((d) => d.mine).map((d) => d.line));
    const n = lines().length;
    const g = document.createDocumentFragment();
    for (let i = 1; i <= n; i++) g.append(bad.has(i) ? el("span", { class: "err", title: "error on this line", text: String(i) }) : String(i), "\n");
    gutter.replaceChildren(g);
    syncScroll();
  }

  function syncScroll() {
    backdrop.scrollTop = source.scrollTop;
    backdrop.scrollLeft = source.scrollLeft;
    gutter.scrollTop = source.scrollTop;
  }

  function drawDiagnostics(checked) {
    diagList.replaceChildren();
    if (!checked) return;
    if (!diagnostics.length) {
      diagList.append(el("li", { class: "ok", text: "No problem found: the text checks like `cep check` would accept it." }));
      return;
    }
    diagnostics.forEach((d, i) => {
      const where = d.mine ? `${d.line}:${d.col}` : `${d.file}:${d.line}:${d.col}`;
      const pos = d.mine
        ? el("button", { type: "button", class: "pos", title: "Move the cursor there", onclick: () => goTo(d), text: where })
        : el("span", { class: "mono", text: where });
      diagList.append(el("li", { class: d.severity === "warning" ? "warning" : "", dataset: { diag: i, code: d.code || "" } },
        pos, " ", el("span", { class: "sevword", text: `${d.severity || "error"}:` }), " ", d.message,
        d.code ? el("span", { class: "muted", text: ` [${d.code}]` }) : null,
        (d.hints || []).map((h) => el("span", { class: "hint", text: `hint: ${h}` }))));
    });
  }

  function goTo(d) {
    const start = offsetOf(d.line, d.col);
    const end = d.end_line === d.line && d.end_col > d.col ? offsetOf(d.line, d.end_col) : start;
    source.focus();
    source.setSelectionRange(start, end);
    // Bring the line into view: line height is fixed at 21 px.
    const top = (d.line - 1) * 21;
    if (top < source.scrollTop || top > source.scrollTop + source.clientHeight - 42) source.scrollTop = Math.max(0, top - 63);
    syncScroll();
    showCursor();
  }

  function setState(text, kind) {
    state.textContent = text;
    state.className = `check-state${kind ? ` ${kind}` : ""}`;
  }

  // ------------------------------------------------------------------ checking as you type
  /** Diagnostics of a check/simulate/save answer, each marked `mine` when it points into
      this text.  The API names unsaved text with a pseudo file (`<simulate>.cep`);
      diagnostics in the served rule files carry their real path and are listed, not underlined. */
  let servedFiles = new Set();
  function diagnosticsOf(data) {
    const raw = pick(data, "diagnostics") || (data && data.error && data.error.diagnostics) || [];
    return raw.map((d) => ({ ...d, mine: !d.file || d.file.startsWith("<") || !servedFiles.has(d.file) }));
  }

  async function check() {
    const mySeq = ++seq;
    const text = source.value;
    setState("checking…");
    try {
      const data = await api("/cep/simulate", { method: "POST", body: { text, events: [], include_files: true }, accept: [400, 422] });
      if (mySeq !== seq) return; // a newer keystroke's check is on its way
      diagnostics = diagnosticsOf(data).filter((d) => d.severity !== "note");
      const errors = diagnostics.filter((d) => (d.severity || "error") === "error").length;
      setState(errors ? `${errors} error${errors > 1 ? "s" : ""}` : "checks", errors ? "bad" : "ok");
      document.body.dataset.checked = String(mySeq);
      drawBackdrop();
      drawDiagnostics(true);
    } catch (e) {
      if (mySeq !== seq) return;
      setState(`check failed: ${e.message}`, "bad");
    }
  }

  function scheduleCheck() {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  }

  function showCursor() {
    const before = source.value.slice(0, source.selectionStart).split("\n");
    $("#cursor-pos").textContent = `${before.length}:${Array.from(before[before.length - 1]).length + 1}`;
  }

  source.addEventListener("input", () => {
    drawBackdrop(); // keep marks aligned with the text until the new check answers
    scheduleCheck();
    saveBtn.disabled = false;
  });
  source.addEventListener("scroll", syncScroll);
  source.addEventListener("keyup", showCursor);
  source.addEventListener("click", showCursor);
  source.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
  });

  // ------------------------------------------------------------------ simulate
  function parseEvents(text) {
    const t = text.trim();
    if (!t) return [];
    if (t.startsWith("[")) return JSON.parse(t);
    return t.split("\n").filter((l) => l.trim()).map((l, i) => {
      try { return JSON.parse(l); } catch (e) { throw new Error(`line ${i + 1} of the events is not JSON: ${e.message}`); }
    });
  }

  function recordsTable(records) {
    const cols = [];
    for (const r of records) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
    return el("div", { class: "table-wrap" }, el("table", { class: "grid compact" },
      el("thead", {}, el("tr", {}, cols.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, records.map((r) => el("tr", {}, cols.map((c) => el("td", { text: r[c] === null || r[c] === undefined ? "" : typeof r[c] === "object" ? JSON.stringify(r[c]) : String(r[c]) })))))));
  }

  async function simulate() {
    const out = $("#sim-result");
    const btn = $("#simulate");
    btn.disabled = true;
    out.replaceChildren(el("p", { class: "muted", text: "Simulating…" }));
    try {
      let events;
      const stream = streamOf();
      if (document.querySelector('input[name="sim-source"]:checked').value === "recent") {
        if (!stream) throw new Error("The text names no stream (`from STREAM`).");
        const n = Math.max(1, Math.min(1000, parseInt($("#sim-n").value, 10) || 100));
        const recent = await api(`/cep/streams/${encodeURIComponent(stream)}/recent`, { query: { n } });
        events = { [stream]: list(recent, "events") };
      } else {
        const pasted = parseEvents($("#sim-events").value);
        events = stream ? { [stream]: pasted } : pasted;
      }
      const given = Object.values(events).reduce((s, v) => s + v.length, 0);
      const data = await api("/cep/simulate", { method: "POST", body: { text: source.value, events, include_files: true }, accept: [400, 422] });
      const diags = diagnosticsOf(data);
      if (diags.some((d) => (d.severity || "error") === "error")) {
        diagnostics = diags; drawBackdrop(); drawDiagnostics(true);
        out.replaceChildren(el("p", { class: "error", text: "The text does not check; fix the diagnostics first." }));
        return;
      }
      const mine = new Set(ruleNames());
      const matches = pick(data, "matches") || {};
      const parts = [];
      let total = 0;
      for (const [rule, records] of Object.entries(matches)) {
        if (mine.size && !mine.has(rule)) continue;
        total += records.length;
        parts.push(el("h3", { class: "small", text: `${rule}: ${records.length} match${records.length === 1 ? "" : "es"}` }));
        if (records.length) parts.push(recordsTable(records.slice(0, 200)));
      }
      const dead = pick(data, "dead_letters") || [];
      out.replaceChildren(
        el("p", { class: "sim-summary", dataset: { matches: total }, text: `${total} match${total === 1 ? "" : "es"} from ${given} event${given === 1 ? "" : "s"}${dead.length ? `, ${dead.length} dead letter${dead.length === 1 ? "" : "s"}` : ""}.` }),
        ...parts,
        dead.length ? el("details", {}, el("summary", { text: "Dead letters" }), el("pre", { class: "code", text: dead.map((d) => JSON.stringify(d)).join("\n") })) : "");
    } catch (e) {
      out.replaceChildren(el("p", { class: "error", text: e.message }));
    } finally {
      btn.disabled = false;
    }
  }
  $("#simulate").addEventListener("click", simulate);
  $("#sim-events").addEventListener("focus", () => { document.querySelector('input[name="sim-source"][value="pasted"]').checked = true; });

  // ------------------------------------------------------------------ dry-run
  async function dryRun() {
    const out = $("#dry-result");
    const name = ruleNames()[0];
    if (!ruleId || name !== ruleId) {
      out.replaceChildren(el("p", { class: "muted", text: "Dry-run renders a saved rule's messages: save the rule first." }));
      return;
    }
    try {
      const raw = $("#dry-record").value.trim();
      const record = raw ? JSON.parse(raw) : null;
      const data = await api(`/cep/rules/${encodeURIComponent(ruleId)}/dry-run`, { method: "POST", body: { record } });
      const msgs = list(pick(data, "messages") || [], "messages");
      const note = source.value !== saved ? el("p", { class: "muted", text: "Rendered from the saved version; unsaved edits are not in it." }) : "";
      out.replaceChildren(note, ...(msgs.length ? msgs.map((m) => el("div", { class: "message" },
        el("h3", { text: `${m.channel}${m.kind ? ` (${m.kind})` : ""}${m.subject ? ` · ${m.subject}` : ""}` }),
        m.template_error ? el("p", { class: "error", text: m.template_error }) : null,
        el("pre", { text: m.text || "" }))) : [el("p", { class: "muted", text: "The rule notifies no channel: nothing would be sent." })]));
    } catch (e) {
      out.replaceChildren(el("p", { class: "error", text: e instanceof SyntaxError ? `The record is not JSON: ${e.message}` : e.message }));
    }
  }
  $("#dry-run").addEventListener("click", dryRun);

  // ------------------------------------------------------------------ save
  async function save() {
    const names = ruleNames();
    const note = $("#readonly-note");
    note.hidden = true;
    if (origin === "file" && names[0] === ruleId) {
      note.textContent = `${ruleId} is declared in a rule file: edit that file (the server reloads it), or rename the rule here to save a copy.`;
      note.hidden = false;
      return;
    }
    saveBtn.disabled = true;
    setState("saving…");
    try {
      const existing = ruleId && names[0] === ruleId && origin !== "file";
      const path = existing ? `/cep/rules/${encodeURIComponent(ruleId)}` : "/cep/rules";
      const data = await api(path, { method: existing ? "PUT" : "POST", text: source.value });
      const rule = pick(data, "rule") || {};
      const version = pick(data, "version") || {};
      ruleId = pick(rule, "id") || pick(version, "id") || names[0];
      origin = "catalogue";
      saved = source.value;
      document.body.dataset.ruleId = ruleId;
      history.replaceState(null, "", `/editor/${encodeURIComponent(ruleId)}`);
      document.title = `Edit ${ruleId} · cep`;
      const reload = pick(data, "reload") || {};
      setState(`saved${version.version ? ` as version ${version.version}` : ""}`, "ok");
      cep.toast(reload.ok === false ? `Saved, but the engine refused it: ${reload.error}` : `Saved ${ruleId}${version.version ? ` (version ${version.version})` : ""}; it applies from the next batch.`, reload.ok === false);
    } catch (e) {
      saveBtn.disabled = false;
      if (e.diagnostics) {
        diagnostics = diagnosticsOf({ diagnostics: e.diagnostics });
        drawBackdrop();
        drawDiagnostics(true);
        setState("refused: see the diagnostics", "bad");
      } else {
        setState(`not saved: ${e.message}`, "bad");
        cep.toast(`Not saved: ${e.message}`, true);
      }
    }
  }
  saveBtn.addEventListener("click", save);

  // ------------------------------------------------------------------ start
  (async () => {
    try {
      const h = await api("/cep/health", { accept: [503] }).catch(() => ({}));
      servedFiles = new Set(pick(h, "files") || []);
      if (ruleId) {
        const rule = await api(`/cep/rules/${encodeURIComponent(ruleId)}`);
        origin = pick(rule, "origin");
        source.value = pick(rule, "text") || "";
        saved = source.value;
        if (origin === "file") {
          const note = $("#readonly-note");
          note.textContent = `Declared in ${pick(rule, "source", "file")}: read-only here. Simulate and dry-run work; to save, rename the rule (a copy goes to the catalogue) or edit the file.`;
          note.hidden = false;
        }
        const recentStream = pick(rule, "stream");
        if (recentStream) $("#sim-n").setAttribute("aria-label", `How many recent events of ${recentStream}`);
      } else {
        const streams = list(await api("/cep/streams").catch(() => []), "streams");
        source.value = NEW_RULE(streams.length ? streams[0].name : "STREAM");
      }
    } catch (e) {
      setState(e.status === 404 ? `no rule named ${ruleId}` : `could not load: ${e.message}`, "bad");
    }
    drawBackdrop();
    await check();
    cep.ready();
    markLiveOnce();
  })();

  function markLiveOnce() {
    // The editor polls nothing but the health: keep the header's indicator honest.
    cep.poll(() => api("/cep/health", { accept: [503] }), 15000);
  }
})();
