// recagent demo page: talks only to the JSON API and the event stream (/api/events).
'use strict';
const $ = (id) => document.getElementById(id);
const TOKEN = new URLSearchParams(location.search).get('token');
const COLORS = { idle: '#b8bec8', browsing: '#3b82f6', watching: '#16a34a', chatting: '#f59e0b', posting: '#db2777' };
const MAX_EVENTS = 5000, SHOWN_EVENTS = 400;

const S = { nodes: [], byId: new Map(), edges: [], adj: new Map(), selected: null, events: [], actions: new Set(),
  stats: null, chats: new Map(), pending: null, playAgent: null, state: null };

async function api(method, path, body) {
  const headers = { 'content-type': 'application/json' };
  if (TOKEN && method !== 'GET') headers.authorization = 'Bearer ' + TOKEN;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
  return data;
}
function toast(msg, ok) {
  const t = $('toast'); t.textContent = msg; t.className = 'show' + (ok ? ' ok' : '');
  clearTimeout(toast.t); toast.t = setTimeout(() => { t.className = ''; }, 5000);
}
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c])); }
function nameOf(id) { if (id < 0) return 'system'; const n = S.byId.get(id); return n ? n.name : 'agent ' + id; }

// ---- state line and controls
function showState(st) {
  S.state = st;
  const r = $('round'); r.textContent = `Round ${st.round} / ${st.rounds}`; r.dataset.round = st.round;
  $('time').textContent = st.time;
  const s = $('status');
  s.textContent = st.running ? 'running' : (st.finished ? 'finished' : 'paused');
  s.className = 'badge ' + (st.running ? 'running' : 'idle');
  $('btn-start').disabled = st.running || st.finished;
  $('btn-pause').disabled = !st.running;
  $('btn-step').disabled = st.running || st.finished;
  S.playAgent = st.roleplay_agent;
  showPlay();
}
for (const a of ['start', 'pause', 'step', 'reset']) {
  $('btn-' + a).onclick = async () => {
    try { const r = await api('POST', '/api/control', { action: a }); showState(r.state); } catch (e) { toast(e.message); }
  };
}

// ---- graph: a small force layout on a canvas (1,000 nodes are drawn, not laid out in the DOM)
const G = { canvas: $('graph'), ctx: null, x: null, y: null, vx: null, vy: null, alpha: 1, scale: 1, ox: 0, oy: 0, w: 0, h: 0, drag: null };
G.ctx = G.canvas.getContext('2d');
function hash(i) { let h = (i + 1) * 2654435761 >>> 0; h ^= h >>> 13; h = Math.imul(h, 1274126177) >>> 0; return (h >>> 0) / 4294967296; }
function setGraph(g) {
  S.nodes = g.nodes; S.byId = new Map(g.nodes.map((n, i) => [n.id, Object.assign(n, { i })]));
  S.edges = g.edges.filter(([a, b]) => S.byId.has(a) && S.byId.has(b)).map(([a, b]) => [S.byId.get(a).i, S.byId.get(b).i]);
  S.adj = new Map(); for (const [a, b] of g.edges) { (S.adj.get(a) || S.adj.set(a, []).get(a)).push(b); (S.adj.get(b) || S.adj.set(b, []).get(b)).push(a); }
  const n = S.nodes.length; G.x = new Float64Array(n); G.y = new Float64Array(n); G.vx = new Float64Array(n); G.vy = new Float64Array(n);
  const R = Math.sqrt(n) * 18;
  for (let i = 0; i < n; i++) { const a = hash(i) * 6.283, r = R * Math.sqrt(hash(i + 7919)); G.x[i] = Math.cos(a) * r; G.y[i] = Math.sin(a) * r; }
  G.alpha = 1; $('graph-info').textContent = `${n} agents, ${S.edges.length} ties`;
  fitView(); requestAnimationFrame(tick);
}
function layoutStep() {
  const n = S.nodes.length, x = G.x, y = G.y, vx = G.vx, vy = G.vy, k = n <= 100 ? 55 : 30, rep = k * k * 0.9;
  for (let i = 0; i < n; i++) {
    let fx = -x[i] * 0.012, fy = -y[i] * 0.012;
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const dx = x[i] - x[j], dy = y[i] - y[j], d2 = dx * dx + dy * dy + 0.01;
      if (d2 > 40000) continue;
      fx += dx * rep / d2 / Math.sqrt(d2); fy += dy * rep / d2 / Math.sqrt(d2);
    }
    vx[i] = (vx[i] + fx) * 0.6; vy[i] = (vy[i] + fy) * 0.6;
  }
  for (const [a, b] of S.edges) {
    const dx = x[b] - x[a], dy = y[b] - y[a], d = Math.sqrt(dx * dx + dy * dy) + 0.01, f = (d - k) / d * 0.04;
    vx[a] += dx * f; vy[a] += dy * f; vx[b] -= dx * f; vy[b] -= dy * f;
  }
  for (let i = 0; i < n; i++) { const m = Math.min(10, Math.hypot(vx[i], vy[i])) / (Math.hypot(vx[i], vy[i]) || 1); x[i] += vx[i] * m * G.alpha; y[i] += vy[i] * m * G.alpha; }
  G.alpha *= 0.985;
}
function fitView() {
  const r = G.canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
  G.w = r.width; G.h = r.height; G.canvas.width = r.width * dpr; G.canvas.height = r.height * dpr; G.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const n = S.nodes.length; if (!n) return;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) { x0 = Math.min(x0, G.x[i]); x1 = Math.max(x1, G.x[i]); y0 = Math.min(y0, G.y[i]); y1 = Math.max(y1, G.y[i]); }
  G.scale = Math.min((G.w - 40) / (x1 - x0 + 1), (G.h - 40) / (y1 - y0 + 1));
  G.ox = G.w / 2 - (x0 + x1) / 2 * G.scale; G.oy = G.h / 2 - (y0 + y1) / 2 * G.scale;
}
let frames = 0;
function tick() {
  if (G.alpha > 0.02) {
    const per = S.nodes.length > 500 ? 1 : 3;
    for (let s = 0; s < per; s++) layoutStep();
    if (!G.userView) fitView();
    requestAnimationFrame(tick);
  }
  draw();
}
function draw() {
  const c = G.ctx, n = S.nodes.length; c.clearRect(0, 0, G.w, G.h);
  const sx = (i) => G.x[i] * G.scale + G.ox, sy = (i) => G.y[i] * G.scale + G.oy;
  c.lineWidth = 0.6; c.strokeStyle = n > 300 ? 'rgba(120,130,145,0.10)' : 'rgba(120,130,145,0.35)'; c.beginPath();
  for (const [a, b] of S.edges) { c.moveTo(sx(a), sy(a)); c.lineTo(sx(b), sy(b)); }
  c.stroke();
  const sel = S.selected != null ? S.byId.get(S.selected) : null;
  const nb = sel ? new Set(S.adj.get(sel.id) || []) : new Set();
  if (sel) {
    c.strokeStyle = 'rgba(37,99,235,0.7)'; c.lineWidth = 1.2; c.beginPath();
    for (const o of nb) { const j = S.byId.get(o); if (j) { c.moveTo(sx(sel.i), sy(sel.i)); c.lineTo(sx(j.i), sy(j.i)); } }
    c.stroke();
  }
  const r = Math.max(2.2, Math.min(7, 260 / Math.sqrt(n + 1) * G.scale / 3));
  for (const st of Object.keys(COLORS)) {
    c.fillStyle = COLORS[st]; c.beginPath();
    for (const nd of S.nodes) { if (nd.state !== st) continue; c.moveTo(sx(nd.i) + r, sy(nd.i)); c.arc(sx(nd.i), sy(nd.i), r, 0, 6.2832); }
    c.fill();
  }
  c.font = '11px system-ui, sans-serif'; c.fillStyle = '#1f2430';
  const label = (nd) => { c.fillText(nd.name, sx(nd.i) + r + 2, sy(nd.i) + 3); };
  if (n <= 60) for (const nd of S.nodes) label(nd);
  if (S.playAgent != null && S.byId.get(S.playAgent)) {
    const p = S.byId.get(S.playAgent); c.strokeStyle = '#db2777'; c.lineWidth = 2; c.setLineDash([3, 2]); c.beginPath(); c.arc(sx(p.i), sy(p.i), r + 6, 0, 6.2832); c.stroke(); c.setLineDash([]);
  }
  if (sel) {
    c.strokeStyle = '#111'; c.lineWidth = 2; c.beginPath(); c.arc(sx(sel.i), sy(sel.i), r + 3, 0, 6.2832); c.stroke();
    c.font = 'bold 12px system-ui, sans-serif';
    const t = sel.name, w = c.measureText(t).width; c.fillStyle = 'rgba(255,255,255,0.85)'; c.fillRect(sx(sel.i) + r + 3, sy(sel.i) - 9, w + 4, 15);
    c.fillStyle = '#111'; c.fillText(t, sx(sel.i) + r + 5, sy(sel.i) + 3);
  }
}
G.canvas.addEventListener('click', (e) => {
  if (G.moved) return;
  const rc = G.canvas.getBoundingClientRect(), mx = e.clientX - rc.left, my = e.clientY - rc.top;
  let best = null, bd = 144;
  for (const nd of S.nodes) { const dx = G.x[nd.i] * G.scale + G.ox - mx, dy = G.y[nd.i] * G.scale + G.oy - my, d = dx * dx + dy * dy; if (d < bd) { bd = d; best = nd; } }
  if (best) select(best.id);
});
G.canvas.addEventListener('wheel', (e) => {
  e.preventDefault(); G.userView = true;
  const rc = G.canvas.getBoundingClientRect(), mx = e.clientX - rc.left, my = e.clientY - rc.top, f = e.deltaY < 0 ? 1.15 : 1 / 1.15;
  G.ox = mx - (mx - G.ox) * f; G.oy = my - (my - G.oy) * f; G.scale *= f; draw();
}, { passive: false });
G.canvas.addEventListener('mousedown', (e) => { G.drag = [e.clientX, e.clientY, G.ox, G.oy]; G.moved = false; });
window.addEventListener('mousemove', (e) => {
  if (!G.drag) return; const dx = e.clientX - G.drag[0], dy = e.clientY - G.drag[1];
  if (Math.abs(dx) + Math.abs(dy) > 3) { G.moved = true; G.userView = true; G.ox = G.drag[2] + dx; G.oy = G.drag[3] + dy; draw(); }
});
window.addEventListener('mouseup', () => { G.drag = null; setTimeout(() => { G.moved = false; }, 0); });
G.canvas.addEventListener('dblclick', () => { G.userView = false; fitView(); draw(); });
window.addEventListener('resize', () => { fitView(); draw(); drawCharts(); });

// ---- agent card
async function select(id) {
  S.selected = id; draw(); renderLog();
  try { showCard(await api('GET', '/api/agents/' + id)); } catch (e) { toast(e.message); }
  showChat(); showPlay();
}
const stars = (r) => r ? '★'.repeat(r) + '☆'.repeat(5 - r) : 'unrated';
function showCard(c) {
  $('card-empty').hidden = true; $('card').hidden = false;
  $('card-name').textContent = `${c.name} (#${c.id})`;
  const st = $('card-state'); st.textContent = c.state; st.className = 'badge ' + c.state;
  $('card-meta').textContent = `${c.age}, ${c.gender} · ${c.status} · ${c.contacts.length} contacts`;
  $('card-profile').innerHTML = `<dt>Traits</dt><dd>${esc(c.traits)}</dd><dt>Interests</dt><dd>${esc(c.interest)}</dd>`;
  const f = $('profile-form'); for (const k of ['age', 'gender', 'status', 'traits', 'interest']) f.elements[k].value = c[k];
  $('card-watched').innerHTML = c.watched.length ? c.watched.slice().reverse().map((w) => `<li><span>${esc(w.title)}</span><span class="stars">${stars(w.rating)}</span></li>`).join('') : '<li class="muted">nothing yet</li>';
  $('card-heard').innerHTML = c.heard.length ? c.heard.slice().reverse().map((h) => `<li><span>${esc(h.title)}</span><span class="muted">round ${h.round}${h.rating ? ' · ' + stars(h.rating) : ''}</span></li>`).join('') : '<li class="muted">nothing yet</li>';
  $('card-memories').innerHTML = c.memories.length ? c.memories.slice(0, 8).map((m) => `<li>${esc(m)}</li>`).join('') : '<li class="muted">no memories yet</li>';
}
$('profile-form').onsubmit = async (e) => {
  e.preventDefault(); if (S.selected == null) return;
  const f = e.target, patch = {};
  for (const k of ['gender', 'status', 'traits', 'interest']) patch[k] = f.elements[k].value;
  patch.age = Number(f.elements.age.value);
  try { showCard(await api('PATCH', `/api/agents/${S.selected}/profile`, patch)); $('profile-result').textContent = 'saved'; }
  catch (err) { $('profile-result').textContent = err.message; toast(err.message); }
};

// ---- tabs
for (const b of document.querySelectorAll('.tabs button')) {
  b.onclick = () => {
    for (const x of document.querySelectorAll('.tabs button')) x.classList.toggle('active', x === b);
    for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t.id === 'tab-' + b.dataset.tab);
  };
}
function tab(name) { document.querySelector(`.tabs button[data-tab="${name}"]`).click(); }

// ---- interview and messages
function showChat() {
  const id = S.selected; $('chat-who').textContent = id == null ? 'Select an agent first.' : `Talking to ${nameOf(id)} (#${id}). Answers come at the next round boundary.`;
  const log = S.chats.get(id) || [];
  $('chat-log').innerHTML = log.map((b) => `<div class="bubble ${b.k}">${esc(b.t)}</div>`).join('');
  $('chat-log').scrollTop = 1e9;
}
$('chat-form').onsubmit = async (e) => {
  e.preventDefault(); const id = S.selected, text = $('chat-input').value.trim(); if (id == null || !text) return;
  const mode = $('chat-mode').value, log = S.chats.get(id) || []; S.chats.set(id, log);
  const wait = { k: 'a wait', t: 'waiting for the round boundary…' };
  log.push({ k: mode === 'interview' ? 'q' : 'm', t: text }); if (mode === 'interview') log.push(wait);
  $('chat-input').value = ''; showChat();
  try {
    if (mode === 'interview') { const r = await api('POST', `/api/agents/${id}/interview`, { question: text }); wait.k = 'a'; wait.t = r.answer; }
    else { await api('POST', `/api/agents/${id}/message`, { text }); log.push({ k: 'a wait', t: 'message delivered to its memory' }); }
  } catch (err) { wait.k = 'a wait'; wait.t = 'error: ' + err.message; if (mode !== 'interview') log.push(wait); }
  if (S.selected === id) showChat();
};

// ---- role play
function showPlay() {
  $('play-who').textContent = S.playAgent == null ? 'Nobody is played.' : `You play ${nameOf(S.playAgent)} (#${S.playAgent}).`;
  $('btn-play').disabled = S.selected == null || S.selected === S.playAgent;
  $('btn-release').disabled = S.playAgent == null;
  const p = S.pending; $('play-pending').hidden = !p; $('play-idle').hidden = !!p;
  if (!p) return;
  $('play-kind').textContent = `${nameOf(p.agent)} · round ${p.round} · ${p.kind} decision`;
  $('play-prompt').textContent = p.prompt;
  $('play-choices').innerHTML = '';
  for (const c of p.choices) { const b = document.createElement('button'); b.textContent = c.label; b.onclick = () => answer(c.answer); $('play-choices').appendChild(b); }
}
async function answer(text) {
  const p = S.pending; if (!p) return;
  try { await api('POST', '/api/roleplay/answer', { id: p.id, answer: text }); $('play-result').textContent = 'answered: ' + text; }
  catch (e) { $('play-result').textContent = e.message; }
}
$('play-form').onsubmit = (e) => { e.preventDefault(); const t = $('play-input').value.trim(); if (t) answer(t); };
$('btn-play').onclick = async () => { try { const r = await api('POST', '/api/roleplay', { agent: S.selected }); S.playAgent = r.agent; showPlay(); draw(); } catch (e) { toast(e.message); } };
$('btn-release').onclick = async () => { try { await api('POST', '/api/roleplay', { agent: null }); S.playAgent = null; showPlay(); draw(); } catch (e) { toast(e.message); } };
setInterval(() => {
  const p = S.pending; if (!p) return; const left = Math.max(0, Math.round(p.timeout_secs - (Date.now() - p.at) / 1000));
  $('play-timer').textContent = left + ' s left';
}, 500);

// ---- settings
$('settings-form').onsubmit = async (e) => {
  e.preventDefault(); const f = e.target, cfg = S.config || {}, out = [];
  for (const k of ['rec_model', 'page_size', 'rec_random_k', 'active_prob']) {
    const v = f.elements[k].value; if (v === '' || String(cfg[k]) === v) continue;
    try { await api('POST', '/api/settings', { key: k, value: v }); cfg[k] = f.elements[k].type === 'number' ? Number(v) : v; out.push(`${k} = ${v}`); }
    catch (err) { out.push(err.message); }
  }
  $('settings-result').textContent = out.length ? out.join('; ') : 'nothing changed';
};
function showConfig(cfg) {
  S.config = cfg; $('config-json').textContent = JSON.stringify(cfg, null, 2);
  const f = $('settings-form'); for (const k of ['rec_model', 'page_size', 'rec_random_k', 'active_prob']) if (cfg[k] !== undefined) f.elements[k].value = cfg[k];
}

// ---- event log
function addEvents(msgs) {
  for (const m of msgs) { S.events.push(m); if (!S.actions.has(m.action)) { S.actions.add(m.action); const o = document.createElement('option'); o.value = o.textContent = m.action; $('filter-action').appendChild(o); } }
  if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
  renderLog();
}
function renderLog() {
  const fa = $('filter-agent').value.trim().toLowerCase(), act = $('filter-action').value;
  const ok = (m) => (!act || m.action === act) && (!fa || String(m.agent_id) === fa || nameOf(m.agent_id).toLowerCase().includes(fa));
  const shown = []; let total = 0;
  for (let i = S.events.length - 1; i >= 0; i--) { const m = S.events[i]; if (!ok(m)) continue; total++; if (shown.length < SHOWN_EVENTS) shown.push(m); }
  $('log').innerHTML = shown.map((m) => `<div class="ev${m.agent_id === S.selected ? ' sel' : ''}" data-a="${m.agent_id}"><span class="r">r${m.round}</span><span class="who">${esc(nameOf(m.agent_id))}</span><span class="act">${esc(m.action)}</span><span class="txt" title="${esc(m.content)}">${esc(m.content)}</span></div>`).join('');
  $('log-count').textContent = `${total} events${total > SHOWN_EVENTS ? ` (latest ${SHOWN_EVENTS} shown)` : ''}`;
}
$('filter-agent').oninput = renderLog; $('filter-action').onchange = renderLog;
$('log').onclick = (e) => { const row = e.target.closest('.ev'); if (row && Number(row.dataset.a) >= 0) select(Number(row.dataset.a)); };

// ---- statistics and charts
function showStats(st) {
  S.stats = st;
  const rows = [['Agents', st.agents], ['Items', st.items], ['Watches', st.interactions], ['Active (last)', st.active_agents], ['Chats', st.chats], ['Posts', st.posts]];
  $('stats-numbers').innerHTML = rows.map(([k, v]) => `<span>${k}</span><b>${v}</b>`).join('');
  const li = (t) => `<li title="${esc(t.title)}">${esc(t.title)} <span class="muted">(${t.count})</span></li>`;
  $('top-watched').innerHTML = st.most_watched.slice(0, 4).map(li).join('') || '<li class="muted">–</li>';
  $('top-heard').innerHTML = st.most_talked_about.slice(0, 4).map(li).join('') || '<li class="muted">–</li>';
  drawCharts();
}
function chart(id, values, color, fixedMax) {
  const cv = $(id), r = cv.getBoundingClientRect(), dpr = window.devicePixelRatio || 1, c = cv.getContext('2d');
  cv.width = r.width * dpr; cv.height = r.height * dpr; c.setTransform(dpr, 0, 0, dpr, 0, 0); c.clearRect(0, 0, r.width, r.height);
  const pts = values.map((v, i) => [i, v]).filter((p) => p[1] != null);
  c.strokeStyle = '#e3e6ea'; c.beginPath(); c.moveTo(24, 4); c.lineTo(24, r.height - 12); c.lineTo(r.width - 2, r.height - 12); c.stroke();
  c.fillStyle = '#6b7280'; c.font = '10px system-ui, sans-serif';
  if (!pts.length) { c.fillText('no rounds yet', 30, r.height / 2); return; }
  const max = fixedMax || Math.max(...pts.map((p) => p[1])) * 1.1 || 1, n = values.length;
  const X = (i) => 26 + (n <= 1 ? 0.5 : i / (n - 1)) * (r.width - 32), Y = (v) => r.height - 12 - v / max * (r.height - 18);
  c.fillText(max >= 10 ? Math.round(max) : max.toFixed(1), 0, 10); c.fillText('0', 12, r.height - 12);
  c.fillText('r1', 24, r.height - 1); if (n > 1) { const t = 'r' + n; c.fillText(t, r.width - 2 - c.measureText(t).width, r.height - 1); }
  c.strokeStyle = color; c.lineWidth = 1.8; c.beginPath(); pts.forEach(([i, v], k) => (k ? c.lineTo(X(i), Y(v)) : c.moveTo(X(i), Y(v)))); c.stroke();
  c.fillStyle = color; for (const [i, v] of pts) { c.beginPath(); c.arc(X(i), Y(v), 2.2, 0, 6.2832); c.fill(); }
}
function drawCharts() {
  const rs = (S.stats && S.stats.rounds) || [];
  chart('chart-watches', rs.map((r) => r.watches), '#16a34a');
  chart('chart-rating', rs.map((r) => r.mean_rating), '#d97706', 5);
  chart('chart-entropy', rs.map((r) => r.entropy_watched), '#7c3aed');
}

// ---- loading and the live stream
async function loadAll() {
  const [st, g, stats, cfg, rp] = await Promise.all([api('GET', '/api/state'), api('GET', '/api/graph'), api('GET', '/api/stats'), api('GET', '/api/config'), api('GET', '/api/roleplay/pending')]);
  setGraph(g); showStats(stats); showConfig(cfg);
  S.pending = rp.pending ? Object.assign(rp.pending, { at: Date.now() }) : null; showState(st);
  if (S.selected != null && S.byId.has(S.selected)) select(S.selected);
}
function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('hello', (e) => showState(JSON.parse(e.data)));
  es.addEventListener('state', (e) => showState(JSON.parse(e.data)));
  es.addEventListener('round', (e) => {
    const d = JSON.parse(e.data);
    for (const [id, s] of d.states) { const n = S.byId.get(id); if (n) n.state = s; }
    addEvents(d.messages); showStats(d.stats); showState(d.state); draw();
    if (S.selected != null) api('GET', '/api/agents/' + S.selected).then(showCard).catch(() => {});
  });
  es.addEventListener('reset', (e) => { S.events = []; S.chats.clear(); renderLog(); showState(JSON.parse(e.data)); loadAll(); });
  es.addEventListener('resync', () => loadAll());
  es.addEventListener('roleplay', (e) => {
    const d = JSON.parse(e.data); S.pending = d.pending ? Object.assign(d.pending, { at: Date.now() }) : null;
    if ('agent' in d) S.playAgent = d.agent;
    if (S.pending) { tab('play'); $('play-result').textContent = ''; }
    showPlay(); draw();
  });
  es.addEventListener('intervention', (e) => { const d = JSON.parse(e.data); if (d.intervention.kind === 'profile' && d.intervention.agent === S.selected) select(S.selected); });
  es.addEventListener('error', (e) => { if (e.data) toast(JSON.parse(e.data).error); });
}
// For the browser test: where agent `id` is drawn, in page coordinates.
window.demoNodePos = (id) => { const n = S.byId.get(id), r = G.canvas.getBoundingClientRect(); return n ? [r.left + G.x[n.i] * G.scale + G.ox, r.top + G.y[n.i] * G.scale + G.oy] : null; };
loadAll().then(connect).catch((e) => toast('cannot load: ' + e.message));
