// ddb dashboard: polls /ddb/cluster for every member's state, listens to /ws?cluster=1 for
// events, per-link message counts and status frames (the charts), drives the network faults
// through /ddb/faults and a node's crash through /ddb/control, and -- when the page was
// opened from its launcher's link (#control=URL&token=T, from `ddb cluster up --http` or
// LocalCluster.dashboard_url()) -- pause, resume, restart and stop through that launcher,
// which then also carries out the crash (SIGKILL: it works on a paused node too).
// No external assets: everything here is served by the node.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { nodes: [], rates: {}, lastMsgs: {}, served: null, leader: null, term: 0,
                selected: null, procs: {}, launcher: "none" };

// ---- the launcher's control path (URL and token from the link, kept for this tab) --------
const control = (() => {
  const frag = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  let url = frag.get("control") || query.get("control");
  let token = frag.get("token") || query.get("token");
  try {
    if (url && token) {
      sessionStorage.setItem("ddb.control", JSON.stringify({ url: url, token: token }));
      // keep the token out of the address bar, bookmarks and screenshots
      history.replaceState(null, "", location.pathname);
    } else {
      const saved = JSON.parse(sessionStorage.getItem("ddb.control") || "null");
      if (saved) { url = saved.url; token = saved.token; }
    }
  } catch (e) { /* storage off: the link's values still hold for this load */ }
  return { url: url ? url.replace(/\/+$/, "") : null, token: token };
})();

function note(text, kind) {
  const li = document.createElement("li");
  const t = new Date().toLocaleTimeString();
  li.className = "k-" + (kind || "info");
  li.textContent = `${t} ${text}`;
  const tl = $("timeline");
  tl.insertBefore(li, tl.firstChild);
  while (tl.children.length > 300) tl.removeChild(tl.lastChild);
}

async function post(path, body) {
  let r;
  try {
    r = await fetch(path, { method: "POST", body: JSON.stringify(body), signal: timed(10000),
                            headers: { "Content-Type": "application/json" } });
  } catch (e) {   // this page's own node is paused, cut off or gone
    throw new Error(`node ${state.served ?? "?"} (this page's) did not answer: ${e.message}`);
  }
  const text = await r.text();
  if (!r.ok) throw new Error(`${r.status} ${text.trim()}`);
  try { return JSON.parse(text); } catch (e) { return text; }
}

async function busy(btn, fn) {
  btn.disabled = true; btn.setAttribute("aria-busy", "true");
  try { await fn(); } finally { btn.removeAttribute("aria-busy"); updateButtons(); }
}

async function fault(cmd, label) {
  try {
    const r = await post("/ddb/faults", { cmd: cmd, nodes: "all" });
    // every member answers for itself: say which ones did not take it (paused, gone)
    const missed = Object.entries(r || {}).filter(([, v]) => v && v.error)
      .map(([id, v]) => `node ${id} (${(v.error && v.error.type) || v.error})`);
    note(`fault: ${label}` + (missed.length ? `; not taken by ${missed.join(", ")}` : ""), "fault");
  } catch (e) { note(`fault ${label} failed: ${e.message}`, "fault"); }
  refresh();
}

function currentLeader() {
  let best = null;     // the leader of the highest term among reachable nodes
  for (const n of state.nodes) {
    if (n.reachable && n.role === "leader" && (!best || n.term > best.term)) best = n;
  }
  return best;
}

function selectedNode() {
  const v = parseInt($("node-select").value, 10);
  if (!v) { note("choose a node first", "fault"); return null; }
  return v;
}

function select(id) {
  state.selected = id;
  $("node-select").value = String(id);
  render();
}

async function launcher(action, node) {
  if (!control.url) { note(`${action} needs the launcher's dashboard link`, "fault"); return; }
  try {
    const r = await fetch(control.url + "/control", { method: "POST",
      body: JSON.stringify({ action: action, node: node }),
      headers: { "Content-Type": "application/json", "Authorization": `Bearer ${control.token}` } });
    let body = {};
    try { body = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) note(`${action} node ${node} refused: ${r.status} ${body.error || ""}`, "fault");
    else note(`${action} node ${node}: ${body.state}${body.pid ? ` (pid ${body.pid})` : ""}`, "fault");
  } catch (e) { note(`${action} node ${node}: the launcher did not answer (${e.message})`, "fault"); }
  await refreshControl();
  refresh();
}

function wire() {
  $("btn-isolate-leader").onclick = () => {
    const l = currentLeader();
    if (!l) { note("no leader to isolate", "fault"); return; }
    fault({ action: "isolate", node: l.id }, `isolate leader ${l.id}`);
  };
  $("btn-isolate-node").onclick = () => { const n = selectedNode(); if (n) fault({ action: "isolate", node: n }, `isolate ${n}`); };
  $("btn-heal").onclick = () => fault({ action: "heal" }, "heal");
  $("btn-drop").onclick = () => fault({ action: "drop", rate: 0.2 }, "drop 20%");
  $("btn-delay").onclick = () => fault({ action: "delay", ms: 100, jitter: 20 }, "delay 100 ms");
  $("btn-partition").onclick = () => {
    const text = $("groups").value.trim();
    let groups;
    if (text) groups = text.split("|").map((g) => g.split(",").map((x) => parseInt(x, 10)).filter(Boolean));
    else {
      const l = currentLeader();
      if (!l) { note("no leader: type groups like 1,2|3", "fault"); return; }
      groups = [[l.id], state.nodes.map((n) => n.id).filter((i) => i !== l.id)];
    }
    fault({ action: "partition", groups: groups }, "partition " + JSON.stringify(groups));
  };
  $("btn-transfer").onclick = async () => {
    const v = parseInt($("node-select").value, 10);
    const l = currentLeader();
    const body = v && (!l || v !== l.id) ? { id: String(v) } : {};
    try {
      const r = await post("/leader", body);
      note(`leadership transfer: ${JSON.stringify(r)}`, "role");
    } catch (e) { note(`transfer failed: ${e.message}`, "fault"); }
    refresh();
  };
  $("btn-crash").onclick = async (ev) => {
    const n = selectedNode(); if (!n) return;
    await busy(ev.currentTarget, async () => {
      // the launcher kills the process itself (a paused node too); without one, the node exits
      if (state.launcher === "ok") { await launcher("kill", n); return; }
      try { await post("/ddb/control", { action: "crash", node: n }); note(`crash node ${n}`, "fault"); }
      catch (e) { note(`crash failed: ${e.message}`, "fault"); }
    });
  };
  for (const action of ["pause", "resume", "restart", "stop"]) {
    $(`btn-${action}`).onclick = async (ev) => {
      const n = selectedNode(); if (!n) return;
      await busy(ev.currentTarget, () => launcher(action, n));
    };
  }
  $("node-select").onchange = () => { state.selected = parseInt($("node-select").value, 10) || null; render(); };
  DdbConsole.wire();
  updateButtons();
}

// which launcher buttons can work, and the sentence that says why not
function updateButtons() {
  const st = state.procs[state.selected];
  const proc = st && st.state;
  const ok = state.launcher === "ok";
  const allow = { pause: proc === "running", resume: proc === "paused",
                  restart: proc !== undefined && proc !== "removed", stop: proc === "running" || proc === "paused" };
  const crash = $("btn-crash");
  if (crash.getAttribute("aria-busy") !== "true") {
    crash.disabled = ok && !(proc === "running" || proc === "paused");
    crash.title = ok ? `the launcher kills node ${state.selected} (SIGKILL; a paused node too)`
      : "the node exits at once, as with kill -9 (works on any cluster, not on a paused node)";
  }
  for (const [action, can] of Object.entries(allow)) {
    const b = $(`btn-${action}`);
    if (b.getAttribute("aria-busy") === "true") continue;
    b.disabled = !ok || !can;
    b.title = !ok ? "needs the launcher that started the nodes (see the note below)"
      : can ? `${action} node ${state.selected}` : `node ${state.selected} is ${proc || "unknown"}`;
  }
  const el = $("control-note");
  if (state.launcher === "ok") {
    el.className = "note ok";
    el.textContent = `Launcher control at ${control.url}: every button works ` +
      "(crash is the launcher's SIGKILL).";
  } else if (state.launcher === "none") {
    el.className = "note warn";
    el.textContent = "pause, resume, restart and stop need the launcher that started the nodes: " +
      "open the dashboard link that `ddb cluster up --http …` or LocalCluster.dashboard_url() prints " +
      `(this page, served by node ${state.served ?? "?"}, has none). ` +
      "isolate, crash, partition, drop, delay, transfer and heal work on any cluster.";
  } else {
    el.className = "note warn";
    el.textContent = `the launcher at ${control.url} ${state.launcher}: pause, resume, restart and stop ` +
      "are off; the other buttons work on any cluster.";
  }
}

// one poll of each kind at a time: a paused node must not pile up requests that never end
let controlBusy = false, clusterBusy = false;

// a poll that gets no answer gives up (a paused or cut-off node never answers)
function timed(ms) {
  const c = new AbortController();
  setTimeout(() => c.abort(), ms);
  return c.signal;
}

async function refreshControl() {
  if (!control.url) { state.launcher = "none"; return; }
  if (controlBusy) return;
  controlBusy = true;
  try {
    const r = await fetch(control.url + "/control/state", { cache: "no-store", signal: timed(5000),
      headers: { "Authorization": `Bearer ${control.token}` } });
    if (r.status === 401 || r.status === 403) { state.launcher = `refused the token (${r.status})`; state.procs = {}; return; }
    const body = await r.json();
    state.procs = {};
    for (const [id, p] of Object.entries(body.nodes || {})) state.procs[Number(id)] = p;
    state.launcher = "ok";
  } catch (e) { state.launcher = "does not answer"; state.procs = {}; }
  finally { controlBusy = false; }
  // the launcher answers even when the page's own node is paused: show what it says
  if (state.nodes.length) render();
}

async function refresh() {
  if (clusterBusy) return;
  clusterBusy = true;
  try {
    const r = await fetch("/ddb/cluster", { cache: "no-store", signal: timed(5000) });
    if (!r.ok) throw new Error(r.status);
    const data = await r.json();
    state.served = data.node;
    state.nodes = data.nodes;
    render();
  } catch (e) {
    $("summary").textContent = `node ${state.served ?? "?"} (this page's) does not answer` +
      (e.name === "AbortError" ? " within 5 s" : `: ${e.message}`) +
      (state.launcher === "ok" ? "; the launcher's view still updates" : "");
  } finally { clusterBusy = false; }
}

function render() {
  $("served-by").textContent = `(served by node ${state.served})`;
  const leader = currentLeader();
  if (leader && (state.leader !== leader.id || state.term !== leader.term)) {
    note(`leader is node ${leader.id} (term ${leader.term})`, "role");
    state.leader = leader.id; state.term = leader.term;
    DdbCharts.election(leader.term, leader.id, false);
  }
  const up = state.nodes.filter((n) => n.reachable).length;
  $("summary").textContent = `${state.nodes.length} nodes, ${up} reachable, leader: ` +
    (leader ? `node ${leader.id} (term ${leader.term})` : "none");
  $("summary").dataset.leader = leader ? String(leader.id) : "";
  $("summary").dataset.term = leader ? String(leader.term) : "";
  // the node chooser: every member, the selection kept
  const sel = $("node-select");
  const ids = state.nodes.map((n) => String(n.id));
  if ([...sel.options].map((o) => o.value).join() !== ids.join()) {
    sel.textContent = "";
    for (const id of ids) { const o = document.createElement("option"); o.value = id; o.textContent = `node ${id}`; sel.appendChild(o); }
  }
  if (state.selected == null || !ids.includes(String(state.selected))) {
    const other = state.nodes.find((n) => n.id !== state.served && (!leader || n.id !== leader.id)) || state.nodes[0];
    state.selected = other ? other.id : null;
  }
  if (state.selected != null) sel.value = String(state.selected);
  const tb = document.querySelector("#nodes tbody");
  tb.textContent = "";
  for (const n of state.nodes) {
    const tr = document.createElement("tr");
    const p = state.procs[n.id];
    const proc = p ? p.state : (n.reachable ? "running" : "unreachable");
    tr.dataset.node = n.id;
    tr.dataset.role = n.reachable ? (n.role || "") : "down";
    tr.dataset.state = proc;
    tr.dataset.pid = (p && p.pid) || n.pid || "";
    tr.dataset.nodePid = n.reachable && n.pid ? n.pid : "";   // as the process itself says
    const cls = [];
    if (leader && n.id === leader.id) cls.push("leader");
    if (!n.reachable) cls.push("down");
    if (n.id === state.selected) cls.push("selected");
    tr.className = cls.join(" ");
    tr.onclick = () => select(n.id);
    const f = n.faults || {};
    const faults = [];
    if (f.isolated) faults.push(`isolated ${f.isolated}`);
    else if (f.blocked && f.blocked.length) faults.push(`${f.blocked.length} cut`);
    if (f.drop_rate) faults.push(`drop ${f.drop_rate}`);
    if (f.delay_ms) faults.push(`delay ${f.delay_ms}ms`);
    tr.dataset.faults = faults.join(", ");
    const cells = [n.id, proc, (p && p.pid) || (n.reachable ? n.pid : "") || "", n.reachable ? n.role : "—",
                   n.term ?? "", n.leader || "", n.last_index ?? "", n.commit ?? "", n.applied ?? "", faults.join(", ")];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 1) td.className = "state-" + proc;
      if (i === 3) td.className = "role-" + (n.role || "");
      tr.appendChild(td);
    });
    tb.appendChild(tr);
  }
  drawGraph($("graph"), state.nodes.map((n) => {
    const p = state.procs[n.id];
    return Object.assign({}, n, { proc: p ? p.state : null });
  }), { rates: state.rates, lastMsgs: state.lastMsgs, selected: state.selected });
  updateButtons();
}

// ---- the cluster graph: node circles sized to their text, links with message rates -------
function drawGraph(svg, nodes, opts) {
  const ns = "http://www.w3.org/2000/svg";
  const rates = opts.rates || {}, lastMsgs = opts.lastMsgs || {};
  // redrawn every refresh: a node that has the keyboard focus keeps it
  const act = document.activeElement;
  const focused = act && svg.contains(act) && act.dataset ? act.dataset.node : null;
  svg.textContent = "";
  const n = nodes.length;
  // first the labels (measured), then the circles that hold them, then the ring that holds those
  const groups = nodes.map((node) => {
    const g = document.createElementNS(ns, "g");
    g.setAttribute("class", "node" + (node.id === opts.selected ? " selected" : ""));
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    g.dataset.node = node.id;
    const lines = [`node ${node.id}`,
                   node.reachable ? `${node.role || "?"}` : (node.proc && node.proc !== "running" ? node.proc : "down"),
                   node.reachable ? `term ${node.term}` : ""].filter(Boolean);
    g.setAttribute("aria-label", lines.join(", "));
    const texts = lines.map((s, i) => {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("text-anchor", "middle");
      t.setAttribute("dominant-baseline", "central");
      if (i === 0) t.setAttribute("class", "node-label");
      t.textContent = s;
      return t;
    });
    return { node: node, g: g, texts: texts };
  });
  const measure = document.createElementNS(ns, "g");
  svg.appendChild(measure);
  const LINE = 15;
  let r = 30;
  for (const gr of groups) {
    gr.widths = gr.texts.map((t) => { measure.appendChild(t); const w = t.getComputedTextLength() || t.textContent.length * 7; return w; });
    gr.texts.forEach((t, i) => {
      const dy = (i - (gr.texts.length - 1) / 2) * LINE;
      const half = LINE / 2;
      // the circle must hold the line's far corners
      r = Math.max(r, Math.hypot(gr.widths[i] / 2 + 3, Math.abs(dy) + half) + 4);
    });
  }
  svg.removeChild(measure);
  const ring = n > 1 ? Math.max(110, (r + 14) / Math.sin(Math.PI / n)) : 0;
  const pos = {};
  nodes.forEach((node, i) => {
    const a = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    pos[node.id] = [ring * Math.cos(a), ring * Math.sin(a)];
  });
  // the picture's box: the circles plus a margin (a triangle leaves no empty band below)
  const xs = Object.values(pos).map((p) => p[0]), ys = Object.values(pos).map((p) => p[1]);
  const m = 12, x0 = Math.min(0, ...xs) - r - m, y0 = Math.min(0, ...ys) - r - m;
  const W = Math.max(...xs, 0) + r + m - x0, H = Math.max(...ys, 0) + r + m - y0;
  svg.setAttribute("viewBox", `${x0.toFixed(0)} ${y0.toFixed(0)} ${Math.max(W, 3 * r).toFixed(0)} ${H.toFixed(0)}`);
  const blocked = new Set();
  let lossy = false;
  for (const node of nodes) {
    const f = node.faults || {};
    for (const [a, b] of f.blocked || []) blocked.add(`${a}-${b}`);
    if (f.drop_rate || f.delay_ms) lossy = true;
    if (f.isolated) for (const o of nodes) { blocked.add(`${f.isolated}-${o.id}`); blocked.add(`${o.id}-${f.isolated}`); }
  }
  const now = Date.now();
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    const a = nodes[i].id, b = nodes[j].id;
    const line = document.createElementNS(ns, "line");
    line.setAttribute("x1", pos[a][0]); line.setAttribute("y1", pos[a][1]);
    line.setAttribute("x2", pos[b][0]); line.setAttribute("y2", pos[b][1]);
    const rate = (rates[`${a}-${b}`] || 0) + (rates[`${b}-${a}`] || 0);
    const fresh = (now - (lastMsgs[`${a}-${b}`] || 0) < 1500) || (now - (lastMsgs[`${b}-${a}`] || 0) < 1500);
    let cls = "link";
    if (blocked.has(`${a}-${b}`) || blocked.has(`${b}-${a}`)) cls += " cut";
    else if (lossy) cls += " lossy";
    else if (fresh) cls += " active";
    line.setAttribute("class", cls);
    line.setAttribute("stroke-width", String(1 + Math.min(8, Math.log2(1 + rate))));
    line.dataset.link = `${a}-${b}`;
    svg.appendChild(line);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", (pos[a][0] + pos[b][0]) / 2);
    label.setAttribute("y", (pos[a][1] + pos[b][1]) / 2 - 6);
    label.setAttribute("text-anchor", "middle");
    label.setAttribute("class", "link-label");
    label.textContent = rate >= 0.5 ? `${Math.round(rate)} msg/s` : "";
    svg.appendChild(label);
  }
  for (const gr of groups) {
    const node = gr.node;
    const [x, y] = pos[node.id];
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", x); c.setAttribute("cy", y); c.setAttribute("r", r.toFixed(1));
    const color = node.proc === "paused" ? "#f3c97a" : !node.reachable ? "#ccc"
      : node.role === "leader" ? "#7fd69a" : node.role === "follower" ? "#9cc1f0" : "#f3c97a";
    c.setAttribute("fill", color); c.setAttribute("class", "node-circle");
    gr.g.appendChild(c);
    gr.texts.forEach((t, i) => {
      t.setAttribute("x", x);
      t.setAttribute("y", y + (i - (gr.texts.length - 1) / 2) * LINE);
      gr.g.appendChild(t);
    });
    gr.g.addEventListener("click", () => select(node.id));
    gr.g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(node.id); }
    });
    svg.appendChild(gr.g);
    if (focused === String(node.id)) gr.g.focus();
  }
}

// ---- the event stream ------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws?cluster=1`);
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.type === "event") {
      const extra = Object.entries(m).filter(([k]) => !["type", "t", "node", "kind"].includes(k))
        .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
      note(`node ${m.node}: ${m.kind} ${extra}`, m.kind === "role" ? "role" : m.kind === "fault" ? "fault" : "info");
      if (m.kind === "role" && m.role === "leader") DdbCharts.election(m.term, m.node, true);
    } else if (m.type === "status") {
      DdbCharts.status(m);
    } else if (m.type === "hello" && m.status) {
      DdbCharts.status(Object.assign({ node: m.node }, m.status));
    } else if (m.type === "messages") {
      const now = Date.now();
      const per = {};
      for (const l of m.links) per[`${l.from}-${l.to}`] = (per[`${l.from}-${l.to}`] || 0) + l.count / m.interval;
      for (const [k, v] of Object.entries(per)) { state.rates[k] = 0.5 * (state.rates[k] || 0) + 0.5 * v; state.lastMsgs[k] = now; }
    }
  };
  ws.onclose = () => setTimeout(connect, 1000);
}

function decay() {
  const now = Date.now();
  for (const k of Object.keys(state.rates)) if (now - (state.lastMsgs[k] || 0) > 1000) state.rates[k] *= 0.5;
}

window.ddbDashboard = { drawGraph: drawGraph, state: state };
wire();
refreshControl().then(refresh);
connect();
setInterval(refresh, 700);
setInterval(refreshControl, 700);
setInterval(decay, 500);
