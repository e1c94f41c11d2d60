// The registry dashboard: follows /api/changes (snapshot, then changes in sequence order, as PROTOCOL.md's Clone
// pattern), polls /metrics for the request counter, and renders with textContent only (no HTML from data).
"use strict";
(async function () {
  const state = { epoch: "", sequence: 0, leases: new Map(), nodes: new Map(), buses: new Map(), tools: new Map() };
  const feed = [];            // newest last, at most FEED_MAX
  const FEED_MAX = 300;
  const WINDOW = 300;         // seconds of chart history
  const changesPerSecond = new Map(), requestsPerSecond = new Map();
  let clockOffset = 0;        // registry clock minus browser clock, from heartbeats
  let lastRequests = null, lastRequestsAt = 0;
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function badge(value) { return el("span", value, "badge " + value); }
  function registryNow() { return Date.now() + clockOffset; }
  function ago(ms) {
    const s = Math.max(0, Math.round((registryNow() - ms) / 1000));
    return s < 60 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }
  function toolKey(t) { return t.name + "@" + t.version; }

  function adopt(snapshot) {
    state.epoch = snapshot.epoch; state.sequence = snapshot.sequence;
    state.leases = new Map(snapshot.leases.map(l => [l.leaseId, l]));
    state.nodes = new Map(snapshot.nodes.map(n => [n.nodeId, n]));
    state.buses = new Map(snapshot.buses.map(b => [b.name, b]));
    state.tools = new Map(snapshot.tools.map(t => [toolKey(t), t]));
    renderAll();
  }

  function apply(change) {
    if (change.epoch !== state.epoch || change.sequence <= state.sequence) return;
    state.sequence = change.sequence;
    const value = change.newValue || change.oldValue || {};
    const removed = !change.newValue;
    const set = (map, entity) => removed ? map.delete(change.key) : map.set(change.key, entity);
    if (value.lease) set(state.leases, change.newValue && change.newValue.lease);
    else if (value.node) set(state.nodes, change.newValue && change.newValue.node);
    else if (value.bus) set(state.buses, change.newValue && change.newValue.bus);
    else if (value.tool) set(state.tools, change.newValue && change.newValue.tool);
    feed.push(change);
    if (feed.length > FEED_MAX) feed.shift();
    bump(changesPerSecond, 1);
    renderAll();
  }

  function bump(series, n) {
    const second = Math.floor(Date.now() / 1000);
    series.set(second, (series.get(second) || 0) + n);
  }

  function rows(tbody, items, cells, empty) {
    tbody.replaceChildren();
    if (items.length === 0) {
      const td = el("td", empty, "empty"); td.colSpan = 9;
      tbody.append(el("tr")); tbody.lastChild.append(td);
      return;
    }
    for (const item of items) {
      const tr = el("tr");
      for (const cell of cells(item)) {
        const td = el("td");
        if (cell instanceof Node) td.append(cell); else td.textContent = cell;
        tr.append(td);
      }
      tbody.append(tr);
    }
  }

  function renderAll() {
    $("epoch").textContent = "epoch " + state.epoch;
    $("count-leases").textContent = state.leases.size;
    $("count-nodes").textContent = state.nodes.size;
    $("count-buses").textContent = state.buses.size;
    $("count-tools").textContent = state.tools.size;
    $("count-sequence").textContent = state.sequence;
    rows($("nodes").tBodies[0], [...state.nodes.values()], n => {
      const b = badge(n.health); b.dataset.node = n.nodeId;
      return [n.name ? n.nodeId + " (" + n.name + ")" : n.nodeId, b, n.host, ago(n.lastSeenAt)];
    }, "no nodes");
    renderLeases();
    rows($("buses").tBodies[0], [...state.buses.values()], b => {
      const ends = el("code", b.endpoints.join(" "));
      return [b.name, b.kind, badge(b.health), ends, b.nodeId];
    }, "no buses");
    renderTools();
    renderFeed();
  }

  function renderLeases() {
    const leases = [...state.leases.values()].sort((a, b) => a.port - b.port);
    rows($("leases").tBodies[0], leases, l => {
      const left = Math.max(0, Math.ceil((l.expiresAt - registryNow()) / 1000));
      const ttl = el("span", left + " s"); ttl.dataset.expires = l.expiresAt;
      const port = el("span", l.port); port.dataset.lease = l.leaseId;
      return [port, l.nodeId, l.purpose || "", ttl];
    }, "no leases");
  }

  function renderTools() {
    const box = $("tools"), select = $("validate-tool"), chosen = select.value;
    box.replaceChildren(); select.replaceChildren();
    if (state.tools.size === 0) box.append(el("p", "no tools", "muted"));
    for (const [key, t] of state.tools) {
      const d = el("details"), s = el("summary");
      s.append(el("strong", key), " ", badge(t.health), " ", el("code", t.fingerprint, "muted"));
      d.append(s);
      if (t.description) d.append(el("p", t.description));
      d.append(el("h3", "input schema"), el("pre", pretty(t.inputSchema)), el("h3", "output schema"), el("pre", pretty(t.outputSchema)));
      box.append(d);
      const o = el("option", key); o.value = key; select.append(o);
    }
    if (chosen && state.tools.has(chosen)) select.value = chosen;
  }

  function pretty(json) { try { return JSON.stringify(JSON.parse(json), null, 2); } catch { return json; } }

  function renderFeed() {
    const prefix = $("feed-prefix").value.trim(), list = $("feed");
    list.replaceChildren();
    for (let i = feed.length - 1; i >= 0 && list.childElementCount < 100; i--) {
      const c = feed[i];
      if (prefix && !c.changeType.startsWith(prefix)) continue;
      list.append(el("li", "#" + c.sequence + " " + new Date(c.timestamp).toLocaleTimeString() + " " + c.changeType + " " + c.key));
    }
  }

  function drawChart() {
    const canvas = $("chart"), ctx = canvas.getContext("2d");
    const width = canvas.clientWidth, height = canvas.clientHeight, ratio = window.devicePixelRatio || 1;
    if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const now = Math.floor(Date.now() / 1000), from = now - WINDOW;
    for (const series of [changesPerSecond, requestsPerSecond])
      for (const second of series.keys()) if (second < from) series.delete(second);
    let max = 1;
    for (const series of [changesPerSecond, requestsPerSecond]) for (const v of series.values()) max = Math.max(max, v);
    ctx.strokeStyle = "#e2e6ea"; ctx.beginPath(); ctx.moveTo(0, height - .5); ctx.lineTo(width, height - .5); ctx.stroke();
    ctx.fillStyle = "#6a7480"; ctx.font = "11px system-ui"; ctx.fillText(max.toFixed(0) + "/s", 4, 12);
    const line = (series, color) => {
      ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
      for (let s = from; s <= now; s++) {
        const x = (s - from) / WINDOW * width, y = height - 2 - (series.get(s) || 0) / max * (height - 16);
        if (s === from) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
    };
    line(changesPerSecond, "#2f6fdf");
    line(requestsPerSecond, "#b26a00");
  }

  async function pollRequests() {
    try {
      const text = await (await fetch("/metrics", { cache: "no-store" })).text();
      let total = 0;
      for (const line of text.split("\n"))
        if (line.startsWith("onex_registry_requests_total")) {
          // name{labels} value [timestamp]
          const rest = line.slice(line.lastIndexOf("}") + 1).trim().split(" ");
          total += Number(rest[0]) || 0;
        }
      $("count-requests").textContent = total;
      const at = Date.now();
      if (lastRequests !== null && total >= lastRequests) {
        const perSecond = (total - lastRequests) / Math.max(1, (at - lastRequestsAt) / 1000);
        for (let s = Math.floor(lastRequestsAt / 1000) + 1; s <= Math.floor(at / 1000); s++) requestsPerSecond.set(s, perSecond);
      }
      lastRequests = total; lastRequestsAt = at;
    } catch { /* the next poll tries again */ }
  }

  function connect() {
    const status = $("status");
    const source = new EventSource("/api/changes");
    source.addEventListener("snapshot", e => { adopt(JSON.parse(e.data)); status.textContent = "live"; status.className = "badge live"; });
    source.addEventListener("change", e => apply(JSON.parse(e.data)));
    source.addEventListener("heartbeat", e => {
      const hb = JSON.parse(e.data);
      clockOffset = hb.timestamp - Date.now();
      if (hb.stopping) { status.textContent = "registry stopping"; status.className = "badge down"; }
    });
    // EventSource reconnects by itself; the server starts every connection with a snapshot.
    source.onerror = () => { status.textContent = "reconnecting"; status.className = "badge resyncing"; };
  }

  $("feed-prefix").addEventListener("input", renderFeed);
  $("validate").addEventListener("submit", async e => {
    e.preventDefault();
    const result = $("validate-result");
    result.replaceChildren(el("span", "validating...", "muted"));
    try {
      const response = await fetch("/api/validate", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ tool: $("validate-tool").value, direction: $("validate-direction").value, payload: $("validate-payload").value }),
      });
      const body = await response.json();
      result.replaceChildren();
      if (!response.ok) { result.append(el("p", body.detail || ("HTTP " + response.status), "badge critical")); return; }
      if (body.valid) { result.append(el("p", "valid", "valid")); return; }
      const list = el("ul");
      for (const issue of body.errors) list.append(el("li", issue.path + " " + issue.kind + ": " + issue.message));
      result.append(el("p", body.errors.length + " issue(s)"), list);
    } catch (err) {
      result.replaceChildren(el("p", "request failed: " + err, "badge critical"));
    }
  });

  // With access control on, the views need an admin token: ask once, keep it in a same-site cookie the browser
  // sends with fetch and EventSource alike, and start again.
  async function ensureToken() {
    const probe = await fetch("/api/snapshot", { cache: "no-store" });
    if (probe.status !== 401 && probe.status !== 403) return true;
    const token = window.prompt(probe.status === 401
      ? "This registry requires an admin access token:"
      : "This token is not an admin's; enter an admin access token:");
    if (!token) { $("status").textContent = "token required"; $("status").className = "badge down"; return false; }
    document.cookie = "onex_token=" + encodeURIComponent(token.trim()) + "; path=/; SameSite=Strict";
    return ensureToken();
  }

  if (!(await ensureToken())) return;
  connect();
  pollRequests();
  setInterval(pollRequests, 2000);
  setInterval(() => { renderLeases(); drawChart(); }, 500);
})();
