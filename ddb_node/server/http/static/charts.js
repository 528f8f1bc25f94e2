// ddb dashboard charts: the last three minutes of every node's status frames (from /ws), drawn
// on plain canvases (no library, no CDN). Fed by DdbCharts.status(frame) and
// DdbCharts.election(term, leader); draws at most once a second and on resize.
// Each canvas carries data-* attributes with its newest values (what a test or a screen
// reader can check), and its aria-label says them in words.
"use strict";

const DdbCharts = (() => {
  const WINDOW_S = 180;
  const COLORS = ["#2456a6", "#0a7d28", "#b36b00", "#8e24aa", "#c62828", "#00838f", "#5d4037"];
  const nodes = {};        // id -> {points: [{t, commit, applied}], rates: [{t, reads, writes}], last}
  const lat = [];          // [{t (whole second), buckets: [[lo, hi, n]]}] merged per second
  const elections = [];    // [{t, term, leader}]
  const seenTerms = new Set();
  let firstSeen = null;    // the span grows from the page's first frame to WINDOW_S
  let dirty = false;

  const now = () => Date.now() / 1000;
  const colorOf = (id) => COLORS[(Number(id) - 1) % COLORS.length];

  function trim(arr, from) { while (arr.length && arr[0].t < from) arr.shift(); }

  function status(f) {
    const t = now();
    if (firstSeen === null) firstSeen = t;
    const n = nodes[f.node] || (nodes[f.node] = { points: [], rates: [], last: null });
    n.points.push({ t: t, commit: f.commit, applied: f.applied });
    if (n.last && f.t > n.last.t && f.pid === n.last.pid) {
      const dt = f.t - n.last.t;
      n.rates.push({ t: t, reads: Math.max(0, (f.reads - n.last.reads) / dt),
                     writes: Math.max(0, (f.writes - n.last.writes) / dt) });
    }
    n.last = { t: f.t, reads: f.reads, writes: f.writes, pid: f.pid };
    if (f.latency && f.latency.n) {
      const sec = Math.floor(t);
      let slot = lat.length && lat[lat.length - 1].t === sec ? lat[lat.length - 1] : null;
      if (!slot) { slot = { t: sec, buckets: [] }; lat.push(slot); }
      slot.buckets = slot.buckets.concat(f.latency.buckets);
    }
    if (f.role === "leader") election(f.term, f.node, false);
    dirty = true;
  }

  // fromEvent: a node said it became leader; otherwise a leader was seen in a status, and the
  // first such term is the one in office when the page opened, not an election seen here
  function election(term, leader, fromEvent) {
    if (term == null || seenTerms.has(term)) return;
    const first = seenTerms.size === 0;
    seenTerms.add(term);
    if (first && !fromEvent) return;
    elections.push({ t: now(), term: term, leader: leader });
    dirty = true;
  }

  function percentile(buckets, q) {
    const bs = buckets.slice().sort((a, b) => a[0] - b[0]);
    const n = bs.reduce((s, b) => s + b[2], 0);
    if (!n) return null;
    const rank = q * n;
    let seen = 0;
    for (const [lo, hi, c] of bs) {
      if (seen + c >= rank) return hi == null ? lo : lo + (hi - lo) * Math.max(0, rank - seen) / c;
      seen += c;
    }
    return bs[bs.length - 1][0];
  }

  // cluster requests/s at each whole second: every node's latest rate not older than 3 s
  function clusterRates(from, to) {
    const out = [];
    for (let s = Math.ceil(from); s <= to; s++) {
      let reads = 0, writes = 0, any = false;
      for (const n of Object.values(nodes)) {
        let r = null;
        for (let i = n.rates.length - 1; i >= 0; i--) if (n.rates[i].t <= s) { r = n.rates[i]; break; }
        if (r && s - r.t < 3) { reads += r.reads; writes += r.writes; any = true; }
      }
      if (any) out.push({ t: s, reads: reads, writes: writes });
    }
    return out;
  }

  // ---- drawing ------------------------------------------------------------------------
  function setup(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(120, canvas.clientWidth), h = Number(canvas.getAttribute("height")) || 110;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); }
    canvas.height = Math.round(h * dpr);
    canvas.style.height = h + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx: ctx, w: w, h: h, left: 46, right: w - 8, top: 8, bottom: h - 16 };
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v >= 100000) return (v / 1000).toFixed(0) + "k";
    if (v >= 10000) return (v / 1000).toFixed(1) + "k";
    if (v >= 10 || Number.isInteger(v)) return v.toFixed(0);
    return v.toFixed(v >= 1 ? 1 : 2);
  }

  function frame(g, from, to, ymin, ymax) {
    const { ctx, left, right, top, bottom } = g;
    const x = (t) => left + (right - left) * (t - from) / (to - from);
    const y = (v) => bottom - (bottom - top) * (v - ymin) / ((ymax - ymin) || 1);
    ctx.strokeStyle = "#e3e6ea"; ctx.fillStyle = "#666"; ctx.lineWidth = 1;
    ctx.font = "10px system-ui, sans-serif";
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let k = 0; k <= 2; k++) {
      const v = ymin + (ymax - ymin) * k / 2;
      ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(right, y(v)); ctx.stroke();
      ctx.fillText(fmt(v), left - 4, y(v));
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const span = to - from, step = span <= 60 ? 15 : span <= 120 ? 30 : 60;
    for (let s = 0; s <= span + 0.5; s += step) {
      ctx.textAlign = s === 0 ? "right" : s >= span - 0.5 ? "left" : "center";
      ctx.fillText(s === 0 ? "now" : s % 60 ? `-${s}s` : `-${s / 60}m`, x(to - s), bottom + 3);
    }
    // elections: a dashed line and the new term at the top
    ctx.strokeStyle = "#c62828"; ctx.fillStyle = "#c62828"; ctx.setLineDash([3, 3]);
    for (const e of elections) {
      if (e.t < from) continue;
      ctx.beginPath(); ctx.moveTo(x(e.t), top); ctx.lineTo(x(e.t), bottom); ctx.stroke();
      ctx.textAlign = "left"; ctx.textBaseline = "top";
      ctx.fillText(`t${e.term}`, x(e.t) + 2, top);
    }
    ctx.setLineDash([]);
    return { x: x, y: y };
  }

  function line(g, xy, pts, key, color, dashed) {
    const { ctx } = g;
    ctx.strokeStyle = color; ctx.lineWidth = 1.6; ctx.setLineDash(dashed ? [5, 3] : []);
    ctx.beginPath();
    let started = false, prev = null;
    for (const p of pts) {
      const v = p[key];
      if (v == null || (prev != null && p.t - prev > 3.5)) { started = false; }
      if (v == null) continue;
      if (!started) { ctx.moveTo(xy.x(p.t), xy.y(v)); started = true; } else ctx.lineTo(xy.x(p.t), xy.y(v));
      prev = p.t;
    }
    ctx.stroke(); ctx.setLineDash([]);
  }

  function legend(id, items) {
    const el = document.getElementById(id);
    el.textContent = "";
    for (const [label, color] of items) {
      const s = document.createElement("span");
      const i = document.createElement("i");
      i.style.background = color;
      s.appendChild(i);
      s.appendChild(document.createTextNode(label));
      el.appendChild(s);
    }
  }

  function drawIndex(to, from) {
    const c = document.getElementById("chart-index");
    const g = setup(c);
    let lo = Infinity, hi = -Infinity, count = 0;
    const last = {};
    for (const [id, n] of Object.entries(nodes)) {
      trim(n.points, to - WINDOW_S);
      for (const p of n.points) if (p.t >= from) { lo = Math.min(lo, p.applied, p.commit); hi = Math.max(hi, p.commit, p.applied); }
      count += n.points.length;
      const l = n.points[n.points.length - 1];
      if (l) last[id] = { commit: l.commit, applied: l.applied };
    }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    const xy = frame(g, from, to, Math.max(0, lo - 1), hi + Math.max(1, (hi - lo) * 0.05));
    for (const [id, n] of Object.entries(nodes)) {
      line(g, xy, n.points, "commit", colorOf(id), false);
      line(g, xy, n.points, "applied", colorOf(id), true);
    }
    legend("legend-index", Object.keys(nodes).map((id) => [`node ${id}`, colorOf(id)]));
    c.dataset.points = String(count);
    c.dataset.last = JSON.stringify(last);
    c.setAttribute("aria-label", "commit / applied index: " +
      Object.entries(last).map(([id, v]) => `node ${id} ${v.commit} / ${v.applied}`).join(", "));
  }

  function drawRate(to, from) {
    const c = document.getElementById("chart-rate");
    const g = setup(c);
    for (const n of Object.values(nodes)) trim(n.rates, to - WINDOW_S);
    const pts = clusterRates(from, to);
    const hi = niceMax(Math.max(1, ...pts.map((p) => Math.max(p.reads, p.writes))));
    const xy = frame(g, from, to, 0, hi);
    line(g, xy, pts, "writes", "#c62828", false);
    line(g, xy, pts, "reads", "#2456a6", false);
    const l = pts[pts.length - 1] || { reads: 0, writes: 0 };
    legend("legend-rate", [[`writes/s ${fmt(l.writes)}`, "#c62828"], [`reads/s ${fmt(l.reads)}`, "#2456a6"]]);
    c.dataset.points = String(pts.length);
    c.dataset.last = JSON.stringify({ reads: l.reads, writes: l.writes });
    c.dataset.maxWrites = String(Math.max(0, ...pts.map((p) => p.writes)));
    c.setAttribute("aria-label", `writes ${fmt(l.writes)}/s, reads ${fmt(l.reads)}/s`);
  }

  function drawLatency(to, from) {
    const c = document.getElementById("chart-latency");
    const g = setup(c);
    trim(lat, to - WINDOW_S);
    const pts = lat.map((s) => ({ t: s.t, p50: percentile(s.buckets, 0.5), p99: percentile(s.buckets, 0.99) }));
    const hi = niceMax(Math.max(1, ...pts.map((p) => p.p99 || 0)));
    const xy = frame(g, from, to, 0, hi);
    line(g, xy, pts, "p99", "#b36b00", false);
    line(g, xy, pts, "p50", "#0a7d28", false);
    const l = pts[pts.length - 1] || { p50: null, p99: null };
    const f = (v) => (v == null ? "–" : fmt(v));
    legend("legend-latency", [[`p50 ${f(l.p50)} ms`, "#0a7d28"], [`p99 ${f(l.p99)} ms`, "#b36b00"]]);
    c.dataset.points = String(pts.length);
    c.dataset.last = JSON.stringify({ p50: l.p50, p99: l.p99 });
    c.setAttribute("aria-label", `latency p50 ${f(l.p50)} ms, p99 ${f(l.p99)} ms`);
  }

  function draw() {
    const to = now();
    const span = firstSeen === null ? 30
      : Math.min(WINDOW_S, Math.max(30, Math.ceil((to - firstSeen + 5) / 30) * 30));
    const from = to - span;
    trim(elections, to - WINDOW_S);
    document.getElementById("chart-span").textContent =
      `(last ${span < 60 ? span + " s" : span / 60 + " min"}, from /ws)`;
    drawIndex(to, from);
    drawRate(to, from);
    drawLatency(to, from);
    document.getElementById("charts").dataset.elections = String(elections.length);
    dirty = false;
  }

  setInterval(() => { if (dirty || Object.keys(nodes).length) draw(); }, 1000);
  window.addEventListener("resize", () => draw());
  return { status: status, election: election, draw: draw, percentile: percentile };
})();
