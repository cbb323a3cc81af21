// control/dashboard/dashboard.js: the dashboard's code (index.html; inlined at build).
'use strict';
(function () {
  const POLL_MS = 2000;            // refresh period
  const KEEP_MS = 5 * 60 * 1000;   // history of counter samples kept in memory
  const WINDOW_MS = 60 * 1000;     // window of "share" and of the country matrix
  const FETCH_TIMEOUT_MS = 5000;
  const TOP_COUNTRIES = 15;
  const LIST_MAX = 10;
  const TOKEN_KEY = 'meridian.admin.token';
  const NEW_SESSIONS_METRIC = 'meridian_new_sessions_total';

  const S = {
    token: '',
    timer: null,
    inFlight: false,
    again: false,
    authFailed: false,
    lastOk: 0,
    status: null,
    samples: [],        // [{t, c: {cluster: {req, ns}}}]
    metricSamples: [],  // [{t, m: Map("country\u0001cluster" -> value)}]
    layoutKey: '',
    rows: new Map(),    // cluster name -> row refs
    busy: new Set(),    // clusters with a change in flight
    modalOpen: false,
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------ DOM helpers
  // el(tag, {class, text, title, attrs...}, children): text goes through
  // textContent, attributes through setAttribute; never innerHTML.
  function el(tag, props, children) {
    const n = document.createElement(tag);
    if (props) {
      for (const k of Object.keys(props)) {
        const v = props[k];
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') n.className = v;
        else if (k === 'text') n.textContent = String(v);
        else if (k === 'on') { for (const ev of Object.keys(v)) n.addEventListener(ev, v[ev]); }
        else if (k === 'style') n.setAttribute('style', v);
        else n.setAttribute(k, v === true ? '' : String(v));
      }
    }
    if (children) for (const c of children) if (c !== null && c !== undefined && c !== false) n.append(c);
    return n;
  }
  function svg(tag, attrs) {
    const n = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const k of Object.keys(attrs || {})) n.setAttribute(k, String(attrs[k]));
    return n;
  }
  function setText(node, text) {
    const t = String(text);
    if (node.textContent !== t) node.textContent = t;
  }

  // ------------------------------------------------------------ formatting
  const pad2 = (n) => String(n).padStart(2, '0');
  function parseTime(iso) {
    if (!iso) return null;
    const t = Date.parse(iso);
    return Number.isFinite(t) ? t : null;
  }
  function clock(t) {
    const d = new Date(t);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }
  function when(t) {
    const d = new Date(t), now = new Date();
    if (d.toDateString() === now.toDateString()) return clock(t);
    return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ' + clock(t);
  }
  function duration(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 60) return sec + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min ' + pad2(sec % 60) + ' s';
    if (sec < 86400) return Math.floor(sec / 3600) + ' h ' + pad2(Math.floor(sec % 3600 / 60)) + ' min';
    return Math.floor(sec / 86400) + ' d ' + Math.floor(sec % 86400 / 3600) + ' h';
  }
  function ago(t) {
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }
  function fmtRate(r) {
    if (r === null || r === undefined || !Number.isFinite(r)) return '—';
    if (r >= 1000) return (r / 1000).toFixed(r >= 10000 ? 0 : 1) + 'k';
    if (r >= 100) return r.toFixed(0);
    if (r >= 10) return r.toFixed(1);
    return r.toFixed(2);
  }
  function fmtInt(n) {
    return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
  }
  function fmtPct(f) {
    if (!Number.isFinite(f)) return '—';
    const p = f * 100;
    return (p > 0 && p < 1 ? p.toFixed(1) : p.toFixed(0)) + ' %';
  }
  function summarize(obj) {
    if (obj === null || obj === undefined) return '—';
    if (typeof obj !== 'object') return String(obj);
    const parts = [];
    for (const k of Object.keys(obj)) {
      const v = obj[k];
      if (v === null || v === undefined) continue;
      parts.push(k + '=' + (typeof v === 'object' ? '(' + summarize(v) + ')' : String(v)));
    }
    return parts.length ? parts.join(', ') : 'none';
  }

  // ------------------------------------------------------------ HTTP
  class HttpError extends Error {}
  async function api(method, path, body) {
    const headers = { 'Authorization': 'Bearer ' + S.token, 'Accept': 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    // The API refuses a change without it, body or not.
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    init.signal = ctl.signal;
    let resp, text;
    try {
      resp = await fetch(path, init);
      text = await resp.text();
    } catch (e) {
      throw new HttpError(e && e.name === 'AbortError' ? 'timed out after ' + FETCH_TIMEOUT_MS / 1000 + ' s'
                                                       : 'network error');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    return { status: resp.status, data, text };
  }
  function errorText(r) {
    if (r.data && typeof r.data.error === 'string') return r.data.error;
    return 'HTTP ' + r.status + (r.text ? ': ' + r.text.slice(0, 200) : '');
  }
  const clusterPath = (name, what) => '/api/v1/clusters/' + encodeURIComponent(name) + '/' + what;

  // ------------------------------------------------------------ banner / conn
  function banner(kind, parts) {
    const b = $('banner');
    if (!kind) { b.hidden = true; b.replaceChildren(); return; }
    b.className = kind === 'auth' ? 'auth' : '';
    b.replaceChildren(...parts);
    b.hidden = false;
  }
  function conn(kind, text) {
    const c = $('conn');
    c.className = 'pill' + (kind ? ' ' + kind : '');
    setText(c, text);
  }

  // ------------------------------------------------------------ token
  function loadToken() {
    try { S.token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { S.token = ''; }
  }
  function saveToken(t) {
    S.token = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: keep it in memory */ }
  }
  function showPrompt() {
    $('prompt').hidden = false;
    $('content').hidden = true;
    $('token').classList.add('need');
    conn('', 'no token');
    banner(null);
    $('token').focus();
  }

  // ------------------------------------------------------------ polling
  function schedule(ms) {
    clearTimeout(S.timer);
    S.timer = setTimeout(poll, ms);
  }
  function refreshNow() {
    if (S.inFlight) { S.again = true; return; }
    schedule(0);
  }

  async function poll() {
    clearTimeout(S.timer);
    if (!S.token) { showPrompt(); return; }
    if (S.inFlight) { S.again = true; return; }
    S.inFlight = true;
    try {
      const [st, hi, me] = await Promise.allSettled([
        api('GET', '/api/v1/status'),
        api('GET', '/api/v1/history'),
        api('GET', '/metrics'),
      ]);
      const anyAuth = [st, hi, me].some((r) => r.status === 'fulfilled' && r.value.status === 401);
      if (st.status === 'rejected') {
        unreachable(st.reason.message);
      } else if (anyAuth) {
        unauthorized(st.value.status === 401 ? errorText(st.value) : 'a call was refused');
      } else if (st.value.status !== 200 || !st.value.data || !Array.isArray(st.value.data.regions)) {
        unreachable('GET /api/v1/status answered ' + (st.value.status === 200 ? 'an unexpected body' : errorText(st.value)));
      } else {
        S.authFailed = false;
        S.lastOk = Date.now();
        $('prompt').hidden = true;
        $('content').hidden = false;
        $('token').classList.remove('need');
        banner(null);
        conn('live', 'live');
        onStatus(st.value.data);
        onHistory(hi);
        onMetrics(me);
        setText($('updated'), clock(S.lastOk));
      }
    } catch (e) {
      // A bug in rendering must not stop the refresh loop; say so.
      unreachable('dashboard error: ' + (e && e.message ? e.message : String(e)));
    } finally {
      S.inFlight = false;
      if (S.token && !S.authFailed) schedule(S.again ? 0 : POLL_MS);
      S.again = false;
    }
  }

  function unreachable(why) {
    conn('err', 'unreachable');
    const parts = [el('b', { text: 'Admin API unreachable' }), el('span', { text: '— ' + why + '.' })];
    parts.push(el('span', { text: S.lastOk
      ? 'Showing data from ' + clock(S.lastOk) + ' (' + ago(S.lastOk) + '); retrying every ' + POLL_MS / 1000 + ' s.'
      : 'Retrying every ' + POLL_MS / 1000 + ' s.' }));
    banner('error', parts);
  }
  function unauthorized(why) {
    S.authFailed = true;
    conn('err', '401');
    $('token').classList.add('need');
    banner('auth', [el('b', { text: '401 Unauthorized' }),
      el('span', { text: '— the admin API refused the token (' + why + '). Enter the admin token at the top and press “Use token”.' })]);
    if (!S.status) { $('prompt').hidden = false; $('content').hidden = true; }
  }

  // ------------------------------------------------------------ samples & rates
  function pushSample(list, sample) {
    list.push(sample);
    const cut = sample.t - KEEP_MS - POLL_MS;
    while (list.length > 2 && list[0].t < cut) list.shift();
  }
  const counterDelta = (cur, prev) => (cur >= prev ? cur - prev : cur); // a restart resets counters
  // The sample closest to (and not after) now - WINDOW_MS, or the oldest one.
  function baseline(list) {
    if (list.length < 2) return null;
    const last = list[list.length - 1];
    const from = last.t - WINDOW_MS;
    let base = list[0];
    for (const s of list) { if (s.t <= from) base = s; else break; }
    return base === last ? null : base;
  }
  // Rate points over intervals of at least MIN_RATE_MS: the extra refreshes
  // right after a change would otherwise make a noisy, spiky line.
  const MIN_RATE_MS = 1500;
  function rateSeries(name, field) {
    const out = [];
    let a = null;
    for (const b of S.samples) {
      if (!b.c[name]) { a = null; continue; }
      if (!a) { a = b; continue; }
      if (b.t - a.t < MIN_RATE_MS) continue;
      out.push({ t: b.t, v: counterDelta(b.c[name][field], a.c[name][field]) / ((b.t - a.t) / 1000) });
      a = b;
    }
    return out;
  }

  // ------------------------------------------------------------ status
  function allClusters(st) {
    const out = [];
    for (const r of st.regions || []) for (const c of r.clusters || []) out.push(c);
    return out;
  }

  function onStatus(st) {
    S.status = st;
    const now = Date.now();
    const c = {};
    for (const cl of allClusters(st)) {
      const t = cl.traffic || {};
      c[cl.name] = { req: Number(t.requests) || 0, ns: Number(t.new_sessions) || 0 };
    }
    pushSample(S.samples, { t: now, c });

    setText($('generation'), st.generation !== undefined ? st.generation : '—');
    renderSummary(st);
    renderClusters(st);
    renderTransitions(st.health_transitions);
    const down = allClusters(st).filter((x) => x.state === 'down').length;
    document.title = (down ? '(' + down + ' down) ' : '') + 'meridian · dashboard';
  }

  function renderSummary(st) {
    const clusters = allClusters(st);
    const counts = { active: 0, draining: 0, drained: 0, down: 0 };
    let up = 0, total = 0, conns = 0;
    for (const cl of clusters) {
      if (counts[cl.state] !== undefined) counts[cl.state]++;
      up += Number(cl.endpoints_up) || 0;
      total += Number(cl.endpoints_total) || 0;
      conns += Number((cl.traffic || {}).active_connections) || 0;
    }
    const states = [el('span', { text: String(clusters.length), style: 'font-size:20px;line-height:1;margin-right:4px' })];
    for (const k of ['active', 'draining', 'drained', 'down']) {
      if (counts[k] || k === 'active' || k === 'down') {
        states.push(el('span', { class: 'badge ' + (counts[k] ? 's-' + k : 'zero'), text: counts[k] + ' ' + k }));
      }
    }
    $('sum-states').replaceChildren(...states);
    const ep = $('sum-endpoints');
    setText(ep, up + ' / ' + total);
    ep.style.color = up < total ? 'var(--bad)' : '';
    let rps = null, nss = null;
    if (S.samples.length >= 2) {
      rps = 0; nss = 0;
      for (const cl of clusters) {
        const r = rateSeries(cl.name, 'req'), n = rateSeries(cl.name, 'ns');
        if (r.length) rps += r[r.length - 1].v;
        if (n.length) nss += n[n.length - 1].v;
      }
    }
    setText($('sum-rps'), fmtRate(rps));
    setText($('sum-nss'), fmtRate(nss));
    setText($('sum-conns'), fmtInt(conns));
    const started = parseTime(st.started);
    setText($('sum-started'), started ? 'up ' + duration((Date.now() - started) / 1000) + ' · since ' + when(started) : '—');
    const cfg = $('sum-config');
    setText(cfg, st.config ? 'config ' + st.config : '');
    cfg.title = st.config || '';
  }

  function layoutOf(st) {
    return JSON.stringify((st.regions || []).map((r) => [r.name, (r.clusters || []).map((c) => c.name)]));
  }

  function renderClusters(st) {
    const key = layoutOf(st);
    if (key !== S.layoutKey) buildClusterTable(st, key);
    // Share of requests over the window, from the samples.
    const base = baseline(S.samples);
    const last = S.samples[S.samples.length - 1];
    const deltas = {};
    let sum = 0;
    if (base) {
      for (const name of Object.keys(last.c)) {
        const d = base.c[name] ? counterDelta(last.c[name].req, base.c[name].req) : 0;
        deltas[name] = d; sum += d;
      }
      setText($('share-h'), 'Share (' + Math.round((last.t - base.t) / 1000) + ' s)');
    } else {
      setText($('share-h'), 'Share');
    }
    const kept = S.samples.length ? (last.t - S.samples[0].t) / 1000 : 0;
    setText($('clusters-note'), 'requests/s over the last ' + (kept >= 290 ? '5 min' : duration(kept) + ' (up to 5 min)') +
      ' · share = % of requests over the last ' + (base ? duration((last.t - base.t) / 1000) : '—'));
    for (const r of st.regions || []) {
      let taking = 0;
      for (const cl of r.clusters || []) {
        if (cl.takes_new_sessions) taking++;
        updateClusterRow(cl, base ? (sum > 0 ? deltas[cl.name] / sum : null) : undefined, base ? deltas[cl.name] : 0);
      }
      const rr = S.rows.get('\u0000region:' + r.name);
      if (rr) {
        const n = (r.clusters || []).length;
        setText(rr, n + ' cluster' + (n === 1 ? '' : 's') + ' · ' + taking + ' taking new sessions' +
          (Number.isFinite(r.lat) && Number.isFinite(r.lon) ? ' · ' + r.lat.toFixed(2) + ', ' + r.lon.toFixed(2) : ''));
        rr.style.color = taking === 0 ? 'var(--bad)' : '';
      }
    }
  }

  function buildClusterTable(st, key) {
    const table = $('clusters');
    for (const tb of Array.from(table.tBodies)) tb.remove();
    S.rows = new Map();
    for (const r of st.regions || []) {
      const tb = el('tbody', { 'data-region': r.name });
      const info = el('span', { class: 'muted' });
      tb.append(el('tr', { class: 'region' }, [el('th', { colspan: 8, scope: 'rowgroup' }, [el('span', { text: r.name }), info])]));
      S.rows.set('\u0000region:' + r.name, info);
      for (const cl of r.clusters || []) {
        const row = buildClusterRow(cl.name);
        tb.append(row.tr, row.epTr);
        S.rows.set(cl.name, row);
      }
      table.append(tb);
    }
    S.layoutKey = key;
  }

  function buildClusterRow(name) {
    const row = { name, weightDirty: false };
    row.badge = el('span', { class: 'badge state', 'data-role': 'state' });
    row.flags = el('div', { class: 'flags' });
    row.health = el('span', { class: 'healthnum num', 'data-role': 'health' });
    row.weight = el('span', { class: 'weight num', 'data-role': 'weight' });
    row.weightNote = el('div', { class: 'small muted' });
    row.drain = el('div', { class: 'drain', 'data-role': 'drain' });
    row.sparkBox = el('span');
    row.rate = el('span', { class: 'num' });
    row.conns = el('small');
    row.pct = el('span', { class: 'pct num', 'data-role': 'share' });
    row.barFill = el('i', { style: 'width:0%' });
    row.shareNote = el('div', { class: 'small muted num' });

    const act = (label, cls, action, fn) => el('button', {
      class: 'btn ' + cls, type: 'button', 'data-action': action, 'aria-label': label + ' ' + name,
      text: label, on: { click: fn },
    });
    row.btnDrain = act('Drain', 'warn', 'drain', () => startChange(name, { kind: 'drain', mode: 'soft' }));
    row.btnHard = act('Hard drain', 'danger', 'hard-drain', () => startChange(name, { kind: 'drain', mode: 'hard' }));
    row.btnUndrain = act('Undrain', 'ok', 'undrain', () => undrain(name));
    row.weightInput = el('input', {
      type: 'number', min: 0, step: 1, inputmode: 'numeric', 'data-role': 'weight-input',
      'aria-label': 'New weight for ' + name,
      on: {
        input: () => { row.weightDirty = true; },
        keydown: (e) => { if (e.key === 'Enter') { e.preventDefault(); setWeight(); } },
      },
    });
    const setWeight = () => {
      const v = row.weightInput.value.trim();
      if (!/^\d+$/.test(v)) { toast('error', 'Invalid weight', 'Enter a whole number ≥ 0 for ' + name + '.'); return; }
      startChange(name, { kind: 'weight', weight: parseInt(v, 10) });
    };
    row.btnWeight = act('Set', '', 'set-weight', setWeight);
    row.btnWeight.setAttribute('aria-label', 'Set weight of ' + name);

    row.tr = el('tr', { class: 'cluster', 'data-cluster': name }, [
      el('td', null, [el('div', { class: 'cname', text: name }), row.flags]),
      el('td', null, [row.badge]),
      el('td', null, [row.health, el('span', { class: 'small muted', text: ' up' })]),
      el('td', null, [row.weight, row.weightNote]),
      el('td', null, [row.drain]),
      el('td', null, [el('div', { class: 'rate' }, [row.sparkBox, el('span', { class: 'val' }, [row.rate, row.conns])])]),
      el('td', { class: 'share' }, [row.pct, el('div', { class: 'bar' }, [row.barFill]), row.shareNote]),
      el('td', null, [el('div', { class: 'actions' }, [
        row.btnDrain, row.btnHard, row.btnUndrain, el('span', { class: 'sep' }),
        row.weightInput, row.btnWeight,
      ])]),
    ]);
    row.eps = el('div', { class: 'eps' });
    row.epTr = el('tr', { class: 'endpoints', 'data-endpoints-of': name }, [el('td', { colspan: 8 }, [row.eps])]);
    return row;
  }

  function updateClusterRow(cl, share, delta) {
    const row = S.rows.get(cl.name);
    if (!row) return;
    const stateName = ['active', 'draining', 'drained', 'down'].includes(cl.state) ? cl.state : String(cl.state || 'unknown');
    row.badge.className = 'badge state s-' + stateName;
    setText(row.badge, stateName);
    row.badge.setAttribute('data-state', stateName);
    row.tr.setAttribute('data-state', stateName);
    for (const tr of [row.tr, row.epTr]) {
      tr.classList.toggle('is-down', stateName === 'down');
      tr.classList.toggle('is-draining', stateName === 'draining');
      tr.classList.toggle('is-drained', stateName === 'drained');
    }

    row.flags.replaceChildren(
      cl.takes_new_sessions ? el('span', { text: 'takes new sessions' }) : el('span', { class: 'no', text: 'no new sessions' }),
      el('span', { text: ' · ' }),
      cl.keeps_sessions ? el('span', { text: 'keeps sessions' }) : el('span', { class: 'no', text: 'moves sessions' }));

    const up = Number(cl.endpoints_up) || 0, tot = Number(cl.endpoints_total) || 0;
    setText(row.health, up + '/' + tot);
    row.health.className = 'healthnum num' + (!cl.healthy ? ' bad' : (up < tot ? ' partial' : ''));

    setText(row.weight, cl.weight);
    const override = cl.configured_weight !== undefined && cl.weight !== cl.configured_weight;
    row.weight.classList.toggle('override', override);
    setText(row.weightNote, override ? 'file: ' + cl.configured_weight : '');
    row.weightNote.title = override ? 'runtime override; the configuration file says ' + cl.configured_weight : '';
    if (!row.weightDirty && document.activeElement !== row.weightInput) row.weightInput.value = String(cl.weight);

    // Drain mode and deadline.
    const d = cl.drain;
    if (!d) {
      row.drain.replaceChildren(el('span', { class: 'muted', text: '—' }));
    } else {
      const parts = [el('b', { text: (d.mode || 'soft') + ' drain' })];
      const dl = parseTime(d.deadline);
      if (dl) {
        const left = (dl - Date.now()) / 1000;
        parts.push(el('span', { class: 'deadline', title: d.deadline,
          text: left > 0 ? 'until ' + clock(dl) + ' (' + duration(left) + ')' : 'deadline passed ' + clock(dl) }));
      } else if ((d.mode || 'soft') === 'soft') {
        parts.push(el('span', { class: 'deadline', text: 'no deadline' }));
      }
      row.drain.replaceChildren(...parts);
    }

    // Rate sparkline and current req/s.
    const series = rateSeries(cl.name, 'req');
    row.sparkBox.replaceChildren(sparkline(series));
    setText(row.rate, series.length ? fmtRate(series[series.length - 1].v) + '/s' : '—');
    setText(row.conns, fmtInt(Number((cl.traffic || {}).active_connections) || 0) + ' conns');

    if (share === undefined) {
      setText(row.pct, '—'); row.barFill.style.width = '0%'; setText(row.shareNote, 'collecting…');
    } else if (share === null) {
      setText(row.pct, '—'); row.barFill.style.width = '0%'; setText(row.shareNote, 'no requests');
    } else {
      setText(row.pct, fmtPct(share));
      row.barFill.style.width = (share * 100).toFixed(1) + '%';
      setText(row.shareNote, fmtInt(delta) + ' req');
    }

    // Buttons: what the current drain state allows.
    const busy = S.busy.has(cl.name);
    const mode = d ? (d.mode || 'soft') : null;
    row.btnDrain.disabled = busy || mode !== null;
    row.btnHard.disabled = busy || mode === 'hard';
    row.btnUndrain.disabled = busy || !d;
    row.btnWeight.disabled = busy;
    row.weightInput.disabled = busy;

    // Endpoints.
    const chips = [];
    for (const ep of cl.endpoints || []) {
      const down = ep.health !== 'up';
      const since = parseTime(ep.since);
      const detail = [ep.health || 'unknown'];
      if (ep.last_check) detail.push(ep.last_check);
      if (since) detail.push('since ' + when(since));
      if (ep.traffic && Number.isFinite(ep.traffic.requests)) detail.push(fmtInt(ep.traffic.requests) + ' req');
      const ej = ep.ejected && ep.ejection ? ep.ejection : null;
      let ejText = '';
      if (ej) {
        const until = parseTime(ej.until);
        ejText = 'ejected: ' + (ej.reason || 'failures') + (until ? ' until ' + when(until) : '') +
          (ej.ejections > 1 ? ' (ejection ' + ej.ejections + ')' : '');
      }
      chips.push(el('span', { class: 'ep' + (down ? ' down' : '') + (ej ? ' ejected' : ''), 'data-endpoint': ep.address,
        'data-health': ep.health, 'data-ejected': ej ? 'true' : 'false',
        title: ep.address + ': ' + detail.join(', ') + (ej ? ', ' + ejText : '') }, [
        el('span', { class: 'dot', 'aria-hidden': 'true' }),
        el('span', { class: 'addr', text: ep.address }),
        ej ? el('span', { class: 'ej', 'data-role': 'ejection', text: ejText }) : null,
        el('span', { text: detail.join(' · ') }),
      ]));
    }
    if (!chips.length) chips.push(el('span', { class: 'small muted', text: 'no endpoints' }));
    row.eps.replaceChildren(...chips);
  }

  function sparkline(series) {
    const W = 150, H = 30, P = 2;
    const s = svg('svg', { class: 'spark', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    const now = Date.now();
    // The x axis spans the samples kept (at least 10 s, at most 5 min), so a
    // freshly opened page draws a full-width line at once.
    const oldest = S.samples.length ? S.samples[0].t : now;
    const span = Math.min(KEEP_MS, Math.max(10000, now - oldest));
    const x = (t) => P + (W - 2 * P) * (1 - Math.min(1, Math.max(0, (now - t) / span)));
    s.append(svg('rect', { x: 0.5, y: 0.5, width: W - 1, height: H - 1, rx: 3, fill: '#f7f9fb', stroke: '#e3e7ed' }));
    if (series.length < 1) {
      s.setAttribute('aria-label', 'no rate yet');
      return s;
    }
    const max = Math.max(...series.map((p) => p.v));
    const scale = max > 0 ? max : 1;
    const y = (v) => H - P - (H - 2 * P - 2) * (v / scale);
    const pts = series.map((p) => x(p.t).toFixed(1) + ',' + y(p.v).toFixed(1));
    if (series.length === 1) pts.unshift((x(series[0].t) - 2).toFixed(1) + ',' + y(series[0].v).toFixed(1));
    const first = pts[0].split(',')[0], lastX = pts[pts.length - 1].split(',')[0];
    s.append(svg('polygon', { points: first + ',' + (H - P) + ' ' + pts.join(' ') + ' ' + lastX + ',' + (H - P),
      fill: 'rgba(29,95,194,.13)', stroke: 'none' }));
    s.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: '#1d5fc2', 'stroke-width': 1.6,
      'stroke-linejoin': 'round', 'stroke-linecap': 'round' }));
    const lp = series[series.length - 1];
    s.append(svg('circle', { cx: x(lp.t).toFixed(1), cy: y(lp.v).toFixed(1), r: 2.2, fill: '#1d5fc2' }));
    const label = 'requests per second over the last ' + Math.round((now - series[0].t) / 1000) + ' s; peak ' + fmtRate(max) + '/s';
    s.setAttribute('aria-label', label);
    const title = svg('title', {});
    title.textContent = label;
    s.prepend(title);
    return s;
  }

  // ------------------------------------------------------------ health transitions
  function renderTransitions(list) {
    const box = $('transitions-body');
    if (!Array.isArray(list)) {
      box.replaceChildren(el('div', { class: 'empty', text: 'This server does not report health_transitions.' }));
      return;
    }
    if (!list.length) {
      box.replaceChildren(el('div', { class: 'empty', text: 'No health transitions since the edge started.' }));
      return;
    }
    const items = sortNewest(list).slice(0, LIST_MAX).map((h) => {
      const t = parseTime(h.time);
      const up = h.health === 'up';
      return el('li', null, [
        timeCell(t, h.time),
        el('div', null, [
          el('div', { class: 'line1' }, [
            el('span', { class: 'badge ' + (up ? 'h-up' : 'h-down'), text: up ? 'up' : (h.health || 'down') }),
            el('span', { class: 'what', text: h.cluster || '' }),
            el('span', { class: 'mono', text: h.address || '' }),
          ]),
          h.reason ? el('div', { class: 'detail', text: h.reason }) : null,
        ]),
      ]);
    });
    box.replaceChildren(el('ol', { class: 'events' }, items));
  }
  function timeCell(t, raw) {
    return el('div', { class: 'time', title: raw || '' }, t
      ? [el('span', { text: clock(t) }), el('small', { text: ago(t) })]
      : [el('span', { text: raw || '—' })]);
  }
  function sortNewest(list) {
    // The server sends newest first; keep its order but be robust to the other.
    const copy = list.slice();
    const a = parseTime(copy[0] && copy[0].time), b = parseTime(copy[copy.length - 1] && copy[copy.length - 1].time);
    if (a !== null && b !== null && a < b) copy.reverse();
    return copy;
  }

  // ------------------------------------------------------------ history
  function onHistory(res) {
    const box = $('changes-body');
    if (res.status === 'rejected') {
      box.replaceChildren(el('div', { class: 'empty', text: 'GET /api/v1/history failed: ' + res.reason.message + '.' }));
      return;
    }
    const r = res.value;
    if (r.status !== 200 || !r.data || !Array.isArray(r.data.changes)) {
      box.replaceChildren(el('div', { class: 'empty', text: 'GET /api/v1/history: ' + errorText(r) }));
      return;
    }
    const list = r.data.changes;
    if (!list.length) {
      box.replaceChildren(el('div', { class: 'empty', text: 'No runtime changes yet.' }));
      return;
    }
    const items = sortNewest(list).slice(0, LIST_MAX).map((c) => {
      const t = parseTime(c.time);
      const detail = describeChange(c);
      const gens = (c.generation_before !== undefined || c.generation_after !== undefined)
        ? 'gen ' + (c.generation_before ?? '?') + ' → ' + (c.generation_after ?? '?') : '';
      return el('li', null, [
        timeCell(t, c.time),
        el('div', null, [
          el('div', { class: 'line1' }, [
            el('span', { class: 'badge kind', text: c.change || 'change' }),
            el('span', { class: 'what', text: c.cluster || '' }),
            el('span', { class: 'small muted num', text: gens }),
          ]),
          detail ? el('div', { class: 'detail', text: detail }) : null,
        ]),
      ]);
    });
    box.replaceChildren(el('ol', { class: 'events' }, items));
  }

  function describeDrain(d) {
    if (!d || typeof d !== 'object') return 'not drained';
    return (d.mode || 'soft') + ' drain' + (d.deadline_s ? ', deadline ' + d.deadline_s + ' s' : '');
  }
  // A field of an audit value/previous, whether the object holds it directly
  // ({"weight": 30}) or nested ({"drain": {...}}).
  function pick(obj, k) { return obj && typeof obj === 'object' && k in obj ? obj[k] : undefined; }
  function describeChange(c) {
    const v = c.value, p = c.previous;
    const forced = pick(v, 'force') ? ' (forced)' : '';
    if (c.change === 'weight') {
      const pw = pick(p, 'weight'), nw = pick(v, 'weight');
      return 'weight ' + (pw ?? '?') + ' → ' + (nw ?? '?') + forced;
    }
    if (c.change === 'drain') {
      const d = pick(v, 'drain') !== undefined ? pick(v, 'drain') : v;
      return describeDrain(d) + forced;
    }
    if (c.change === 'undrain') {
      const d = pick(p, 'drain') !== undefined ? pick(p, 'drain') : p;
      return d && typeof d === 'object' && d.mode ? 'was ' + describeDrain(d) : 'drain lifted';
    }
    if (v || p) return summarize(p) + ' → ' + summarize(v);
    return '';
  }

  // ------------------------------------------------------------ metrics
  function unescapeLabel(v) {
    return v.replace(/\\(n|"|\\)/g, (m, c) => (c === 'n' ? '\n' : c));
  }
  // Returns Map("country\u0001cluster" -> value) of one metric from the text format.
  function parseNewSessions(text) {
    const out = new Map();
    const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line.startsWith(NEW_SESSIONS_METRIC)) continue;
      const m = lineRe.exec(line);
      if (!m || m[1] !== NEW_SESSIONS_METRIC) continue;
      const labels = {};
      let lm;
      labelRe.lastIndex = 0;
      while ((lm = labelRe.exec(m[2] || '')) !== null) labels[lm[1]] = unescapeLabel(lm[2]);
      const v = Number(m[3]);
      if (!Number.isFinite(v)) continue;
      const key = (labels.country || 'unknown') + '\u0001' + (labels.cluster || '?');
      out.set(key, (out.get(key) || 0) + v);
    }
    return out;
  }

  function onMetrics(res) {
    const box = $('geo-body');
    const note = $('geo-note');
    if (res.status === 'rejected') {
      setText(note, '');
      box.replaceChildren(el('div', { class: 'empty', text: 'GET /metrics failed: ' + res.reason.message + '.' }));
      return;
    }
    const r = res.value;
    if (r.status !== 200) {
      setText(note, '');
      box.replaceChildren(el('div', { class: 'empty', text: 'GET /metrics: ' + errorText(r) }));
      return;
    }
    const now = Date.now();
    pushSample(S.metricSamples, { t: now, m: parseNewSessions(r.text || '') });
    const last = S.metricSamples[S.metricSamples.length - 1];
    if (!last.m.size) {
      setText(note, '');
      box.replaceChildren(el('div', { class: 'empty', text: 'No ' + NEW_SESSIONS_METRIC + ' series yet: no new session has been decided.' }));
      return;
    }
    const base = baseline(S.metricSamples);
    let counts = new Map(), total = 0, caption = null;
    if (base) {
      for (const [k, v] of last.m) {
        const d = counterDelta(v, base.m.get(k) || 0);
        if (d > 0) { counts.set(k, d); total += d; }
      }
    }
    const span = base ? Math.round((last.t - base.t) / 1000) : 0;
    if (total > 0) {
      setText(note, 'last ' + span + ' s · ' + fmtInt(total) + ' new sessions');
    } else {
      counts = new Map(); total = 0;
      for (const [k, v] of last.m) if (v > 0) { counts.set(k, v); total += v; }
      setText(note, 'since the edge started · ' + fmtInt(total));
      caption = base ? 'No new sessions in the last ' + span + ' s; showing totals since the edge started.'
                     : 'Collecting a window; showing totals since the edge started.';
    }
    box.replaceChildren(...(caption ? [el('div', { class: 'warnnote', text: caption })] : []), matrix(counts, total));
  }

  function matrix(counts, total) {
    // Columns: clusters in status order, then any other cluster the metric names.
    const cols = S.status ? allClusters(S.status).map((c) => c.name) : [];
    const byCountry = new Map();
    for (const [k, v] of counts) {
      const [country, cluster] = k.split('\u0001');
      if (!cols.includes(cluster)) cols.push(cluster);
      if (!byCountry.has(country)) byCountry.set(country, new Map());
      const m = byCountry.get(country);
      m.set(cluster, (m.get(cluster) || 0) + v);
    }
    const rows = Array.from(byCountry, ([country, m]) => {
      let sum = 0; for (const v of m.values()) sum += v;
      return { country, m, sum };
    }).sort((a, b) => b.sum - a.sum || a.country.localeCompare(b.country));
    let shown = rows.slice(0, TOP_COUNTRIES);
    if (rows.length > TOP_COUNTRIES) {
      const rest = rows.slice(TOP_COUNTRIES);
      const m = new Map(); let sum = 0;
      for (const r of rest) for (const [c, v] of r.m) { m.set(c, (m.get(c) || 0) + v); sum += v; }
      shown = shown.concat([{ country: 'other (' + rest.length + ')', m, sum, other: true }]);
    }
    const colTotals = new Map(cols.map((c) => [c, 0]));
    for (const r of rows) for (const [c, v] of r.m) colTotals.set(c, (colTotals.get(c) || 0) + v);

    const head = el('tr', null, [el('th', { class: 'country', scope: 'col', text: 'Country' }),
      ...cols.map((c) => el('th', { scope: 'col', text: c })), el('th', { scope: 'col', text: 'Total' })]);
    const body = shown.map((r) => el('tr', { 'data-country': r.country }, [
      el('td', { class: 'country' + (r.country === 'unknown' || r.other ? ' unknown' : ''), text: r.country }),
      ...cols.map((c) => {
        const v = r.m.get(c) || 0;
        if (!v) return el('td', { class: 'zero', text: '·' });
        const f = v / r.sum;
        return el('td', { style: 'background: rgba(29,95,194,' + (0.04 + 0.26 * f).toFixed(3) + ')',
          title: r.country + ' → ' + c + ': ' + v + ' (' + fmtPct(f) + ' of ' + r.country + ')' }, [
          el('span', { class: 'c num', text: fmtInt(v) }), el('span', { class: 'p num', text: fmtPct(f) })]);
      }),
      el('td', { class: 'tot num' }, [el('span', { class: 'c', text: fmtInt(r.sum) }),
        el('span', { class: 'p', text: fmtPct(r.sum / total) })]),
    ]));
    const foot = el('tr', { class: 'total' }, [el('td', { class: 'country', text: 'All' }),
      ...cols.map((c) => {
        const v = colTotals.get(c) || 0;
        return el('td', { class: 'num' }, [el('span', { class: 'c', text: fmtInt(v) }),
          el('span', { class: 'p', text: total ? fmtPct(v / total) : '' })]);
      }),
      el('td', { class: 'tot num' }, [el('span', { class: 'c', text: fmtInt(total) }), el('span', { class: 'p', text: '100 %' })]),
    ]);
    return el('div', { class: 'matrix-wrap' }, [el('table', { class: 'matrix' }, [
      el('thead', null, [head]), el('tbody', null, [...body, foot])])]);
  }

  // ------------------------------------------------------------ toasts
  function toast(kind, title, text) {
    const box = $('toasts');
    const t = el('div', { class: 'toast' + (kind === 'error' ? ' error' : ''), role: kind === 'error' ? 'alert' : 'status',
      'data-kind': kind }, [
      el('div', { class: 't-body' }, [el('div', { class: 't-title', text: title }), text ? el('div', { text }) : null]),
      el('button', { class: 't-close', type: 'button', 'aria-label': 'Dismiss', text: '×', on: { click: () => t.remove() } }),
    ]);
    box.append(t);
    while (box.children.length > 4) box.firstElementChild.remove();
    setTimeout(() => t.remove(), kind === 'error' ? 12000 : 7000);
  }

  // ------------------------------------------------------------ modal
  let modalKeyHandler = null;
  function openModal(title, bodyNodes, buttons) {
    $('modal-title').textContent = title;
    $('modal-body').replaceChildren(...bodyNodes.filter(Boolean));
    const btns = buttons.map((b) => el('button', { class: 'btn ' + (b.cls || ''), type: 'button', id: b.id,
      text: b.label, on: { click: b.onClick } }));
    $('modal-footer').replaceChildren(...btns);
    $('modal-backdrop').hidden = false;
    S.modalOpen = true;
    const focus = btns.find((b) => b.classList.contains('primary') || b.classList.contains('solid')) || btns[0];
    if (focus) focus.focus();
    document.removeEventListener('keydown', modalKeyHandler);
    modalKeyHandler = (e) => {
      if (e.key === 'Escape') { e.preventDefault(); closeModal(); }
      else if (e.key === 'Tab') { // keep focus inside the dialog
        const f = Array.from($('modal').querySelectorAll('button:not(:disabled), input:not(:disabled)'));
        if (!f.length) return;
        const i = f.indexOf(document.activeElement);
        if (e.shiftKey && i <= 0) { e.preventDefault(); f[f.length - 1].focus(); }
        else if (!e.shiftKey && i === f.length - 1) { e.preventDefault(); f[0].focus(); }
      }
    };
    document.addEventListener('keydown', modalKeyHandler);
  }
  function closeModal() {
    $('modal-backdrop').hidden = true;
    $('modal-body').replaceChildren();
    $('modal-footer').replaceChildren();
    S.modalOpen = false;
    document.removeEventListener('keydown', modalKeyHandler);
    modalKeyHandler = null;
  }
  function setModalBusy(busy) {
    for (const b of $('modal-footer').querySelectorAll('button')) b.disabled = busy;
  }

  // ------------------------------------------------------------ changes
  function describe(name, ch) {
    if (ch.kind === 'weight') return { title: 'Set weight of ' + name + ' to ' + ch.weight, verb: 'Set weight to ' + ch.weight };
    if (ch.mode === 'hard') return { title: 'Hard drain ' + name, verb: 'Hard drain' };
    return { title: 'Drain ' + name + ' (soft)', verb: 'Drain' };
  }
  function request(name, ch, extra) {
    if (ch.kind === 'weight') return { method: 'PUT', path: clusterPath(name, 'weight'), body: Object.assign({ weight: ch.weight }, extra) };
    const body = { mode: ch.mode };
    if (ch.deadline_s) body.deadline_s = ch.deadline_s;
    return { method: 'POST', path: clusterPath(name, 'drain'), body: Object.assign(body, extra) };
  }
  function setBusy(name, busy) {
    if (busy) S.busy.add(name); else S.busy.delete(name);
    const row = S.rows.get(name);
    if (row && busy) for (const b of [row.btnDrain, row.btnHard, row.btnUndrain, row.btnWeight]) b.disabled = true;
  }
  function resetWeightInput(name) {
    const row = S.rows.get(name);
    if (row) row.weightDirty = false;
  }

  async function startChange(name, ch) {
    if (S.busy.has(name)) return;
    setBusy(name, true);
    const d = describe(name, ch);
    let r;
    try {
      const q = request(name, ch, { dry_run: true });
      r = await api(q.method, q.path, q.body);
    } catch (e) {
      setBusy(name, false);
      toast('error', d.title + ': not sent', 'Admin API unreachable: ' + e.message + '.');
      return;
    }
    if (r.status === 401) { setBusy(name, false); unauthorized(errorText(r)); toast('error', d.title, '401: the token was refused.'); return; }
    if (r.status === 409) { showConflict(name, ch, r); return; }
    if (r.status !== 200) {
      setBusy(name, false);
      toast('error', d.title + ' refused', errorText(r));
      return;
    }
    showConfirm(name, ch, r.data || {});
  }

  function destinations(list) {
    if (!Array.isArray(list) || !list.length) {
      return el('p', { class: 'muted', text: 'The server names no destination for new sessions.' });
    }
    return el('div', { class: 'dest', 'data-role': 'new-sessions-to' }, list.map((x) => {
      const share = Number(x.share);
      return el('div', { class: 'dest-row' }, [
        el('span', { class: 'mono', text: x.cluster }),
        el('div', { class: 'bar' }, [el('i', { style: 'width:' + (Number.isFinite(share) ? (share * 100).toFixed(1) : 0) + '%' })]),
        el('span', { class: 'num', style: 'text-align:right', text: fmtPct(share) }),
      ]);
    }));
  }
  function strandedList(list) {
    return el('div', { class: 'stranded', 'data-role': 'stranded' }, list.map((s) => el('span', { text: String(s) })));
  }

  function showConfirm(name, ch, dry) {
    const d = describe(name, ch);
    const body = [el('div', { class: 'msg', 'data-role': 'dry-run-message', text: dry.message || 'The server accepts the change.' })];
    body.push(el('p', { text: ch.kind === 'drain' && ch.mode === 'hard'
      ? 'A hard drain moves every session of ' + name + ' at once. New sessions would go to:'
      : 'New sessions of ' + name + ' would go to:' }));
    body.push(destinations(dry.new_sessions_to));
    const stranded = Array.isArray(dry.stranded) ? dry.stranded : [];
    if (stranded.length) {
      body.push(el('div', { class: 'warnmsg', text: 'These clients would have no cluster taking new sessions; the server will refuse unless forced:' }));
      body.push(strandedList(stranded));
    }
    let deadline = null;
    if (ch.kind === 'drain' && ch.mode === 'soft') {
      deadline = el('input', { type: 'number', min: 1, step: 1, placeholder: 'none', id: 'modal-deadline' });
      body.push(el('label', { class: 'field' }, [el('span', { text: 'Deadline (seconds, optional):' }), deadline]));
    }
    openModal(d.title + '?', body, [
      { label: 'Cancel', id: 'modal-cancel', onClick: () => { closeModal(); setBusy(name, false); refreshNow(); } },
      { label: d.verb, id: 'modal-confirm', cls: ch.kind === 'drain' && ch.mode === 'hard' ? 'danger solid' : 'primary',
        onClick: () => {
          if (deadline && deadline.value.trim()) {
            const v = deadline.value.trim();
            if (!/^\d+$/.test(v) || parseInt(v, 10) < 1) { toast('error', 'Invalid deadline', 'Enter whole seconds ≥ 1, or leave it empty.'); return; }
            ch.deadline_s = parseInt(v, 10);
          }
          apply(name, ch, false);
        } },
    ]);
  }

  function showConflict(name, ch, r) {
    const d = describe(name, ch);
    const stranded = r.data && Array.isArray(r.data.stranded) ? r.data.stranded : [];
    const body = [el('div', { class: 'errmsg', 'data-role': 'conflict-error', text: errorText(r) })];
    if (stranded.length) {
      body.push(el('p', { text: 'Left with no cluster taking new sessions:' }));
      body.push(strandedList(stranded));
    }
    body.push(el('p', { class: 'muted', text: 'Force applies the change anyway; those clients then fail open to any healthy cluster.' }));
    openModal('Refused (409): ' + d.title, body, [
      { label: 'Cancel', id: 'modal-cancel', cls: 'primary', onClick: () => { closeModal(); setBusy(name, false); refreshNow(); } },
      { label: 'Force: ' + d.verb, id: 'modal-force', cls: 'danger solid', onClick: () => apply(name, ch, true) },
    ]);
  }

  async function apply(name, ch, force) {
    const d = describe(name, ch);
    setModalBusy(true);
    let r;
    try {
      const q = request(name, ch, force ? { force: true } : {});
      r = await api(q.method, q.path, q.body);
    } catch (e) {
      closeModal(); setBusy(name, false);
      toast('error', d.title + ': unknown outcome', 'Admin API unreachable: ' + e.message + '. Check the status before retrying.');
      refreshNow();
      return;
    }
    if (r.status === 409 && !force) { showConflict(name, ch, r); return; }
    closeModal();
    setBusy(name, false);
    if (r.status === 200) {
      const g = r.data || {};
      toast('ok', d.title + (force ? ' (forced)' : ''), (g.message || 'done') +
        (g.generation !== undefined ? ' · generation ' + (g.previous_generation ?? '?') + ' → ' + g.generation : ''));
      if (ch.kind === 'weight') resetWeightInput(name);
    } else if (r.status === 401) {
      unauthorized(errorText(r));
      toast('error', d.title, '401: the token was refused.');
    } else {
      toast('error', d.title + ' failed (' + r.status + ')', errorText(r));
    }
    refreshNow();
  }

  async function undrain(name) {
    if (S.busy.has(name)) return;
    setBusy(name, true);
    let r;
    try {
      r = await api('POST', clusterPath(name, 'undrain'), {});
    } catch (e) {
      setBusy(name, false);
      toast('error', 'Undrain ' + name + ': unknown outcome', 'Admin API unreachable: ' + e.message + '.');
      refreshNow();
      return;
    }
    setBusy(name, false);
    if (r.status === 200) {
      const g = r.data || {};
      toast('ok', 'Undrain ' + name, (g.message || 'done') +
        (g.generation !== undefined ? ' · generation ' + (g.previous_generation ?? '?') + ' → ' + g.generation : ''));
    } else if (r.status === 401) {
      unauthorized(errorText(r));
    } else {
      toast('error', 'Undrain ' + name + ' failed (' + r.status + ')', errorText(r));
    }
    refreshNow();
  }

  // ------------------------------------------------------------ start
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    saveToken(t);
    S.authFailed = false;
    if (!t) { showPrompt(); return; }
    $('token').classList.remove('need');
    conn('', 'connecting…');
    refreshNow();
  });
  $('token-forget').addEventListener('click', () => {
    saveToken('');
    $('token').value = '';
    clearTimeout(S.timer);
    S.status = null;
    showPrompt();
  });
  $('modal-backdrop').addEventListener('click', (e) => {
    if (e.target === $('modal-backdrop')) {
      const cancel = $('modal-cancel');
      if (cancel && !cancel.disabled) cancel.click();
    }
  });

  loadToken();
  if (S.token) {
    $('token').value = S.token;
    conn('', 'connecting…');
    poll();
  } else {
    showPrompt();
  }
})();
