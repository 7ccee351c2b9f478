/* Channels: list (with circuit breakers), create from the kinds' option lists, test, enable/disable. */
"use strict";
(() => {
  const { el, $, api, pick, list, emptyRow, toggleSwitch } = cep;
  const tbody = $("#channels-table").tBodies[0];
  const form = $("#channel-form");
  const kindSelect = $("#channel-kind");
  let types = [];

  /** `name = kind(a = 1, b = env("X"))` → the text between the parentheses, secrets as written (env refs). */
  function settings(c) {
    const text = pick(c, "text") || "";
    const m = text.match(/\((.*)\)\s*$/s);
    return m ? m[1].replace(/\s+/g, " ").trim() : "";
  }

  function row(c, breakers) {
    const b = (breakers || {})[c.name];
    // An API without channel switches reports no `enabled`: the cell says so instead of
    // offering a switch that cannot work.
    const switchable = typeof pick(c, "enabled") === "boolean";
    const enabled = pick(c, "enabled") ?? true;
    const testBtn = el("button", { type: "button", "data-focus": `test:${c.name}`, onclick: () => test(c.name), text: "Test" });
    const actions = el("td", { class: "nowrap" }, testBtn);
    if (c.origin === "catalogue") {
      actions.append(" ", el("button", { type: "button", class: "danger", onclick: () => remove(c.name), text: "Delete" }));
    }
    return el("tr", { class: enabled ? "" : "disabled", dataset: { channel: c.name } },
      el("th", { scope: "row" }, c.name),
      el("td", {}, el("span", { class: "tag", text: c.kind })),
      el("td", { text: c.origin === "file" ? `file ${c.file || ""}` : `catalogue${c.version ? ` v${c.version}` : ""}` }),
      el("td", { class: "msg mono small", text: settings(c) }),
      el("td", { text: b ? `${b.state}${b.failures ? ` (${b.failures} failures)` : ""}` : "closed" }),
      el("td", {}, switchable ? switchFor(c, enabled) : el("span", { class: "muted", title: "This server's API has no enable/disable for channels", text: "always on" })),
      actions);
  }

  function switchFor(c, enabled) {
    const sw = toggleSwitch(enabled, `Enable or disable channel ${c.name}`, async (next) => {
      await api(`/cep/channels/${encodeURIComponent(c.name)}/toggle`, { method: "PATCH", body: { enabled: next } });
      sw.closest("tr").classList.toggle("disabled", !next);
      cep.toast(next ? `${c.name} enabled` : `${c.name} disabled: its alerts are recorded as skipped, not sent`);
    });
    sw.dataset.focus = `toggle:${c.name}`;
    return sw;
  }

  async function load() {
    const [channels, breakers] = await Promise.all([
      api("/cep/channels"),
      api("/cep/health/circuit-breakers").catch(() => ({})),
    ]);
    const rows = list(channels, "channels");
    const focused = tbody.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
    if (!rows.length) emptyRow(tbody, 7, "No channel yet: create one below.");
    else tbody.replaceChildren(...rows.map((c) => row(c, pick(breakers, "channels"))));
    if (focused) tbody.querySelector(`[data-focus="${CSS.escape(focused)}"]`)?.focus();
  }

  async function test(name) {
    const out = $("#channel-test-result");
    out.replaceChildren(el("p", { class: "muted", text: `Sending a test through ${name}…` }));
    try {
      const r = await api("/cep/channels/test", { method: "POST", body: { channel: name, send: true } });
      const ok = r.ok !== false && !r.error;
      out.replaceChildren(el("div", { class: "message" },
        el("h3", { text: `${name}: ${ok ? "test sent" : "test failed"}${r.rule ? ` (message of ${r.rule})` : ""}` }),
        r.error ? el("p", { class: "error", text: r.error }) : null,
        r.subject ? el("p", { text: r.subject }) : null,
        el("pre", { text: r.text || "" })));
      cep.toast(ok ? `Test sent through ${name}` : `Test through ${name} failed: ${r.error}`, !ok);
    } catch (e) {
      out.replaceChildren(el("p", { class: "error", text: `Test of ${name} failed: ${e.message}` }));
    }
  }

  async function remove(name) {
    if (!confirm(`Delete channel ${name}? Rules that notify it are refused until it is back.`)) return;
    try {
      await api(`/cep/channels/${encodeURIComponent(name)}`, { method: "DELETE" });
      load();
    } catch (e) {
      cep.toast(`Delete failed: ${e.message}`, true);
    }
  }

  // ------------------------------------------------------------------ new channel form
  function drawOptions() {
    const t = types.find((x) => x.kind === kindSelect.value);
    const box = $("#channel-options");
    box.replaceChildren(...(t ? t.options : []).map((o) => el("label", { class: o.required ? "req" : "" },
      `${o.name}${o.secret ? " (environment variable)" : ""}`,
      el("input", { name: `opt.${o.name}`, required: o.required || null, autocomplete: "off",
        placeholder: o.secret ? "VARIABLE_NAME" : o.type || "", dataset: { secret: o.secret ? "1" : "", type: o.type || "" } }))));
  }

  function optionValue(input) {
    const v = input.value.trim();
    if (input.dataset.secret) return { env: v };
    const type = (input.dataset.type || "").toLowerCase();
    if (/(int|float|number|duration_s)/.test(type) && v !== "" && !Number.isNaN(Number(v))) return Number(v);
    if (/bool/.test(type)) return ["true", "yes", "1", "on"].includes(v.toLowerCase());
    if (/(list|array)/.test(type)) return v.split(",").map((x) => x.trim()).filter(Boolean);
    return v;
  }

  function payload() {
    const options = {};
    for (const input of form.querySelectorAll("[name^='opt.']")) {
      if (input.value.trim() === "") continue;
      options[input.name.slice(4)] = optionValue(input);
    }
    return { name: form.elements.name.value.trim(), kind: kindSelect.value, options };
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const err = $("#channel-error");
    err.hidden = true;
    try {
      await api("/cep/channels", { method: "POST", body: payload() });
      cep.toast(`Channel ${form.elements.name.value} created`);
      form.reset();
      drawOptions();
      load();
    } catch (ex) {
      err.textContent = ex.diagnostics ? ex.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`).join("\n") : ex.message;
      err.hidden = false;
    }
  });
  $("#channel-test").addEventListener("click", async () => {
    const name = form.elements.name.value.trim();
    if (!name) { form.elements.name.focus(); return; }
    if (!tbody.querySelector(`tr[data-channel="${CSS.escape(name)}"]`)) {
      $("#channel-error").textContent = "Create the channel first, then send a test through it.";
      $("#channel-error").hidden = false;
      return;
    }
    test(name);
  });
  kindSelect.addEventListener("change", drawOptions);

  (async () => {
    try {
      types = list(await api("/cep/channels/types"), "types", "kinds");
      kindSelect.replaceChildren(...types.map((t) => el("option", { value: t.kind, text: t.kind })));
      drawOptions();
    } catch (e) {
      cep.toast(`Channel kinds unavailable: ${e.message}`, true);
    }
  })();
  cep.poll(async () => { await load(); cep.ready(); }, 10000);
})();
