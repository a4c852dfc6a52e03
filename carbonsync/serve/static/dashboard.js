/* CarbonSync operator dashboard: vanilla JS, charts as inline SVG, no external resources.
 * Data: GET api/dashboard (JSON) and the server-sent events stream at events (event "update"), both relative URLs.
 * Every chart is an <svg class="chart" data-chart=KIND data-key=JOB|ZONE data-points=N> with id KIND-SLUG,
 * e.g. chart-state-<job>; slug(s) = lower case, each run of characters outside [a-z0-9_-] replaced by "-". */
(function () {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var STATE_COLORS = { green: '#2e7d32', yellow: '#f9a825', red: '#c62828' };
  var STATE_LEVEL = { green: 0, yellow: 1, red: 2 };
  var POLL_MS = 5000;
  var SSE_RETRY_MS = 30000;
  var WIDTH = 480;
  var MARGIN = { l: 58, r: 40, t: 8, b: 26 };
  var MINUTE = 60e3, HOUR = 3600e3, DAY = 86400e3;
  var TIME_STEPS = [5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
    DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY];

  /* ---------- small helpers ---------- */

  function slug(s) { return String(s).toLowerCase().replace(/[^a-z0-9_-]+/g, '-'); }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function isNum(v) { return typeof v === 'number' && isFinite(v); }
  function pad2(n) { return (n < 10 ? '0' : '') + n; }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  /** ISO string (naive means UTC) to epoch ms, NaN when absent or unparsable. */
  function parseTime(s) {
    if (typeof s !== 'string' || !s) { return NaN; }
    return Date.parse(/([zZ]|[+-]\d\d:?\d\d)$/.test(s) ? s : s + 'Z');
  }

  function fmtTime(ms) {
    if (!isFinite(ms)) { return '\u2013'; }
    var d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate()) + ' ' +
      pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes());
  }

  function fmtIso(s) { return s ? fmtTime(parseTime(s)) : '\u2013'; }

  function fmtAge(seconds) {
    if (!isNum(seconds)) { return '\u2013'; }
    var s = Math.max(0, Math.round(seconds));
    if (s < 120) { return s + ' s'; }
    if (s < 7200) { return Math.round(s / 60) + ' min'; }
    if (s < 172800) { return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min'; }
    return (s / 86400).toFixed(1) + ' d';
  }

  function fmtNum(v, digits) { return isNum(v) ? v.toFixed(digits) : '\u2013'; }

  function niceStep(span, count) {
    var raw = span / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / mag;
    return mag * (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10);
  }

  function fmtTick(v, step) {
    var digits = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step)));
    return v.toFixed(digits);
  }

  function fmtTimeTick(ms, step, span) {
    var d = new Date(ms);
    var md = pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate());
    var hm = pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes());
    if (step >= DAY) { return md; }
    return span > DAY ? md + ' ' + hm : hm;
  }

  /* ---------- SVG charts ---------- */

  /** Time domain [t0, t1] of the finite times, padded when there is a single one. */
  function timeDomain(times) {
    var ok = times.filter(isFinite);
    if (!ok.length) { return null; }
    var t0 = Math.min.apply(null, ok), t1 = Math.max.apply(null, ok);
    return t0 === t1 ? [t0 - 30 * MINUTE, t1 + 30 * MINUTE] : [t0, t1];
  }

  function newSvg(kind, key, height) {
    return svgEl('svg', {
      id: kind + '-' + slug(key), 'class': 'chart', 'data-chart': kind, 'data-key': key, 'data-points': '0',
      viewBox: '0 0 ' + WIDTH + ' ' + height, preserveAspectRatio: 'xMidYMid meet', role: 'img'
    });
  }

  function noData(kind, key, message) {
    var svg = newSvg(kind, key, 60);
    svg.appendChild(svgEl('text', { x: WIDTH / 2, y: 34, 'text-anchor': 'middle', 'class': 'nodata-text' },
      message || 'no data'));
    return svg;
  }

  function drawTimeAxis(svg, dom, x, y) {
    var span = dom[1] - dom[0];
    var step = TIME_STEPS.filter(function (s) { return span / s <= 6; })[0] || TIME_STEPS[TIME_STEPS.length - 1];
    svg.appendChild(svgEl('line', { x1: MARGIN.l, x2: WIDTH - MARGIN.r, y1: y, y2: y, 'class': 'axis' }));
    for (var t = Math.ceil(dom[0] / step) * step; t <= dom[1]; t += step) {
      svg.appendChild(svgEl('line', { x1: x(t), x2: x(t), y1: y, y2: y + 4, 'class': 'axis' }));
      svg.appendChild(svgEl('text', { x: x(t), y: y + 16, 'text-anchor': 'middle' }, fmtTimeTick(t, step, span)));
    }
  }

  /** Polyline path through the finite (t, v) pairs, broken at gaps; returns [d, count]. */
  function linePath(times, values, x, y) {
    var d = '', n = 0, pen = false;
    for (var i = 0; i < times.length; i++) {
      var v = values[i];
      if (isFinite(times[i]) && isNum(v)) {
        d += (pen ? 'L' : 'M') + x(times[i]).toFixed(1) + ',' + y(v).toFixed(1);
        pen = true;
        n++;
      } else {
        pen = false;
      }
    }
    return [d, n];
  }

  /** Closed area between lo and hi, one polygon per unbroken run. */
  function bandPath(times, lo, hi, x, y) {
    var d = '', run = [];
    function flush() {
      if (run.length > 1) {
        d += 'M' + run.map(function (i) { return x(times[i]).toFixed(1) + ',' + y(hi[i]).toFixed(1); }).join('L');
        d += 'L' + run.slice().reverse().map(function (i) { return x(times[i]).toFixed(1) + ',' + y(lo[i]).toFixed(1); })
          .join('L') + 'Z';
      }
      run = [];
    }
    for (var i = 0; i < times.length; i++) {
      if (isFinite(times[i]) && isNum(lo[i]) && isNum(hi[i])) { run.push(i); } else { flush(); }
    }
    flush();
    return d;
  }

  /** Value domain of a panel from its series, band and horizontal lines, widened to nice ticks. */
  function valueDomain(panel, ticks) {
    var vals = [];
    panel.series.forEach(function (s) { vals = vals.concat(arr(s.values).filter(isNum)); });
    if (panel.band) { vals = vals.concat(arr(panel.band.lo).filter(isNum), arr(panel.band.hi).filter(isNum)); }
    arr(panel.hlines).forEach(function (h) { if (isNum(h.y)) { vals.push(h.y); } });
    var lo = isNum(panel.yMin) ? panel.yMin : Math.min.apply(null, vals.length ? vals : [0]);
    var hi = isNum(panel.yMax) ? panel.yMax : Math.max.apply(null, vals.length ? vals : [1]);
    if (hi <= lo) { hi = lo + (Math.abs(lo) || 1); }
    var step = niceStep(hi - lo, ticks);
    if (!isNum(panel.yMin)) { lo = Math.floor(lo / step) * step; }
    if (!isNum(panel.yMax)) { hi = Math.ceil(hi / step) * step; }
    return { lo: lo, hi: hi, step: step };
  }

  /** One stacked panel of a line chart at vertical offset top; returns the number of points plotted. */
  function drawPanel(svg, panel, times, x, top, height) {
    var dom = valueDomain(panel, Math.max(2, Math.round(height / 30)));
    var y = function (v) { return top + height - (v - dom.lo) / (dom.hi - dom.lo) * height; };
    for (var v = dom.lo; v <= dom.hi + dom.step / 1e6; v += dom.step) {
      svg.appendChild(svgEl('line', { x1: MARGIN.l, x2: WIDTH - MARGIN.r, y1: y(v), y2: y(v), 'class': 'grid-line' }));
      svg.appendChild(svgEl('text', { x: MARGIN.l - 6, y: y(v) + 3, 'text-anchor': 'end' }, fmtTick(v, dom.step)));
    }
    svg.appendChild(svgEl('text', { x: 12, y: top + height / 2, 'text-anchor': 'middle', 'class': 'panel-label',
      transform: 'rotate(-90 12 ' + (top + height / 2) + ')' }, panel.label));
    if (panel.band) {
      var area = bandPath(times, arr(panel.band.lo), arr(panel.band.hi), x, y);
      if (area) { svg.appendChild(svgEl('path', { d: area, fill: panel.band.color, 'fill-opacity': 0.2, stroke: 'none' })); }
    }
    arr(panel.hlines).forEach(function (h) {
      if (!isNum(h.y)) { return; }
      svg.appendChild(svgEl('line', { x1: MARGIN.l, x2: WIDTH - MARGIN.r, y1: y(h.y), y2: y(h.y), stroke: h.color,
        'stroke-dasharray': '5 3', 'stroke-width': 1.2 }));
      svg.appendChild(svgEl('text', { x: WIDTH - MARGIN.r + 4, y: y(h.y) + 3, fill: h.color }, h.label));
    });
    var count = 0;
    panel.series.forEach(function (s) {
      var res = linePath(times, arr(s.values), x, y);
      count += res[1];
      if (res[1] === 1) {
        var i = arr(s.values).findIndex(isNum);
        svg.appendChild(svgEl('circle', { cx: x(times[i]), cy: y(s.values[i]), r: 3, fill: s.color }));
      } else if (res[1] > 1) {
        svg.appendChild(svgEl('path', { d: res[0], fill: 'none', stroke: s.color, 'stroke-width': 1.8,
          'stroke-linejoin': 'round', 'stroke-dasharray': s.dash || 'none' }));
      }
    });
    if (!count) {
      svg.appendChild(svgEl('text', { x: WIDTH / 2, y: top + height / 2, 'text-anchor': 'middle', 'class': 'nodata-text' },
        'no data'));
    }
    return count;
  }

  /** Line chart of stacked panels sharing one time axis: spec = {kind, key, time: [ISO], panels: [...]}. */
  function lineChart(spec) {
    var times = arr(spec.time).map(parseTime);
    var dom = timeDomain(times);
    if (!dom) { return noData(spec.kind, spec.key); }
    var panelH = spec.panelHeight || 110, gap = 14;
    var height = MARGIN.t + spec.panels.length * (panelH + gap) - gap + MARGIN.b;
    var svg = newSvg(spec.kind, spec.key, height);
    var x = function (t) { return MARGIN.l + (t - dom[0]) / (dom[1] - dom[0]) * (WIDTH - MARGIN.l - MARGIN.r); };
    var total = 0;
    spec.panels.forEach(function (panel, i) {
      total += drawPanel(svg, panel, times, x, MARGIN.t + i * (panelH + gap), panelH);
    });
    drawTimeAxis(svg, dom, x, height - MARGIN.b);
    svg.setAttribute('data-points', String(total));
    return svg;
  }

  /** Controller state over time: one lane per state, each step a colored block in its lane. */
  function stateChart(key, history) {
    var times = arr(history.time).map(parseTime), states = arr(history.state);
    var dom = timeDomain(times);
    if (!dom) { return noData('chart-state', key); }
    var laneH = 18, height = MARGIN.t + 3 * laneH + MARGIN.b;
    var svg = newSvg('chart-state', key, height);
    var ok = times.filter(isFinite);
    var steps = ok.slice(1).map(function (t, i) { return t - ok[i]; }).sort(function (a, b) { return a - b; });
    var last = steps.length ? steps[Math.floor(steps.length / 2)] : HOUR;
    var end = dom[1] + last;
    var x = function (t) { return MARGIN.l + (t - dom[0]) / (end - dom[0]) * (WIDTH - MARGIN.l - MARGIN.r); };
    ['red', 'yellow', 'green'].forEach(function (s, lane) {
      svg.appendChild(svgEl('text', { x: MARGIN.l - 6, y: MARGIN.t + lane * laneH + 13, 'text-anchor': 'end' }, s));
    });
    var count = 0;
    for (var i = 0; i < times.length; i++) {
      var level = STATE_LEVEL[states[i]];
      if (!isFinite(times[i]) || level === undefined) { continue; }
      var next = times.slice(i + 1).filter(isFinite)[0];
      var t1 = next === undefined ? end : next;
      var rect = svgEl('rect', { x: x(times[i]), y: MARGIN.t + (2 - level) * laneH + 2, width: Math.max(1, x(t1) - x(times[i])),
        height: laneH - 4, fill: STATE_COLORS[states[i]] });
      rect.appendChild(svgEl('title', {}, fmtTime(times[i]) + ' ' + states[i]));
      svg.appendChild(rect);
      count++;
    }
    drawTimeAxis(svg, [dom[0], end], x, height - MARGIN.b);
    svg.setAttribute('data-points', String(count));
    return svg;
  }

  function legend(items) {
    var box = el('div', { 'class': 'legend' });
    items.forEach(function (it) {
      var span = el('span');
      span.appendChild(el('i', { style: 'background:' + it.color }));
      span.appendChild(document.createTextNode(it.label));
      box.appendChild(span);
    });
    return box;
  }

  function figure(title, svg, items) {
    var fig = el('figure', { 'class': 'chart-box' });
    fig.style.margin = '0';
    fig.appendChild(el('figcaption', { 'class': 'chart-title' }, title));
    if (items) { fig.appendChild(legend(items)); }
    fig.appendChild(svg);
    return fig;
  }

  /* ---------- sections ---------- */

  function badge(state) {
    var known = Object.prototype.hasOwnProperty.call(STATE_COLORS, state);
    return el('span', { 'class': 'badge ' + (known ? state : 'unknown') }, state || '?');
  }

  function table(id, headers, rows) {
    var t = el('table', { id: id, 'data-rows': String(rows.length) });
    var head = el('tr');
    headers.forEach(function (h) { head.appendChild(el('th', {}, h)); });
    t.appendChild(el('thead')).appendChild(head);
    var body = t.appendChild(el('tbody'));
    rows.forEach(function (cells) {
      var tr = body.appendChild(el('tr'));
      cells.forEach(function (c) {
        var td = tr.appendChild(el('td', c.cls ? { 'class': c.cls } : {}));
        if (c.node) { td.appendChild(c.node); } else { td.textContent = c.text === undefined ? '' : String(c.text); }
      });
    });
    return t;
  }

  function decisionLog(job, decisions) {
    var rows = arr(decisions).slice().reverse().map(function (d) {
      d = d || {};
      return [{ text: fmtIso(d.time), cls: 'time' }, { node: badge(d.state) }, { text: d.action || '' },
        { text: d.reason || '' }, { text: d.sentence || '', cls: 'sentence' }];
    });
    var t = table('decision-log-' + slug(job), ['Time', 'State', 'Action', 'Reason', 'Explanation'], rows);
    if (!rows.length) {
      var td = t.querySelector('tbody').appendChild(el('tr')).appendChild(el('td', { colspan: '5', 'class': 'nodata' }, 'no decisions yet'));
      td.setAttribute('data-empty', 'true');
    }
    return t;
  }

  function controllerCard(c) {
    var job = String(c.job || 'job'), h = c.history || {}, th = c.thresholds || {};
    var card = el('article', { 'class': 'card controller', 'data-job': job });
    var title = card.appendChild(el('h3', {}, job + ' '));
    title.appendChild(badge(c.state));
    title.appendChild(document.createTextNode(c.run === false ? ' paused' : ' running'));
    var facts = 'power cap ' + fmtNum(c.power_w, 0) + ' W \u00b7 draw ' + fmtNum(c.draw_w, 0) + ' W \u00b7 price ' +
      fmtNum(c.price, 1) + ' \u00b7 carbon ' + fmtNum(c.carbon, 0) + ' g/kWh \u00b7 score ' + fmtNum(c.score, 2) +
      ' \u00b7 at ' + fmtIso(c.time);
    card.appendChild(el('p', { 'class': 'summary' }, facts));
    if (c.sentence) { card.appendChild(el('p', { 'class': 'sentence' }, c.sentence)); }
    var charts = card.appendChild(el('div', { 'class': 'charts' }));
    charts.appendChild(figure('State over time', stateChart(job, h)));
    charts.appendChild(figure('Power cap vs draw (W)', lineChart({ kind: 'chart-power', key: job, time: h.time, panels: [{
      label: 'W', yMin: 0, series: [{ values: h.power_w, color: '#1565c0' }, { values: h.draw_w, color: '#8e24aa', dash: '4 2' }]
    }] }), [{ label: 'power cap', color: '#1565c0' }, { label: 'draw', color: '#8e24aa' }]));
    var band = isNum(th.band) ? ' (hysteresis band \u00b1' + th.band.toFixed(2) + ')' : '';
    charts.appendChild(figure('Score with thresholds' + band + ', price and carbon', lineChart({
      kind: 'chart-signals', key: job, time: h.time, panelHeight: 70, panels: [
        { label: 'score', series: [{ values: h.score, color: '#37474f' }],
          hlines: [{ y: th.green, label: 'green', color: STATE_COLORS.green }, { y: th.red, label: 'red', color: STATE_COLORS.red }] },
        { label: 'price', series: [{ values: h.price, color: '#1565c0' }] },
        { label: 'gCO\u2082/kWh', series: [{ values: h.carbon, color: '#6d4c41' }] }
      ] }), [{ label: 'score', color: '#37474f' }, { label: 'price', color: '#1565c0' }, { label: 'carbon', color: '#6d4c41' }]));
    card.appendChild(el('div', { 'class': 'chart-title' }, 'Decision log (newest first)'));
    card.appendChild(el('div', { 'class': 'log-wrap' })).appendChild(decisionLog(job, c.decisions));
    return card;
  }

  /** Renewable share as percent: fractions in [0, 1] are scaled, values already in percent are kept. */
  function percent(values, scale) { return arr(values).map(function (v) { return isNum(v) ? v * scale : null; }); }

  function zoneCard(z) {
    var zone = String(z.zone || 'zone');
    var card = el('article', { 'class': 'card zone', 'data-zone': zone });
    card.appendChild(el('h3', {}, (z.name || zone) + (z.name && z.name !== zone ? ' (' + zone + ')' : '')));
    var all = arr(z.renewable_share).concat(arr(z.hi)).filter(isNum);
    var scale = all.length && Math.max.apply(null, all) > 1.0001 ? 1 : 100;
    var panels = [{ label: '%', yMin: 0, yMax: 100, series: [{ values: percent(z.renewable_share, scale), color: STATE_COLORS.green }],
      band: z.lo && z.hi ? { lo: percent(z.lo, scale), hi: percent(z.hi, scale), color: STATE_COLORS.green } : null }];
    var items = [{ label: 'renewable share', color: STATE_COLORS.green }];
    if (z.lo && z.hi) { items.push({ label: 'band lo\u2013hi', color: 'rgba(46,125,50,0.25)' }); }
    card.appendChild(figure('Renewable share forecast (%)', lineChart({ kind: 'chart-share', key: zone, time: z.time, panels: panels }),
      items));
    return card;
  }

  function placementView(p) {
    var box = document.createDocumentFragment();
    if (!p || !arr(p.rows).length) {
      box.appendChild(el('p', { 'class': 'nodata' }, 'no placement'));
      box.appendChild(table('placement-table', ['Job', 'Site', 'Zone', 'Start', 'End', 'GPUs', 'kg CO\u2082', 'Saving %', 'Explanation'], []));
      return box;
    }
    box.appendChild(el('p', { 'class': 'summary' }, 'Expected saving: ' + fmtNum(p.expected_saving_pct, 1) + ' %'));
    box.appendChild(table('placement-table', ['Job', 'Site', 'Zone', 'Start', 'End', 'GPUs', 'kg CO\u2082', 'Saving %', 'Explanation'],
      p.rows.map(function (r) {
        r = r || {};
        return [{ text: r.job }, { text: r.site }, { text: r.zone }, { text: fmtIso(r.start), cls: 'time' },
          { text: fmtIso(r.end), cls: 'time' }, { text: isNum(r.gpus) ? r.gpus : '\u2013', cls: 'num' },
          { text: fmtNum(r.emissions_kg, 1), cls: 'num' }, { text: fmtNum(r.saving_pct, 1), cls: 'num' },
          { text: r.explanation || '' }];
      })));
    return box;
  }

  function renderHeader(data) {
    var store = data.store || {};
    var status = document.getElementById('store-status');
    status.textContent = (store.status || 'unknown') + (arr(store.zones).length ? ' \u00b7 ' + store.zones.length + ' zones' : '');
    status.setAttribute('data-status', store.status || 'unknown');
    status.title = store.path || '';
    document.getElementById('store-init').textContent = fmtIso(store.init_time);
    document.getElementById('store-age').textContent = fmtAge(store.init_age_s);
    document.getElementById('store-snapshot').textContent = store.snapshot_id ? String(store.snapshot_id).slice(0, 12) : '\u2013';
    document.getElementById('generated-at').textContent = fmtIso(data.generated_at);
  }

  /** Replace a section body with what build() returns, or a message when it throws. */
  function fill(id, build) {
    var body = document.getElementById(id);
    var next;
    try {
      next = build();
    } catch (err) {
      console.error('CarbonSync: could not render ' + id + ': ' + (err && err.stack || err));
      next = el('p', { 'class': 'nodata' }, 'could not render this section');
    }
    body.replaceChildren(next);
  }

  function listOrEmpty(items, make, message) {
    if (!items.length) { return el('p', { 'class': 'nodata' }, message); }
    var frag = document.createDocumentFragment();
    items.forEach(function (it) { frag.appendChild(make(it || {})); });
    return frag;
  }

  function render(data) {
    api.renders += 1;
    fill('controllers-body', function () {
      return listOrEmpty(arr(data.controllers), controllerCard, 'no controller decisions');
    });
    fill('zones-body', function () { return listOrEmpty(arr(data.zones), zoneCard, 'no forecast zones'); });
    fill('placement-body', function () { return placementView(data.placement); });
    try { renderHeader(data); } catch (err) { console.error('CarbonSync: header: ' + err); }
  }

  /* ---------- live updates ---------- */

  var last = { text: null, generated: -Infinity };
  var pollTimer = null, source = null;

  function setMode(mode) {
    var node = document.getElementById('connection');
    node.textContent = mode;
    node.setAttribute('data-mode', mode);
  }

  /** Render a JSON payload unless it is unchanged or older than what is shown. */
  function handle(text) {
    if (text === last.text) { return; }
    console.info('dbg handle ' + text.length + ' ' + String(last.text && last.text.length));
    var data;
    try { data = JSON.parse(text); } catch (err) { console.warn('CarbonSync: bad payload'); return; }
    var generated = parseTime(data && data.generated_at);
    if (isFinite(generated) && generated < last.generated) { return; }
    last = { text: text, generated: isFinite(generated) ? generated : last.generated };
    render(data || {});
  }

  function poll() {
    return fetch('api/dashboard', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
      .then(function (text) { if (!source) { setMode('polling'); } handle(text); })
      .catch(function (err) { if (!source) { setMode('offline'); } console.warn('CarbonSync: poll failed: ' + err); });
  }

  function startPolling() {
    if (pollTimer === null) { pollTimer = setInterval(poll, POLL_MS); }
  }

  function connect() {
    if (!window.EventSource) { setMode('polling'); startPolling(); return; }
    source = new EventSource('events');
    source.addEventListener('update', function (ev) {
      setMode('live');
      if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
      handle(ev.data);
    });
    source.onerror = function () {
      if (source) { source.close(); source = null; }
      setMode('polling');
      startPolling();
      setTimeout(connect, SSE_RETRY_MS);
    };
  }

  var api = window.CarbonSync = { render: render, slug: slug, parseTime: parseTime, poll: poll, renders: 0 };
  poll();
  connect();
}());
