// ddb dashboard: polls /ddb/cluster for every member's state, listens to /ws?cluster=1 for
// events and per-link message counts, and drives fault controls through /ddb/faults.
// No external assets: everything here is served by the node.
"use strict";

const params = new URLSearchParams(location.search);
const CONTROL = params.get("control");          // LocalCluster control server (restart/pause)
const state = { nodes: [], rates: {}, lastMsgs: {}, served: null, leader: null, term: 0 };
const $ = (id) => document.getElementById(id);

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
  const r = await fetch(path, { method: "POST", body: JSON.stringify(body),
                                headers: { "Content-Type": "application/json" } });
  const text = await r.text();
  if (!r.ok) throw new Error(`${r.status} ${text.trim()}`);
  try { return JSON.parse(text); } catch (e) { return text; }
}

async function fault(cmd, label) {
  try {
    await post("/ddb/faults", { cmd: cmd, nodes: "all" });
    note(`fault: ${label}`, "fault");
  } catch (e) { note(`fault ${label} failed: ${e.message}`, "fault"); }
  refresh();
}

function currentLeader() {
  // the leader of the highest term among reachable nodes
  let best = null;
  for (const n of state.nodes) {
    if (n.reachable && n.role === "leader" && (!best || n.term > best.term)) best = n;
  }
  return best;
}

function selectedNode() {
  const v = parseInt($("node-id").value, 10);
  if (!v) { note("type a node id first", "fault"); return null; }
  return v;
}

async function control(action, node) {
  if (!CONTROL) { note("restart/pause need ?control=<LocalCluster control URL>", "fault"); return; }
  try {
    const r = await fetch(CONTROL + "/control", { method: "POST",
      body: JSON.stringify({ action: action, node: node }), headers: { "Content-Type": "text/plain" } });
    note(`${action} node ${node}: ${r.status}`, "fault");
  } catch (e) { note(`${action} failed: ${e.message}`, "fault"); }
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
    const l = currentLeader();
    const v = parseInt($("node-id").value, 10);
    const body = v ? { id: String(v) } : {};
    try {
      const r = await post("/leader", body);
      note(`leadership transfer: ${JSON.stringify(r)}`, "role");
    } catch (e) { note(`transfer failed: ${e.message}`, "fault"); }
    refresh();
  };
  $("btn-crash").onclick = async () => {
    const n = selectedNode(); if (!n) return;
    try { await post("/ddb/control", { action: "crash", node: n }); note(`crash node ${n}`, "fault"); }
    catch (e) { note(`crash failed: ${e.message}`, "fault"); }
  };
  $("btn-restart").onclick = () => { const n = selectedNode(); if (n) control("restart", n); };
  $("btn-pause").onclick = () => { const n = selectedNode(); if (n) control("pause", n); };
  $("btn-resume").onclick = () => { const n = selectedNode(); if (n) control("resume", n); };
  for (const b of document.querySelectorAll(".needs-control")) b.disabled = !CONTROL;
  $("control-note").textContent = CONTROL ? `process control: ${CONTROL}`
    : "restart/pause/resume need a LocalCluster control URL (?control=…); crash works on any node.";
}

let controlState = {};
async function refresh() {
  try {
    const r = await fetch("/ddb/cluster", { cache: "no-store" });
    if (!r.ok) throw new Error(r.status);
    const data = await r.json();
    state.served = data.node;
    state.nodes = data.nodes;
    if (CONTROL) {
      try { controlState = await (await fetch(CONTROL + "/control/state", { cache: "no-store" })).json(); }
      catch (e) { controlState = {}; }
    }
    render();
  } catch (e) {
    $("summary").textContent = "node unreachable: " + e.message;
  }
}

function render() {
  $("served-by").textContent = `(served by node ${state.served})`;
  const leader = currentLeader();
  if (leader && (state.leader !== leader.id || state.term !== leader.term)) {
    note(`leader is node ${leader.id} (term ${leader.term})`, "role");
    state.leader = leader.id; state.term = leader.term;
  }
  const up = state.nodes.filter((n) => n.reachable).length;
  $("summary").textContent = `${state.nodes.length} nodes, ${up} reachable, leader: ` +
    (leader ? `node ${leader.id} (term ${leader.term})` : "none");
  $("summary").dataset.leader = leader ? String(leader.id) : "";
  $("summary").dataset.term = leader ? String(leader.term) : "";
  const tb = document.querySelector("#nodes tbody");
  tb.textContent = "";
  for (const n of state.nodes) {
    const tr = document.createElement("tr");
    tr.dataset.node = n.id;
    tr.dataset.role = n.reachable ? (n.role || "") : "down";
    if (leader && n.id === leader.id) tr.className = "leader";
    if (!n.reachable) tr.className = "down";
    const proc = controlState[n.id] || (n.reachable ? "running" : "unreachable");
    const f = n.faults || {};
    const faults = [];
    if (f.isolated) faults.push(`isolated ${f.isolated}`);
    else if (f.blocked && f.blocked.length) faults.push(`${f.blocked.length} cut`);
    if (f.drop_rate) faults.push(`drop ${f.drop_rate}`);
    if (f.delay_ms) faults.push(`delay ${f.delay_ms}ms`);
    const cells = [n.id, proc, n.reachable ? n.role : "—", n.term ?? "", n.leader || "",
                   n.last_index ?? "", n.commit ?? "", n.applied ?? "", faults.join(", ")];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 2) td.className = "role-" + (n.role || "");
      tr.appendChild(td);
    });
    tb.appendChild(tr);
  }
  drawGraph(leader);
}

function drawGraph(leader) {
  const svg = $("graph");
  const ns = "http://www.w3.org/2000/svg";
  svg.textContent = "";
  const n = state.nodes.length;
  const pos = {};
  state.nodes.forEach((node, i) => {
    const a = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    pos[node.id] = [260 + 130 * Math.cos(a), 180 + 130 * Math.sin(a)];
  });
  const blocked = new Set();
  let lossy = false;
  for (const node of state.nodes) {
    const f = node.faults || {};
    for (const [a, b] of f.blocked || []) blocked.add(`${a}-${b}`);
    if (f.drop_rate || f.delay_ms) lossy = true;
    if (f.isolated) for (const o of state.nodes) { blocked.add(`${f.isolated}-${o.id}`); blocked.add(`${o.id}-${f.isolated}`); }
  }
  const now = Date.now();
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    const a = state.nodes[i].id, b = state.nodes[j].id;
    const line = document.createElementNS(ns, "line");
    [line.x1.baseVal.value, line.y1.baseVal.value] = pos[a];
    [line.x2.baseVal.value, line.y2.baseVal.value] = pos[b];
    const rate = (state.rates[`${a}-${b}`] || 0) + (state.rates[`${b}-${a}`] || 0);
    const fresh = (now - (state.lastMsgs[`${a}-${b}`] || 0) < 1500) || (now - (state.lastMsgs[`${b}-${a}`] || 0) < 1500);
    let cls = "link";
    if (blocked.has(`${a}-${b}`) || blocked.has(`${b}-${a}`)) cls += " cut";
    else if (lossy) cls += " lossy";
    else if (fresh) cls += " active";
    line.setAttribute("class", cls);
    line.setAttribute("stroke-width", String(1 + Math.min(8, Math.log2(1 + rate))));
    line.dataset.link = `${a}-${b}`;
    svg.appendChild(line);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", (pos[a][0] + pos[b][0]) / 2 + 4);
    label.setAttribute("y", (pos[a][1] + pos[b][1]) / 2 - 4);
    label.textContent = rate ? `${Math.round(rate)} msg/s` : "";
    svg.appendChild(label);
  }
  for (const node of state.nodes) {
    const g = document.createElementNS(ns, "g");
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", pos[node.id][0]); c.setAttribute("cy", pos[node.id][1]); c.setAttribute("r", 34);
    const color = !node.reachable ? "#ccc" : node.role === "leader" ? "#7fd69a"
      : node.role === "follower" ? "#9cc1f0" : "#f3c97a";
    c.setAttribute("fill", color); c.setAttribute("class", "node-circle");
    g.appendChild(c);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", pos[node.id][0] - 26); t.setAttribute("y", pos[node.id][1] - 4);
    t.textContent = `node ${node.id}`;
    g.appendChild(t);
    const t2 = document.createElementNS(ns, "text");
    t2.setAttribute("x", pos[node.id][0] - 26); t2.setAttribute("y", pos[node.id][1] + 12);
    t2.textContent = node.reachable ? `${node.role} t${node.term}` : "down";
    g.appendChild(t2);
    svg.appendChild(g);
  }
}

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

wire();
refresh();
connect();
setInterval(refresh, 500);
setInterval(decay, 500);
