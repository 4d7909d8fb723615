'use strict';
// hearth dashboard: one WebSocket speaking the MQTT API as JSON frames
// (docs/web.md). Retained state arrives first, then live updates; every
// change goes out as the same /set or bridge request any MQTT client sends.
(function () {
  const S = {
    base: 'hearth', auth: 'none', loopbackOnly: false, connected: false, bridgeOnline: null,
    devices: [], byName: new Map(), state: new Map(), avail: new Map(),
    rules: [], scenes: [], eco: null, events: [],
  };
  const pending = new Map();
  const mySets = new Map();
  const cards = new Map();
  let ws = null;
  let retry = 0;
  let txSeq = 0;
  let page = '';
  const main = document.getElementById('main');
  const $ = (sel) => document.querySelector(sel);

  // -- DOM helpers ----------------------------------------------------------
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    return fill(el, props, kids);
  }
  function s(tag, props, ...kids) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    return fill(el, props, kids);
  }
  function fill(el, props, kids) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (typeof v === 'boolean') el[k] = v;
      else el.setAttribute(k, String(v));
    }
    for (const kid of kids.flat(3)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  function show(...nodes) { main.replaceChildren(...nodes.flat()); }
  function toast(text, bad) {
    const t = h('div', { class: 'toast' + (bad ? ' bad' : ''), role: 'status' }, text);
    $('#toasts').append(t);
    setTimeout(() => t.remove(), bad ? 8000 : 4000);
  }
  function ago(ms) {
    if (!ms) return 'never';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return new Date(ms).toLocaleDateString();
  }
  function fmt(v, unit) {
    if (v === undefined) return '–';
    if (v === null) return 'null';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v === 'number') return (Math.round(v * 100) / 100) + (unit ? ' ' + unit : '');
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  // -- the WebSocket ----------------------------------------------------------
  function connect() {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    ws = new WebSocket(url, 'hearth');
    ws.onopen = () => { retry = 0; };
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    ws.onclose = async () => {
      ws = null;
      S.connected = false;
      link();
      if (await sessionOk()) setTimeout(connect, Math.min(10000, 500 * 2 ** retry++));
    };
  }
  async function sessionOk() {
    try {
      const r = await fetch('/api/session', { credentials: 'same-origin' });
      const s = await r.json();
      if (!s.authenticated) { location.replace('/login.html'); return false; }
    } catch (e) { /* the hub is restarting: keep trying */ }
    return true;
  }
  function send(frame) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; }
    toast('Not connected to the hub.', true);
    return false;
  }
  function publish(topic, payload) { return send({ op: 'publish', topic, payload }); }
  function setDevice(name, attrs) {
    mySets.set(name, Date.now());
    publish(S.base + '/' + name + '/set', attrs);
  }
  // A bridge request; resolves with data, rejects with the hub's error.
  function request(path, body) {
    return new Promise((resolve, reject) => {
      const tx = 'web-' + (++txSeq) + '-' + Math.random().toString(36).slice(2, 8);
      const timer = setTimeout(() => { pending.delete(tx); reject(new Error('no answer from the hub')); }, 10000);
      pending.set(tx, { resolve, reject, timer });
      if (!publish(S.base + '/bridge/request/' + path, Object.assign({}, body, { transaction: tx }))) {
        clearTimeout(timer); pending.delete(tx); reject(new Error('not connected'));
      }
    });
  }

  function onFrame(f) {
    if (f.op === 'hello') {
      S.base = f.base; S.auth = f.auth; S.loopbackOnly = f.loopback_only;
      banner();
      $('#logout').hidden = f.auth !== 'password';
      send({ op: 'subscribe', topic: S.base + '/#' });
    } else if (f.op === 'status') {
      S.connected = f.connected; link();
    } else if (f.op === 'message') {
      onMessage(f.topic, f.payload);
    } else if (f.op === 'error') {
      toast(f.error, true);
    }
  }

  function onMessage(topic, p) {
    const rest = topic.slice(S.base.length + 1);
    if (rest.startsWith('bridge/')) return onBridge(rest.slice(7), p);
    if (/\/(set|get)(\/[^/]+)?$/.test(rest)) return;
    if (rest.endsWith('/availability')) {
      const name = rest.slice(0, -13);
      S.avail.set(name, p && p.state);
      return deviceChanged(name);
    }
    if (p === null) S.state.delete(rest); else S.state.set(rest, p);
    deviceChanged(rest);
  }

  function onBridge(sub, p) {
    if (sub === 'devices') {
      S.devices = Array.isArray(p) ? p : [];
      S.byName = new Map(S.devices.map((d) => [d.name, d]));
      changed(['devices', 'device', 'scenes', 'ecosystem']);
    } else if (sub === 'rules') { S.rules = Array.isArray(p) ? p : []; changed(['rules']); }
    else if (sub === 'scenes') { S.scenes = Array.isArray(p) ? p : []; changed(['scenes']); }
    else if (sub === 'ecosystem') { S.eco = p; changed(['ecosystem']); }
    else if (sub === 'state') { S.bridgeOnline = !!(p && p.state === 'online'); link(); }
    else if (sub === 'event' && p) { S.events.unshift(Object.assign({ time: Date.now() }, p)); S.events.length = Math.min(S.events.length, 200); }
    else if (sub.startsWith('response/')) onResponse(sub.slice(9), p);
  }

  function onResponse(path, p) {
    if (!p) return;
    const waiting = p.transaction && pending.get(p.transaction);
    if (waiting) {
      pending.delete(p.transaction);
      clearTimeout(waiting.timer);
      if (p.status === 'ok') waiting.resolve(p.data || {}); else waiting.reject(new Error(p.error || 'refused'));
      return;
    }
    // a /set this page sent and the hub refused
    const dev = p.data && p.data.device;
    if (path === 'device/set' && p.status === 'error' && dev && Date.now() - (mySets.get(dev) || 0) < 15000) {
      toast(p.error, true);
      deviceChanged(dev);
    }
  }

  function link() {
    const el = $('#link');
    const live = ws && S.connected && S.bridgeOnline !== false;
    el.className = 'link ' + (live ? 'live' : 'down');
    el.textContent = !ws ? 'reconnecting' : !S.connected ? 'broker down' : S.bridgeOnline === false ? 'hub offline' : 'live';
  }

  function banner() {
    const b = $('#banner');
    b.hidden = S.auth !== 'none';
    b.textContent = 'No password is set: the dashboard answers on this machine only (' +
      location.host + '). Set [web] password_file in hearth.conf to reach it from your network (docs/web.md).';
  }

  // -- rendering --------------------------------------------------------------
  let queued = null;
  function changed(kinds) {
    if (!kinds.includes(page)) return;
    if (!queued) queued = requestAnimationFrame(() => { queued = null; render(); });
  }
  function deviceChanged(name) {
    const c = cards.get(name);
    if (c) c.update();
    if (page === 'device' && route().arg === name) updateDetail();
  }
  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    const p = parts[0] || 'devices';
    return { page: p, arg: parts[1] !== undefined ? decodeURIComponent(parts[1]) : undefined, sub: parts[2] };
  }
  function render() {
    const r = route();
    page = r.page;
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.page === page || a.dataset.page === page + 's');
    }
    cards.clear();
    const pages = { devices: pageDevices, device: pageDevice, rules: pageRules, rule: pageRule, scenes: pageScenes, scene: pageScene, ecosystem: pageEcosystem };
    (pages[page] || pageDevices)(r);
  }

  // -- device controls ----------------------------------------------------------
  function caps(d) { return (d.capabilities || []).filter((c) => c.name); }
  const can = { read: (c) => (c.access & 1) !== 0, set: (c) => (c.access & 2) !== 0 };

  function throttled(fn, ms) {
    let last = 0, timer = null, args = null;
    return function (...a) {
      args = a;
      const wait = last + ms - Date.now();
      if (wait <= 0) { last = Date.now(); fn(...args); }
      else if (!timer) timer = setTimeout(() => { timer = null; last = Date.now(); fn(...args); }, wait);
    };
  }

  // One control for one capability: {el, update(state)}; null when nothing to show.
  function control(d, c) {
    const label = c.name.replace(/_/g, ' ');
    const id = 'c-' + d.name.replace(/[^a-zA-Z0-9]/g, '_') + '-' + c.name;
    if (c.type === 'binary' && can.set(c)) {
      const box = h('input', { type: 'checkbox', class: 'switch', id, role: 'switch', 'aria-label': d.name + ' ' + label });
      box.addEventListener('change', () => setDevice(d.name, { [c.name]: box.checked ? c.value_on : c.value_off }));
      return { el: h('div', { class: 'ctl' }, h('label', { for: id }, label), box),
        update: (st) => { box.checked = st[c.name] === c.value_on; } };
    }
    if (c.type === 'numeric' && can.set(c) && can.read(c) && c.value_max !== undefined) {
      const range = h('input', { type: 'range', id, min: c.value_min || 0, max: c.value_max, step: c.value_step || 1, 'aria-label': d.name + ' ' + label });
      const out = h('span', { class: 'value' });
      const send = throttled((v) => setDevice(d.name, { [c.name]: v }), 200);
      range.addEventListener('pointerdown', () => { range.dataset.dragging = '1'; });
      range.addEventListener('pointerup', () => { delete range.dataset.dragging; });
      range.addEventListener('input', () => { out.textContent = fmt(Number(range.value), c.unit); send(Number(range.value)); });
      range.addEventListener('change', () => { delete range.dataset.dragging; setDevice(d.name, { [c.name]: Number(range.value) }); });
      return { el: h('div', { class: 'ctl' + (c.name === 'color_temp' ? ' ct' : '') }, h('label', { for: id }, label), range, out),
        update: (st) => {
          if (range.dataset.dragging || document.activeElement === range && Date.now() - (mySets.get(d.name) || 0) < 1500) return;
          if (typeof st[c.name] === 'number') range.value = st[c.name];
          out.textContent = fmt(st[c.name], c.unit);
        } };
    }
    if (c.type === 'enum' && can.set(c)) {
      const sel = h('select', { id, 'aria-label': d.name + ' ' + label }, h('option', { value: '' }, '–'), (c.values || []).map((v) => h('option', { value: v }, v)));
      sel.addEventListener('change', () => { if (sel.value) setDevice(d.name, { [c.name]: sel.value }); });
      return { el: h('div', { class: 'ctl' }, h('label', { for: id }, label), sel),
        update: (st) => { if (document.activeElement !== sel) sel.value = st[c.name] == null ? '' : st[c.name]; } };
    }
    if (c.name === 'color' && c.type === 'composite' && can.set(c)) {
      const pick = h('input', { type: 'color', id, 'aria-label': d.name + ' colour' });
      pick.addEventListener('change', () => setDevice(d.name, { color: hexToXy(pick.value) }));
      return { el: h('div', { class: 'ctl' }, h('label', { for: id }, 'colour'), pick),
        update: (st) => { const v = st.color; if (v && typeof v.x === 'number') pick.value = xyToHex(v.x, v.y); } };
    }
    if (!can.read(c)) return null;
    const val = h('span', { class: 'value' });
    return { el: h('div', { class: 'ctl' }, h('span', { class: 'name' }, label), val),
      update: (st) => { val.textContent = fmt(st[c.name], c.unit); } };
  }

  // CIE xy <-> sRGB, for colour lights.
  function hexToXy(hex) {
    const lin = (v) => { v /= 255; return v > 0.04045 ? ((v + 0.055) / 1.055) ** 2.4 : v / 12.92; };
    const [r, g, b] = [1, 3, 5].map((i) => lin(parseInt(hex.slice(i, i + 2), 16)));
    const X = r * 0.4124 + g * 0.3576 + b * 0.1805, Y = r * 0.2126 + g * 0.7152 + b * 0.0722, Z = r * 0.0193 + g * 0.1192 + b * 0.9505;
    const sum = X + Y + Z || 1;
    return { x: Math.round(X / sum * 10000) / 10000, y: Math.round(Y / sum * 10000) / 10000 };
  }
  function xyToHex(x, y) {
    const Y = 1, X = y ? x * Y / y : 0, Z = y ? (1 - x - y) * Y / y : 0;
    let rgb = [X * 3.2406 - Y * 1.5372 - Z * 0.4986, -X * 0.9689 + Y * 1.8758 + Z * 0.0415, X * 0.0557 - Y * 0.2040 + Z * 1.0570];
    const max = Math.max(...rgb, 1e-6);
    rgb = rgb.map((v) => Math.max(0, v / max)).map((v) => v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055);
    return '#' + rgb.map((v) => Math.round(Math.min(1, v) * 255).toString(16).padStart(2, '0')).join('');
  }

  // -- Devices -------------------------------------------------------------------
  function roomOf(d) {
    if (d.room) return d.room;
    const i = d.name.lastIndexOf('/');
    return i > 0 ? d.name.slice(0, i) : 'other';
  }
  function card(d) {
    const dot = h('span', { class: 'dot' });
    const seen = h('span', { class: 'seen' });
    const controls = caps(d).map((c) => control(d, c)).filter(Boolean);
    const el = h('article', { class: 'card', 'data-device': d.name },
      h('div', { class: 'card-head' }, dot, h('a', { href: '#/device/' + encodeURIComponent(d.name) }, d.name), seen),
      controls.map((c) => c.el));
    const update = () => {
      const st = S.state.get(d.name) || {};
      const online = S.avail.has(d.name) ? S.avail.get(d.name) === 'online' : d.available;
      dot.classList.toggle('off', !online);
      dot.title = online ? 'online' : 'offline';
      el.classList.toggle('offline', !online);
      seen.textContent = ago(d.last_seen);
      for (const c of controls) c.update(st);
    };
    update();
    cards.set(d.name, { update });
    return el;
  }
  function pageDevices() {
    if (!S.devices.length) return show(h('p', { class: 'muted' }, 'No devices yet. Enable a plugin in hearth.conf, or permit joining.'));
    const rooms = new Map();
    for (const d of S.devices) {
      const r = roomOf(d);
      if (!rooms.has(r)) rooms.set(r, []);
      rooms.get(r).push(d);
    }
    show([...rooms.keys()].sort().map((r) => h('section', { class: 'room' }, h('h2', null, r),
      h('div', { class: 'grid' }, rooms.get(r).map(card)))));
  }

  // -- Device detail ----------------------------------------------------------------
  let detail = null;
  function updateDetail() { if (detail) detail(); }
  function pageDevice(r) {
    const d = S.byName.get(r.arg);
    detail = null;
    if (!d) return show(h('p', null, 'No device is named ', h('b', null, r.arg || ''), '. ', h('a', { href: '#/devices' }, 'All devices')));
    const rename = h('input', { type: 'text', value: d.name, 'aria-label': 'new name' });
    const room = h('input', { type: 'text', value: d.room || '', placeholder: 'room', 'aria-label': 'room' });
    const ask = (path, body, done) => request(path, body).then((x) => { toast('Done.'); if (done) done(x); }).catch((e) => toast(e.message, true));
    const rows = caps(d).map((c) => {
      const ctl = control(d, c);
      const value = h('td', { class: 'num' });
      return { c, ctl, value, tr: h('tr', null, h('td', null, c.name), value, h('td', null, ctl && (can.set(c)) ? ctl.el : ''),
        h('td', { class: 'muted hide-narrow' }, [c.type, c.unit, (can.read(c) ? 'r' : '') + (can.set(c) ? 'w' : '')].filter(Boolean).join(' · '))) };
    });
    const numeric = caps(d).filter((c) => c.type === 'numeric' && can.read(c));
    const pickAttr = h('select', { 'aria-label': 'attribute to chart' }, numeric.map((c) => h('option', { value: c.name }, c.name)));
    const chart = h('div', null, h('p', { class: 'muted' }, numeric.length ? 'Loading history…' : 'No numeric attributes.'));
    const events = h('ul', { class: 'events' });
    const facts = h('dl', { class: 'facts' });
    const loadHistory = () => {
      if (!numeric.length) return;
      const attr = pickAttr.value;
      request('device/history', { id: d.id, attribute: attr, since: Date.now() - 24 * 3600e3, limit: 1000, events: 20 })
        .then((x) => {
          const c = numeric.find((n) => n.name === attr);
          chart.replaceChildren(lineChart(x.points || [], c && c.unit));
          events.replaceChildren(...(x.events || []).map((e) => h('li', null, new Date(e.time).toLocaleString(), ' · ', e.type, ' ', h('span', { class: 'muted' }, JSON.stringify(e.data)))));
          if (!(x.events || []).length) events.replaceChildren(h('li', { class: 'muted' }, 'No events stored.'));
        })
        .catch((e) => chart.replaceChildren(h('p', { class: 'error' }, e.message)));
    };
    pickAttr.addEventListener('change', loadHistory);
    show(
      h('p', null, h('a', { href: '#/devices' }, '← Devices')),
      h('section', { class: 'panel' },
        h('h1', null, d.name),
        facts,
        h('div', { class: 'row' },
          rename, h('button', { type: 'button', onclick: () => ask('device/rename', { from: d.id, to: rename.value.trim() }, (x) => { location.hash = '#/device/' + encodeURIComponent(x.to); }) }, 'Rename'),
          room, h('button', { type: 'button', onclick: () => ask('device/options', { id: d.id, options: { room: room.value.trim() || null } }) }, 'Move to room'),
          h('span', { class: 'spacer' }),
          h('button', { type: 'button', class: 'danger', onclick: () => { if (confirm('Remove ' + d.name + '? Its plugin may add it again.')) ask('device/remove', { id: d.id }, () => { location.hash = '#/devices'; }); } }, 'Remove'))),
      h('section', { class: 'panel' }, h('h2', null, 'Attributes'),
        h('div', { class: 'table-wrap' }, h('table', null, h('thead', null, h('tr', null, h('th', null, 'attribute'), h('th', null, 'value'), h('th', null, 'control'), h('th', { class: 'hide-narrow' }, 'kind'))),
          h('tbody', null, rows.map((x) => x.tr))))),
      h('section', { class: 'panel' }, h('div', { class: 'row' }, h('h2', null, 'History, last 24 h'), h('span', { class: 'spacer' }), pickAttr), chart),
      h('section', { class: 'panel' }, h('h2', null, 'Recent events'), events));
    detail = () => {
      const st = S.state.get(d.name) || {};
      const online = S.avail.has(d.name) ? S.avail.get(d.name) === 'online' : d.available;
      facts.replaceChildren(...[['id', d.id], ['plugin', d.plugin], ['vendor', d.vendor], ['model', d.model], ['description', d.description],
        ['room', d.room || '–'], ['available', online ? 'online' : 'offline'], ['last seen', ago(d.last_seen)]]
        .filter((f) => f[1]).flatMap((f) => [h('dt', null, f[0]), h('dd', null, f[1])]));
      for (const x of rows) {
        x.value.textContent = can.read(x.c) ? fmt(st[x.c.name], x.c.unit) : '';
        if (x.ctl) x.ctl.update(st);
      }
    };
    detail();
    loadHistory();
  }

  function lineChart(points, unit) {
    const pts = points.filter((p) => typeof p[1] === 'number');
    if (pts.length < 2) return h('p', { class: 'muted' }, 'Not enough stored values in the last 24 h.');
    const W = 640, H = 220, L = 48, R = 12, T = 12, B = 28;
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    let lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
    if (lo === hi) { lo -= 1; hi += 1; }
    const x = (t) => L + (t - t0) / (t1 - t0 || 1) * (W - L - R);
    const y = (v) => T + (hi - v) / (hi - lo) * (H - T - B);
    const time = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'history chart' },
      s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
      s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
      s('text', { x: L - 6, y: T + 10, 'text-anchor': 'end' }, fmt(hi, '')),
      s('text', { x: L - 6, y: H - B, 'text-anchor': 'end' }, fmt(lo, '')),
      s('text', { x: L, y: H - 8 }, time(t0)),
      s('text', { x: W - R, y: H - 8, 'text-anchor': 'end' }, time(t1) + (unit ? ' · ' + unit : '')),
      s('polyline', { class: 'line', points: pts.map((p) => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' ') }));
  }

  // -- Rules --------------------------------------------------------------------------
  function pageRules() {
    const row = (r) => {
      const sw = h('input', { type: 'checkbox', class: 'switch', checked: r.enabled !== false, 'aria-label': 'enable ' + r.id });
      sw.addEventListener('change', () => request(sw.checked ? 'rule/enable' : 'rule/disable', { id: r.id })
        .catch((e) => { toast(e.message, true); sw.checked = !sw.checked; }));
      return h('tr', { 'data-rule': r.id },
        h('td', null, sw),
        h('td', null, h('b', null, r.name || r.id), h('div', { class: 'muted' }, r.id + (r.source === 'file' ? ' · file' : ''))),
        h('td', { class: 'num' }, ago(r.last_fired)),
        h('td', { class: 'num' }, r.fired_count || 0),
        h('td', { class: 'num hide-narrow' }, r.running || 0),
        h('td', null, h('div', { class: 'row' },
          h('a', { href: '#/rule/' + encodeURIComponent(r.id) + '/trace' }, 'Trace'),
          h('a', { href: '#/rule/' + encodeURIComponent(r.id) + '/edit' }, r.source === 'file' ? 'View' : 'Edit'),
          h('button', { type: 'button', class: 'small plain', onclick: () => request('rule/trigger', { id: r.id }).then(() => toast('Ran ' + r.id + '.')).catch((e) => toast(e.message, true)) }, 'Run'))));
    };
    show(h('div', { class: 'row' }, h('h1', null, 'Rules'), h('span', { class: 'spacer' }), h('a', { href: '#/rule/new/edit' }, h('button', { type: 'button' }, 'New rule'))),
      S.rules.length
        ? h('div', { class: 'table-wrap' }, h('table', null,
          h('thead', null, h('tr', null, h('th', null, 'on'), h('th', null, 'rule'), h('th', null, 'last fired'), h('th', null, 'fired'), h('th', { class: 'hide-narrow' }, 'running'), h('th', null, ''))),
          h('tbody', null, S.rules.map(row))))
        : h('p', { class: 'muted' }, 'No rules yet.'));
  }

  function pageRule(r) {
    if (r.sub === 'trace') return pageTrace(r.arg);
    const rule = S.rules.find((x) => x.id === r.arg);
    const fresh = r.arg === 'new' || !rule;
    const template = { id: 'my-rule', name: 'What it does', triggers: [{ type: 'state', device: (S.devices[0] || {}).name || 'device', attribute: 'state', to: 'ON' }], actions: [] };
    const def = fresh ? template : Object.fromEntries(Object.entries(rule).filter(([k]) => !['source', 'fired_count', 'last_fired', 'running'].includes(k)));
    const readOnly = rule && rule.source === 'file';
    editor({
      title: fresh ? 'New rule' : 'Rule ' + rule.id, back: '#/rules', value: def, readOnly,
      note: readOnly ? 'This rule comes from a file in [rules] dir: change it there, then reload hearthd (SIGHUP).' : null,
      save: (obj) => request(fresh ? 'rule/add' : 'rule/update', obj).then(() => { toast('Rule saved.'); location.hash = '#/rules'; }),
    });
  }

  function pageTrace(id) {
    const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    show(h('p', null, h('a', { href: '#/rules' }, '← Rules')), h('section', { class: 'panel' }, h('h1', null, 'Why did ' + id + ' (not) run?'), body));
    request('rule/trace', { id }).then((x) => {
      const traces = (x.traces || []).slice().reverse();
      body.replaceChildren(h('p', { class: 'explanation' }, x.explanation || ''),
        ...traces.map((t) => h('div', { class: 'trace' },
          h('div', null, h('b', null, new Date(t.time).toLocaleString()), ' · trigger ', (t.trigger && (t.trigger.id + ' (' + t.trigger.type + ')')) || '?'),
          (t.conditions || []).map((c, i) => h('div', null, pill(c), ' ', c.path || 'conditions[' + i + ']', ' ', h('span', { class: 'muted' }, c.explanation || c.why || c.detail || ''))),
          (t.actions || []).map((a) => h('div', null, h('span', { class: 'pill' }, a.result || ''), ' ', a.path || '', a.error ? h('span', { class: 'error' }, ' ' + a.error) : '', a.ms !== undefined ? h('span', { class: 'muted' }, ' ' + a.ms + ' ms') : '')),
          h('div', { class: 'outcome' }, 'Outcome: ', t.outcome || ''))));
    }).catch((e) => body.replaceChildren(h('p', { class: 'error' }, e.message)));
  }
  function pill(c) {
    const ok = c.passed !== undefined ? c.passed : c.result === 'pass' || c.result === true || c.ok === true;
    return h('span', { class: 'pill ' + (ok ? 'pass' : 'fail') }, ok ? 'passed' : 'failed');
  }

  // -- the JSON editor, with errors shown at their path ----------------------------------
  function editor(o) {
    const text = h('textarea', { spellcheck: 'false', 'aria-label': 'JSON', readOnly: !!o.readOnly });
    text.value = JSON.stringify(o.value, null, 2);
    const problem = h('div', { class: 'path-error', role: 'alert', hidden: true });
    const say = (msg, at) => {
      problem.hidden = false;
      problem.replaceChildren(at ? h('span', null, 'Line ' + at.line + ': ') : '', msg);
      text.classList.add('bad');
      if (at) { text.focus(); text.setSelectionRange(at.start, at.end); }
    };
    const save = h('button', { type: 'button', disabled: !!o.readOnly }, 'Save');
    save.addEventListener('click', () => {
      problem.hidden = true; text.classList.remove('bad');
      let obj;
      try { obj = JSON.parse(text.value); } catch (e) {
        const m = /position (\d+)/.exec(e.message);
        const pos = m ? Number(m[1]) : 0;
        return say('Not valid JSON: ' + e.message, m ? lineAt(text.value, pos, pos + 1) : null);
      }
      save.disabled = true;
      o.save(obj).catch((e) => {
        const found = errorPath(e.message);
        const span = found && locate(text.value, found.path);
        say(h('span', null, found ? h('code', null, found.path) : '', found ? ': ' + found.reason : e.message), span);
      }).finally(() => { save.disabled = false; });
    });
    show(h('p', null, h('a', { href: o.back }, '← Back')),
      h('section', { class: 'panel' }, h('h1', null, o.title), o.note ? h('p', { class: 'muted' }, o.note) : '',
        h('div', { class: 'editor' }, text), problem, h('div', { class: 'row' }, save, h('a', { href: o.back }, 'Cancel'))));
  }
  // "rule 'x': actions[2].state.brightness: 300 is above ..." -> path and reason
  function errorPath(msg) {
    const m = /^(?:(?:rule|scene) '[^']*': )?((?:[A-Za-z_][\w-]*)(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): (.*)$/.exec(msg);
    const top = ['id', 'name', 'mode', 'max', 'cooldown', 'triggers', 'conditions', 'actions', 'targets', 'transition'];
    if (!m || !(/[.[]/.test(m[1]) || top.includes(m[1]))) return null;
    return { path: m[1], reason: m[2] };
  }
  function lineAt(text, start, end) {
    return { line: text.slice(0, start).split('\n').length, start, end: Math.max(end, start + 1) };
  }
  // Where the value at a path such as actions[2].state.brightness starts in JSON text.
  function locate(text, path) {
    const want = path.replace(/\[(\d+)\]/g, '.$1').split('.').filter(Boolean);
    let i = 0;
    const ws = () => { while (/\s/.test(text[i])) i++; };
    const str = () => { const st = i++; while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1; i++; return JSON.parse(text.slice(st, i)); };
    function value(depth) {
      ws();
      const start = i;
      if (depth === want.length) { skip(); return { start, end: i }; }
      if (text[i] === '{') {
        i++;
        for (;;) {
          ws(); if (text[i] === '}') { i++; return null; }
          const key = str(); ws(); i++;
          if (key === want[depth]) { const hit = value(depth + 1); if (hit) return hit; ws(); return { start, end: i }; }
          skip(); ws(); if (text[i] === ',') i++;
        }
      }
      if (text[i] === '[') {
        i++;
        for (let n = 0; ; n++) {
          ws(); if (text[i] === ']') { i++; return null; }
          if (String(n) === want[depth]) { const hit = value(depth + 1); return hit || { start, end: i }; }
          skip(); ws(); if (text[i] === ',') i++;
        }
      }
      skip();
      return null;
    }
    function skip() {
      ws();
      if (text[i] === '"') return str();
      if (text[i] === '{' || text[i] === '[') {
        const close = text[i] === '{' ? '}' : ']';
        i++;
        for (;;) { ws(); if (text[i] === close || i >= text.length) { i++; return; } if (close === '}') { str(); ws(); i++; } skip(); ws(); if (text[i] === ',') i++; }
      }
      while (i < text.length && !/[,\]}\s]/.test(text[i])) i++;
    }
    try {
      const hit = value(0);
      return hit ? lineAt(text, hit.start, hit.end) : null;
    } catch (e) { return null; }
  }

  // -- Scenes ------------------------------------------------------------------------------
  function pageScenes() {
    const activate = (id) => request('scene/activate', { id }).then(() => toast('Scene ' + id + ' activated.')).catch((e) => toast(e.message, true));
    const settable = S.devices.filter((d) => caps(d).some((c) => can.set(c) && can.read(c)));
    const boxes = settable.map((d) => h('label', { class: 'row' }, h('input', { type: 'checkbox', value: d.name }), d.name));
    const cid = h('input', { type: 'text', placeholder: 'id, e.g. movie-night', 'aria-label': 'scene id' });
    const cname = h('input', { type: 'text', placeholder: 'name', 'aria-label': 'scene name' });
    const capture = () => {
      const devices = boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value);
      request('scene/capture', { id: cid.value.trim(), name: cname.value.trim() || undefined, devices })
        .then(() => toast('Scene captured.')).catch((e) => toast(e.message, true));
    };
    show(h('h1', null, 'Scenes'),
      S.scenes.length ? h('div', { class: 'grid' }, S.scenes.map((sc) => h('article', { class: 'card', 'data-scene': sc.id },
        h('div', { class: 'card-head' }, h('b', null, sc.name || sc.id)),
        h('div', { class: 'muted' }, sc.id),
        h('ul', null, Object.entries(sc.targets || {}).map(([dev, st]) => h('li', null, dev, ': ', h('span', { class: 'muted' }, Object.entries(st).map(([k, v]) => k + ' ' + fmt(v)).join(', '))))),
        h('div', { class: 'row' },
          h('button', { type: 'button', onclick: () => activate(sc.id) }, 'Activate'),
          h('a', { href: '#/scene/' + encodeURIComponent(sc.id) + '/edit' }, 'Edit'),
          h('button', { type: 'button', class: 'small plain', onclick: () => { if (confirm('Remove scene ' + sc.id + '?')) request('scene/remove', { id: sc.id }).then(() => toast('Removed.')).catch((e) => toast(e.message, true)); } }, 'Remove')))))
        : h('p', { class: 'muted' }, 'No scenes yet.'),
      h('section', { class: 'panel' }, h('h2', null, 'Capture the current state as a scene'),
        h('div', { class: 'row' }, cid, cname, h('button', { type: 'button', onclick: capture }, 'Capture')),
        h('div', { class: 'grid' }, boxes)),
      h('p', null, h('a', { href: '#/scene/new/edit' }, 'Write a scene as JSON')));
  }
  function pageScene(r) {
    const sc = S.scenes.find((x) => x.id === r.arg);
    editor({
      title: sc ? 'Scene ' + sc.id : 'New scene', back: '#/scenes',
      value: sc || { id: 'my-scene', name: 'My scene', targets: {} },
      save: (obj) => request('scene/add', obj).then(() => { toast('Scene saved.'); location.hash = '#/scenes'; }),
    });
  }

  // -- Ecosystem ----------------------------------------------------------------------------
  function bars(title, obj) {
    const entries = Object.entries(obj || {}).sort((a, b) => b[1] - a[1]);
    const max = Math.max(1, ...entries.map((e) => e[1]));
    return h('section', { class: 'panel' }, h('h2', null, title), h('div', { class: 'bars' },
      entries.flatMap(([k, v]) => {
        const bar = h('div', { class: 'bar' });
        bar.style.width = (v / max * 100) + '%';
        return [h('span', null, k), h('div', null, bar), h('span', { class: 'num' }, v)];
      })));
  }
  function graph(links, cross) {
    const col = (list) => [...new Set(list)];
    const from = col(links.flatMap((l) => l.from || []));
    const to = col(links.flatMap((l) => l.to || []));
    const rules = links.map((l) => l.rule);
    const rows = Math.max(from.length, to.length, rules.length, 1);
    const W = 900, RH = 44, H = rows * RH + 20, NW = 230, NH = 28;
    const xs = [20, W / 2 - NW / 2, W - NW - 20];
    const ypos = (i, n) => 10 + (rows - n) * RH / 2 + i * RH;
    const node = (label, x, y, cls) => s('g', { class: cls }, s('rect', { x, y, width: NW, height: NH, rx: 8 }),
      s('text', { x: x + 10, y: y + 18 }, label.length > 30 ? label.slice(0, 29) + '…' : label), s('title', null, label));
    const edge = (x1, y1, x2, y2, hot) => s('path', { class: 'edge' + (hot ? ' cross' : ''), d: `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}` });
    const edges = [];
    links.forEach((l, i) => {
      const ry = ypos(i, rules.length) + NH / 2, hot = cross.has(l.rule);
      for (const f of l.from || []) edges.push(edge(xs[0] + NW, ypos(from.indexOf(f), from.length) + NH / 2, xs[1], ry, hot));
      for (const t of l.to || []) edges.push(edge(xs[1] + NW, ry, xs[2], ypos(to.indexOf(t), to.length) + NH / 2, hot));
    });
    return s('svg', { class: 'graph', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'linkage graph: devices that trigger rules, and the devices the rules act on' },
      edges,
      from.map((d, i) => node(d, xs[0], ypos(i, from.length), 'dev')),
      rules.map((r, i) => node(r, xs[1], ypos(i, rules.length), 'rule')),
      to.map((d, i) => node(d, xs[2], ypos(i, to.length), 'dev')));
  }
  function pageEcosystem() {
    const e = S.eco;
    if (!e) return show(h('p', { class: 'muted' }, 'Waiting for bridge/ecosystem…'));
    const fig = (label, v) => h('div', { class: 'figure' }, h('b', null, v === undefined ? '–' : v), label);
    const ids = (list) => new Set((list || []).map((x) => (typeof x === 'string' ? x : x && (x.id || x.rule))));
    show(h('h1', null, 'Ecosystem'),
      h('div', { class: 'figures' },
        fig('devices', e.devices), fig('online', e.devices_online), fig('plugins', e.plugins), fig('rules', e.rules), fig('scenes', e.scenes),
        fig('cross-plugin rules', (e.cross_plugin_rules || []).length), fig('firings, last hour', e.firings && e.firings.hour),
        fig('firings, last day', e.firings && e.firings.day), fig('commands, last hour', e.commands && e.commands.hour), fig('commands, last day', e.commands && e.commands.day)),
      h('section', { class: 'panel' }, h('h2', null, 'Which device triggers which'),
        (e.links || []).length ? graph(e.links, ids(e.cross_plugin_rules)) : h('p', { class: 'muted' }, 'No rule links devices yet.'),
        h('p', { class: 'muted' }, 'Left: devices whose changes trigger a rule; middle: rules; right: devices they act on. Thick lines: rules that span plugins.')),
      bars('Devices by plugin', e.by_plugin), bars('Devices by vendor', e.by_vendor), bars('Devices by capability', e.by_capability));
  }

  // -- the page's chrome ------------------------------------------------------------------------
  function theme(next) {
    const modes = ['auto', 'dark', 'light'];
    let m = localStorage.getItem('hearth-theme') || 'auto';
    if (next) m = modes[(modes.indexOf(m) + 1) % modes.length];
    localStorage.setItem('hearth-theme', m);
    if (m === 'auto') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.dataset.theme = m;
    $('#theme').title = 'theme: ' + m;
  }
  $('#theme').addEventListener('click', () => theme(true));
  $('#logout').addEventListener('click', () => {
    fetch('/api/logout', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}' })
      .finally(() => location.replace('/login.html'));
  });
  window.addEventListener('hashchange', render);
  theme(false);
  render();
  connect();
})();
