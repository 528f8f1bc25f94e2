// ddb dashboard SQL console: statements go to this node's rqlite-compatible /db/request at
// the chosen level; the answer is shown as tables (column names and types), with the node
// that answered, the index it answered at, the level and the time (X-DDB-* headers and
// rqlite's timings). Errors are one line. History: ↑/↓ at the first/last line, kept in
// localStorage.
"use strict";

const DdbConsole = (() => {
  const MAX_ROWS_SHOWN = 500;
  const HISTORY_KEY = "ddb.console.history";
  const $ = (id) => document.getElementById(id);
  let history = [];
  try { history = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (e) { history = []; }
  let pos = history.length, draft = "";

  function remember(sql) {
    if (history[history.length - 1] !== sql) history.push(sql);
    if (history.length > 200) history = history.slice(-200);
    try { localStorage.setItem(HISTORY_KEY, JSON.stringify(history)); } catch (e) { /* private mode */ }
    pos = history.length; draft = "";
  }

  function onKey(ev) {
    const ta = ev.target;
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      run();
      return;
    }
    const before = ta.value.slice(0, ta.selectionStart), after = ta.value.slice(ta.selectionEnd);
    if (ev.key === "ArrowUp" && !before.includes("\n") && pos > 0) {
      if (pos === history.length) draft = ta.value;
      pos -= 1; ta.value = history[pos]; ev.preventDefault();
      ta.setSelectionRange(ta.value.length, ta.value.length);
    } else if (ev.key === "ArrowDown" && !after.includes("\n") && pos < history.length) {
      pos += 1; ta.value = pos === history.length ? draft : history[pos]; ev.preventDefault();
      ta.setSelectionRange(ta.value.length, ta.value.length);
    }
  }

  function oneLine(text) { return String(text).replace(/\s+/g, " ").trim(); }

  function errorLine(text) {
    const d = document.createElement("div");
    d.className = "console-error";
    d.dataset.testid = "console-error";
    d.textContent = "error: " + oneLine(text);
    d.title = String(text);
    return d;
  }

  function cell(v) {
    const td = document.createElement("td");
    if (v === null || v === undefined) { td.textContent = "NULL"; td.className = "null"; }
    else if (typeof v === "number") { td.textContent = String(v); td.className = "num"; }
    else if (typeof v === "object") td.textContent = JSON.stringify(v);
    else td.textContent = v;
    return td;
  }

  function table(r) {
    const t = document.createElement("table");
    t.dataset.testid = "console-table";
    const head = t.createTHead().insertRow();
    r.columns.forEach((c, i) => {
      const th = document.createElement("th");
      th.appendChild(document.createTextNode(c));
      const ty = document.createElement("span");
      ty.className = "type";
      ty.textContent = (r.types && r.types[i]) || "";
      th.appendChild(ty);
      head.appendChild(th);
    });
    const body = t.createTBody();
    const rows = r.values || [];
    for (const row of rows.slice(0, MAX_ROWS_SHOWN)) {
      const tr = body.insertRow();
      for (const v of row) tr.appendChild(cell(v));
    }
    return { el: t, rows: rows.length };
  }

  function resultBlock(r) {
    const d = document.createElement("div");
    d.className = "result";
    if (r.error) { d.appendChild(errorLine(r.error)); return d; }
    const info = document.createElement("div");
    info.className = "note";
    if (r.columns) {
      const { el, rows } = table(r);
      d.appendChild(el);
      info.textContent = `${rows} row${rows === 1 ? "" : "s"}` +
        (rows > MAX_ROWS_SHOWN ? ` (first ${MAX_ROWS_SHOWN} shown)` : "") +
        (r.time != null ? ` · ${(r.time * 1000).toFixed(2)} ms` : "");
    } else {
      info.className = "console-ok";
      info.textContent = `ok: ${r.rows_affected ?? 0} row(s) affected` +
        (r.last_insert_id ? `, last insert id ${r.last_insert_id}` : "") +
        (r.time != null ? ` · ${(r.time * 1000).toFixed(2)} ms` : "");
    }
    d.appendChild(info);
    return d;
  }

  async function run() {
    const sql = $("sql").value.trim();
    const out = $("console-out"), meta = $("console-meta"), btn = $("btn-run");
    if (!sql) return;
    remember(sql);
    const level = $("level").value;
    btn.disabled = true; btn.setAttribute("aria-busy", "true");
    meta.textContent = "running…";
    const t0 = performance.now();
    try {
      const r = await fetch(`/db/request?level=${encodeURIComponent(level)}&timings`, {
        method: "POST", body: JSON.stringify([sql]), headers: { "Content-Type": "application/json" } });
      const ms = performance.now() - t0;
      const text = await r.text();
      out.textContent = "";
      let body = null;
      try { body = JSON.parse(text); } catch (e) { /* a plain-text error */ }
      if (!r.ok || !body) {
        out.appendChild(errorLine(`${r.status} ${text.split("\n")[0] || r.statusText}`));
        meta.textContent = `${ms.toFixed(1)} ms`;
        return;
      }
      if (body.error) out.appendChild(errorLine(body.error));
      for (const res of body.results || []) out.appendChild(resultBlock(res));
      const node = r.headers.get("X-DDB-Node"), index = r.headers.get("X-DDB-Index");
      const served = r.headers.get("X-DDB-Level") || level;
      meta.textContent = [node ? `node ${node}` : null, index ? `index ${index}` : null, served,
        `${ms.toFixed(1)} ms`].filter(Boolean).join(" · ");
      meta.dataset.node = node || ""; meta.dataset.index = index || "";
    } catch (e) {
      out.textContent = "";
      out.appendChild(errorLine(`the node did not answer: ${e.message}`));
      meta.textContent = "";
    } finally {
      btn.disabled = false; btn.removeAttribute("aria-busy");
    }
  }

  function wire() {
    $("sql").addEventListener("keydown", onKey);
    $("console-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  }
  return { wire: wire, run: run };
})();
