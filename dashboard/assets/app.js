// SPDX-License-Identifier: Apache-2.0
// The jetjobs dashboard: plain DOM, no framework, no network but this server's /api.
'use strict';

(() => {
  const view = document.getElementById('view');
  const main = document.getElementById('main');
  const liveStatus = document.getElementById('live-status');
  const toastBox = document.getElementById('toast');

  // --- helpers -------------------------------------------------------------------------------

  /** Builds an element: h('a', {href: '#/'}, 'text', child). Text is always text, never HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    return append(el, children);
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-Jetjobs-Dashboard'] = '1';
    const options = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function timeEl(iso) {
    return iso ? h('time', { datetime: iso }, fmtTime(iso)) : '—';
  }

  function fmtRate(perSecond) {
    if (!perSecond) return '0/s';
    if (perSecond >= 10) return `${perSecond.toFixed(0)}/s`;
    if (perSecond >= 0.1) return `${perSecond.toFixed(2)}/s`;
    return `${(perSecond * 60).toFixed(1)}/min`;
  }

  function fmtSecs(secs) {
    if (!secs) return '—';
    if (secs % 3600 === 0) return `${secs / 3600}h`;
    if (secs % 60 === 0) return `${secs / 60}m`;
    return `${secs}s`;
  }

  function badge(state) {
    return h('span', { class: `state state-${state || 'unknown'}` }, state || 'unknown');
  }

  function taskLink(id, key) {
    return h('a', { href: `#/task/${encodeURIComponent(id)}`, class: 'id', dataset: { key: key || `task-${id}` } }, id);
  }

  function hashWith(base, params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) query.set(k, v);
    const text = query.toString();
    return text ? `${base}?${text}` : base;
  }

  function prettyPayload(payload) {
    if (payload === null || payload === undefined) return 'no payload';
    if ('json' in payload) return JSON.stringify(payload.json, null, 2);
    if ('text' in payload) return payload.text;
    return `base64: ${payload.base64}`;
  }

  function compactPayload(payload) {
    if (payload && 'json' in payload) return JSON.stringify(payload.json);
    return prettyPayload(payload);
  }

  function field(id, label, control) {
    control.id = id;
    return h('div', { class: 'field' }, h('label', { for: id }, label), control);
  }

  let toastTimer = null;
  function toast(message, isError) {
    toastBox.textContent = message;
    toastBox.className = isError ? 'toast error' : 'toast';
    toastBox.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastBox.hidden = true; }, isError ? 8000 : 4000);
  }

  const dialog = document.getElementById('confirm-dialog');
  /** Asks before a destructive action; resolves to true only on the Confirm button. */
  function confirmAction(title, text, okLabel) {
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = okLabel || 'Confirm';
    const opener = document.activeElement;
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => {
        resolve(dialog.returnValue === 'ok');
        if (opener && document.contains(opener)) opener.focus();
      }, { once: true });
      dialog.returnValue = 'cancel';
      dialog.showModal();
      document.getElementById('confirm-cancel').focus();
    });
  }

  /** Runs an action after confirmation, reporting its outcome. */
  async function act(title, text, okLabel, run) {
    if (!(await confirmAction(title, text, okLabel))) return false;
    try {
      const message = await run();
      toast(message || 'Done');
      return true;
    } catch (e) {
      toast(`${title} failed: ${e.message}`, true);
      return false;
    }
  }

  function errorPanel(title, e) {
    return h('div', { class: 'panel' }, h('h1', { tabindex: '-1' }, title), h('p', { class: 'error-text' }, e.message));
  }

  function table(caption, headers, rows, options) {
    const opts = options || {};
    return h('div', { class: 'table-wrap' },
      h('table', { id: opts.id },
        h('caption', {}, caption),
        h('thead', {}, h('tr', {}, headers.map((label) =>
          h('th', { scope: 'col', class: opts.numeric && opts.numeric.includes(label) ? 'num' : null }, label)))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, opts.empty || 'None'))),
        opts.foot ? h('tfoot', {}, opts.foot) : null));
  }

  // --- live events ---------------------------------------------------------------------------

  let page = null; // { onEvent(event) } of the page shown
  let source = null;
  function connectEvents() {
    source = new EventSource('/api/events');
    source.addEventListener('open', () => {
      liveStatus.textContent = 'live';
      liveStatus.className = 'live-status live';
    });
    source.addEventListener('error', () => {
      liveStatus.textContent = 'reconnecting…';
      liveStatus.className = 'live-status down';
    });
    source.addEventListener('task_state', (message) => {
      let event = null;
      try {
        event = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      if (page && page.onEvent) page.onEvent(event);
    });
    source.addEventListener('leader_elected', () => {
      if (page && page.onEvent) page.onEvent({ type: 'leader_elected' });
    });
  }

  function debounced(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // --- routing -------------------------------------------------------------------------------

  let renderSeq = 0;

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, query] = raw.split('?');
    return {
      parts: path.split('/').filter(Boolean).map(decodeURIComponent),
      params: new URLSearchParams(query || ''),
    };
  }

  /** Replaces the view, keeping keyboard focus on the same control when re-rendering a page. */
  function show(content, { keepFocus } = {}) {
    const focusedKey = keepFocus && document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key : null;
    view.replaceChildren(content);
    if (focusedKey) {
      const again = view.querySelector(`[data-key="${CSS.escape(focusedKey)}"]`);
      if (again) again.focus();
    }
  }

  async function route(options) {
    const { keepFocus } = options || {};
    const seq = ++renderSeq;
    const { parts, params } = parseHash();
    const section = parts[0] === 'task' ? 'tasks' : (parts[0] || 'overview');
    for (const link of document.querySelectorAll('.site-nav a')) {
      if (link.dataset.nav === section) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const pages = {
      overview: () => overviewPage(),
      tasks: () => (parts[0] === 'task' ? taskPage(parts.slice(1).join('/')) : tasksPage(params)),
      schedules: () => schedulesPage(),
      governors: () => (parts[1] ? governorPage(parts[1]) : governorsPage(params)),
      pools: () => (parts[1] ? poolPage(parts[1]) : poolsPage()),
    };
    const render = pages[section] || (() => Promise.resolve({ content: errorPanel('Not found', new Error(`No page ${location.hash}`)) }));
    let result;
    try {
      result = await render();
    } catch (e) {
      result = { content: errorPanel('Something went wrong', e) };
    }
    if (seq !== renderSeq) return; // a newer navigation won
    page = result;
    show(result.content, { keepFocus });
    if (!keepFocus) {
      const heading = view.querySelector('h1');
      if (heading) {
        heading.setAttribute('tabindex', '-1');
        heading.focus();
      }
      document.title = `${heading ? heading.textContent : 'jetjobs'} · jetjobs dashboard`;
    }
  }

  function refresh() {
    return route({ keepFocus: true });
  }

  // --- overview ------------------------------------------------------------------------------

  function chart(rates) {
    const series = rates.series;
    const kinds = ['enqueued', 'completed', 'failed', 'retried'];
    const n = series.enqueued.length;
    const width = 640;
    const height = 200;
    const left = 40;
    const right = 10;
    const top = 10;
    const bottom = 24;
    const max = Math.max(1, ...kinds.flatMap((k) => series[k]));
    const x = (i) => left + (i * (width - left - right)) / Math.max(1, n - 1);
    const y = (v) => top + (height - top - bottom) * (1 - v / max);
    const totals = Object.fromEntries(kinds.map((k) => [k, series[k].reduce((a, b) => a + b, 0)]));
    const minutes = Math.round((n * rates.bucket_secs) / 60);
    const label = `Events per ${rates.bucket_secs} seconds over the last ${minutes} minutes: ` +
      kinds.map((k) => `${totals[k]} ${k}`).join(', ');
    const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, id: 'rates-chart' },
      s('title', {}, label),
      [0, 0.5, 1].map((f) => s('line', { class: 'grid', x1: left, x2: width - right, y1: y(max * f), y2: y(max * f) })),
      s('text', { class: 'axis', x: left - 6, y: y(max) + 4, 'text-anchor': 'end' }, String(max)),
      s('text', { class: 'axis', x: left - 6, y: y(0) + 4, 'text-anchor': 'end' }, '0'),
      s('text', { class: 'axis', x: left, y: height - 6 }, `−${minutes} min`),
      s('text', { class: 'axis', x: width - right, y: height - 6, 'text-anchor': 'end' }, 'now'),
      kinds.map((k) => s('polyline', {
        class: `line line-${k}`,
        points: series[k].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
      })));
    return h('section', { class: 'panel chart', 'aria-labelledby': 'chart-title' },
      h('h2', { id: 'chart-title' }, `Activity (last ${minutes} minutes, per ${rates.bucket_secs} s)`),
      svg,
      h('ul', { class: 'legend' }, kinds.map((k) => h('li', { class: `key-${k}` }, `${k} (${totals[k]})`))));
  }

  async function overviewPage() {
    const data = await api('GET', '/api/overview');
    const states = data.states;
    const rates = data.rates.per_second;
    const card = (id, label, value) => h('div', { class: 'card' }, h('dt', {}, label), h('dd', { id }, value));
    const leader = data.scheduler.leader;
    const countCell = (queue, state, n) => h('td', { class: 'num', dataset: { queue, state, count: n } },
      n > 0 ? h('a', { href: hashWith('#/tasks', { queue, state }), dataset: { key: `count-${queue}-${state}` } }, String(n)) : '0');
    const rows = data.queues.map((q) => h('tr', {},
      h('th', { scope: 'row' }, q.name, q.exists ? '' : h('span', { class: 'muted' }, ' (no queue stream)')),
      states.map((st) => countCell(q.name, st, q.counts[st] || 0)),
      h('td', { class: 'num', dataset: { queue: q.name, state: 'total', count: q.total } }, String(q.total)),
      h('td', { class: 'num' }, q.items === undefined ? '—' : String(q.items)),
      h('td', { class: 'num' }, q.in_flight === undefined ? '—' : String(q.in_flight)),
      h('td', { class: 'num' }, q.waiting_pulls === undefined ? '—' : String(q.waiting_pulls)),
      h('td', {}, q.exists ? h('button', {
        type: 'button',
        class: 'danger',
        'aria-label': `Purge queue ${q.name}`,
        dataset: { key: `purge-${q.name}` },
        onclick: () => act(`Purge queue ${q.name}`,
          `Remove all ${q.items} waiting work items of queue ${q.name}? Their task documents stay (tasks not yet run will never run unless retried).`,
          'Purge', async () => {
            const r = await api('POST', `/api/queues/${encodeURIComponent(q.name)}/purge`);
            await refresh();
            return `Purged ${r.items_removed} items from ${q.name}`;
          }),
      }, 'Purge…') : '')));
    const foot = h('tr', {},
      h('th', { scope: 'row' }, 'All queues'),
      states.map((st) => h('td', { class: 'num', dataset: { queue: '*', state: st, count: data.totals[st] || 0 } }, String(data.totals[st] || 0))),
      h('td', { class: 'num', dataset: { queue: '*', state: 'total', count: data.total } }, String(data.total)),
      h('td', { colspan: 4 }));
    const index = data.index;
    const content = h('div', {},
      h('h1', {}, 'Overview'),
      index.ready ? null : h('p', { class: 'notice', role: 'status' }, `Indexing tasks… ${index.indexed} read so far.`),
      h('dl', { class: 'cards' },
        card('stat-total', 'Tasks stored', String(index.stored)),
        card('stat-enqueued', 'Enqueued', fmtRate(rates.enqueued)),
        card('stat-completed', 'Completed', fmtRate(rates.completed)),
        card('stat-failed', 'Failed', fmtRate(rates.failed)),
        card('stat-workers', 'Worker pulls waiting', String(data.workers.waiting_pulls)),
        card('stat-in-flight', 'Tasks in flight', String(data.workers.in_flight)),
        card('stat-leader', 'Scheduler leader', leader || 'none')),
      chart(data.rates),
      h('section', { 'aria-labelledby': 'queues-title' },
        h('h2', { id: 'queues-title' }, 'Queues'),
        table('Tasks by queue and state', ['Queue', ...states, 'Total', 'Waiting items', 'In flight', 'Pulls waiting', 'Actions'],
          rows, { id: 'queues-table', numeric: [...states, 'Total', 'Waiting items', 'In flight', 'Pulls waiting'], foot, empty: 'No queues yet' })),
      h('p', { class: 'muted' },
        `Rates over the last ${data.rates.window_secs} s from ${data.rates.events_seen} lifecycle events seen since ${fmtTime(data.started)}. `,
        'Workers are counted by the pull requests they have waiting on each queue.'),
      data.scheduler.elections.length ? h('section', { 'aria-labelledby': 'elections-title' },
        h('h2', { id: 'elections-title' }, 'Leader elections seen'),
        h('ul', {}, data.scheduler.elections.map((e) => h('li', {}, timeElAndText(e.at, `${e.name} became ${e.component} leader`))))) : null);
    return { content, onEvent: debounced(refresh, 1000) };
  }

  function timeElAndText(at, text) {
    return [timeEl(at), ' ', text];
  }

  // --- tasks ---------------------------------------------------------------------------------

  const cursorStack = [];
  let stackFilter = '';

  async function tasksPage(params) {
    const filter = {
      state: params.get('state') || '',
      queue: params.get('queue') || '',
      type: params.get('type') || '',
      id: params.get('id') || '',
    };
    const cursor = params.get('cursor') || '';
    const filterKey = JSON.stringify(filter);
    if (filterKey !== stackFilter) {
      cursorStack.length = 0;
      stackFilter = filterKey;
    }
    const data = await api('GET', hashWith('/api/tasks', { ...filter, cursor, limit: params.get('limit') || '' }));
    const facets = data.facets;
    const go = (next) => { location.hash = hashWith('#/tasks', next); };

    const stateSelect = h('select', { name: 'state' },
      h('option', { value: '' }, 'Any state'),
      facets.states.map((st) => h('option', { value: st, selected: st === filter.state }, st)),
      h('option', { value: 'failed', selected: filter.state === 'failed' }, 'failed (any of the final failures)'));
    const queueSelect = h('select', { name: 'queue' },
      h('option', { value: '' }, 'Any queue'),
      [...new Set([...facets.queues, filter.queue].filter(Boolean))].map((q) => h('option', { value: q, selected: q === filter.queue }, q)));
    const typeSelect = h('select', { name: 'type' },
      h('option', { value: '' }, 'Any type'),
      [...new Set([...facets.types, filter.type].filter(Boolean))].map((t) => h('option', { value: t, selected: t === filter.type }, t)));
    const idInput = h('input', { type: 'search', name: 'id', value: filter.id, placeholder: 'id or its start', autocomplete: 'off', spellcheck: 'false' });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tasks' },
      field('filter-state', 'State', stateSelect),
      field('filter-queue', 'Queue', queueSelect),
      field('filter-type', 'Type', typeSelect),
      field('filter-id', 'Search by id', idInput),
      h('button', { type: 'submit', dataset: { key: 'filter-apply' } }, 'Apply'),
      h('button', { type: 'button', class: 'secondary', dataset: { key: 'filter-clear' }, onclick: () => go({}) }, 'Clear'));
    const submit = (event) => {
      if (event) event.preventDefault();
      go({ state: stateSelect.value, queue: queueSelect.value, type: typeSelect.value, id: idInput.value.trim() });
    };
    form.addEventListener('submit', submit);
    for (const select of [stateSelect, queueSelect, typeSelect]) select.addEventListener('change', () => submit());

    const rows = data.tasks.map((t) => h('tr', { dataset: { id: t.id, state: t.state } },
      h('td', {}, taskLink(t.id)),
      h('td', {}, t.type),
      h('td', {}, t.queue),
      h('td', {}, badge(t.state)),
      h('td', { class: 'num' }, String(t.tries)),
      h('td', {}, timeEl(t.created))));
    const start = cursorStack.length * data.limit;
    const summary = data.matching === 0 ? 'No tasks match.'
      : `Showing ${start + 1}–${start + data.tasks.length} of ${data.matching} matching tasks.`;
    const pager = h('div', { class: 'pager' },
      h('button', {
        type: 'button', class: 'secondary', disabled: !cursor, dataset: { key: 'page-first' },
        onclick: () => { cursorStack.length = 0; go(filter); },
      }, 'First page'),
      h('button', {
        type: 'button', class: 'secondary', disabled: !cursor, dataset: { key: 'page-newer' },
        onclick: () => { const previous = cursorStack.pop(); go({ ...filter, cursor: previous || '' }); },
      }, 'Newer'),
      h('button', {
        type: 'button', class: 'secondary', disabled: !data.next_cursor, dataset: { key: 'page-older' },
        onclick: () => { cursorStack.push(cursor); go({ ...filter, cursor: data.next_cursor }); },
      }, 'Older'));
    const content = h('div', {},
      h('h1', {}, 'Tasks'),
      data.index.ready ? null : h('p', { class: 'notice', role: 'status' }, `Indexing tasks… ${data.index.indexed} read so far.`),
      form,
      h('p', { id: 'tasks-summary', role: 'status' }, summary),
      table('Tasks, newest first', ['ID', 'Type', 'Queue', 'State', 'Tries', 'Created'], rows,
        { id: 'tasks-table', numeric: ['Tries'], empty: 'No tasks match these filters.' }),
      pager);
    // Live: the first page follows changes; later pages stay put while being read.
    return { content, onEvent: cursor ? null : debounced(refresh, 1500) };
  }

  async function taskPage(id) {
    let task;
    try {
      task = await api('GET', `/api/tasks/${encodeURIComponent(id)}`);
    } catch (e) {
      return { content: errorPanel(e.status === 404 ? 'Task not found' : 'Task', e) };
    }
    const path = `/api/tasks/${encodeURIComponent(task.id)}`;
    const retry = h('button', {
      type: 'button', id: 'action-retry', dataset: { key: 'action-retry' },
      onclick: () => act('Retry task', `Enqueue task ${task.id} again on queue ${task.queue || '(default)'}? It goes to state retry with its tries reset and its result cleared.`,
        'Retry', async () => {
          const r = await api('POST', `${path}/retry`);
          await refresh();
          return `Task ${task.id} is now ${r.state}`;
        }),
    }, 'Retry');
    const remove = h('button', {
      type: 'button', id: 'action-delete', class: 'danger', dataset: { key: 'action-delete' },
      onclick: () => act('Delete task', `Delete task ${task.id}? Its document is removed; a waiting work item is dropped when delivered.`,
        'Delete', async () => {
          await api('DELETE', path);
          location.hash = hashWith('#/tasks', { queue: task.queue });
          return `Deleted task ${task.id}`;
        }),
    }, 'Delete');
    const dd = (label, value, ddId) => [h('dt', {}, label), h('dd', { id: ddId }, value)];
    const details = h('dl', { class: 'fields' },
      dd('ID', h('span', { class: 'id' }, task.id)),
      dd('Type', task.type, 'task-type'),
      dd('Queue', task.queue ? h('a', { href: hashWith('#/tasks', { queue: task.queue }) }, task.queue) : '(none)', 'task-queue'),
      dd('State', badge(task.state), 'task-state'),
      dd('Tries', task.max_tries > 0 ? `${task.tries} of ${task.max_tries}` : `${task.tries} (unlimited)`, 'task-tries'),
      dd('Created', timeEl(task.created)),
      dd('Last tried', timeEl(task.tried)),
      task.run_at ? dd('Due', timeEl(task.run_at)) : null,
      task.deadline ? dd('Deadline', timeEl(task.deadline)) : null,
      task.order_key ? dd('Order key', task.order_key) : null,
      task.waiting_for ? dd('Waiting for', taskLink(task.waiting_for)) : null,
      dd('Signed', task.signed ? 'yes' : 'no'),
      dd('Last error', task.last_err ? h('span', { class: 'error-text' }, task.last_err) : '—', 'task-last-error'));
    const deps = task.dependencies.length
      ? h('ul', { id: 'task-dependencies' }, task.dependencies.map((d) => h('li', {}, taskLink(d.id), ' ', d.state ? badge(d.state) : h('span', { class: 'muted' }, 'not found'))))
      : h('p', { class: 'muted' }, 'None');
    const timeline = h('ol', { class: 'timeline', id: 'task-timeline' }, task.timeline.map((item) => h('li', { class: `source-${item.source}` },
      timeEl(item.at), item.what,
      item.source === 'event' ? ` (tries ${item.tries})` : '',
      item.last_error ? h('span', { class: 'error-text' }, ` — ${item.last_error}`) : '')));
    const content = h('div', {},
      h('h1', {}, 'Task ', h('span', { class: 'id' }, task.id), ' ', badge(task.state)),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Task actions' }, retry, remove),
      h('section', { class: 'panel', 'aria-labelledby': 'details-title' }, h('h2', { id: 'details-title' }, 'Details'), details),
      h('section', { 'aria-labelledby': 'payload-title' }, h('h2', { id: 'payload-title' }, 'Payload'),
        h('pre', { class: 'json', id: 'task-payload', tabindex: '0', 'aria-labelledby': 'payload-title' }, prettyPayload(task.payload))),
      h('section', { 'aria-labelledby': 'result-title' }, h('h2', { id: 'result-title' }, 'Result'),
        task.result
          ? [h('pre', { class: 'json', id: 'task-result', tabindex: '0', 'aria-labelledby': 'result-title' }, JSON.stringify(task.result.payload, null, 2)),
            h('p', { class: 'muted' }, 'Completed ', timeEl(task.result.completed))]
          : h('p', { class: 'muted' }, 'No result')),
      h('section', { 'aria-labelledby': 'deps-title' }, h('h2', { id: 'deps-title' }, 'Dependencies'), deps),
      h('section', { 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, 'Timeline'), timeline,
        h('p', { class: 'muted' }, `The task's own timestamps, and the events seen since the dashboard started (${fmtTime(task.events_since)}).`)));
    const reload = debounced(refresh, 300);
    return { content, onEvent: (event) => { if (event.task_id === task.id) reload(); } };
  }

  // --- schedules -----------------------------------------------------------------------------

  async function schedulesPage() {
    const data = await api('GET', '/api/schedules');
    const rows = data.schedules.map((sch) => h('tr', {},
      h('th', { scope: 'row' }, sch.name),
      h('td', {}, h('code', {}, sch.schedule)),
      h('td', {}, sch.queue),
      h('td', {}, sch.task_type),
      h('td', {}, h('code', {}, compactPayload(sch.payload))),
      h('td', {}, fmtSecs(sch.deadline_secs)),
      h('td', { class: 'num' }, String(sch.max_tries)),
      h('td', {}, timeEl(sch.next)),
      h('td', {}, h('button', {
        type: 'button', class: 'danger', 'aria-label': `Remove schedule ${sch.name}`, dataset: { key: `remove-${sch.name}` },
        onclick: () => act('Remove schedule', `Remove schedule ${sch.name}? No more tasks are created from it.`, 'Remove', async () => {
          await api('DELETE', `/api/schedules/${encodeURIComponent(sch.name)}`);
          await refresh();
          return `Removed schedule ${sch.name}`;
        }),
      }, 'Remove…'))));
    const inputs = {
      name: h('input', { name: 'name', required: true, pattern: '[a-zA-Z0-9_:\\-]+' }),
      schedule: h('input', { name: 'schedule', required: true, placeholder: '*/5 * * * *  or  @every 1h' }),
      queue: h('input', { name: 'queue', required: true }),
      task_type: h('input', { name: 'task_type', required: true }),
      payload: h('textarea', { name: 'payload', placeholder: '{"key": "value"}' }),
      deadline_secs: h('input', { name: 'deadline_secs', type: 'number', min: '0', step: '1' }),
      max_tries: h('input', { name: 'max_tries', type: 'number', step: '1' }),
    };
    const form = h('form', { class: 'inline panel', 'aria-labelledby': 'add-schedule-title' },
      field('schedule-name', 'Name', inputs.name),
      field('schedule-spec', 'Schedule (cron)', inputs.schedule),
      field('schedule-queue', 'Queue', inputs.queue),
      field('schedule-type', 'Task type', inputs.task_type),
      field('schedule-payload', 'Payload (JSON, optional)', inputs.payload),
      field('schedule-deadline', 'Deadline in seconds (optional)', inputs.deadline_secs),
      field('schedule-max-tries', 'Max tries (optional)', inputs.max_tries),
      h('button', { type: 'submit', dataset: { key: 'schedule-add' } }, 'Add schedule'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const body = {
        name: inputs.name.value, schedule: inputs.schedule.value, queue: inputs.queue.value,
        task_type: inputs.task_type.value, payload: inputs.payload.value,
        deadline_secs: Number(inputs.deadline_secs.value || 0),
      };
      if (inputs.max_tries.value !== '') body.max_tries = Number(inputs.max_tries.value);
      try {
        await api('POST', '/api/schedules', body);
        toast(`Added schedule ${body.name}`);
        await refresh();
      } catch (e) {
        toast(`Adding the schedule failed: ${e.message}`, true);
      }
    });
    const content = h('div', {},
      h('h1', {}, 'Schedules'),
      table('Scheduled tasks', ['Name', 'Schedule', 'Queue', 'Task type', 'Payload', 'Deadline', 'Max tries', 'Next run', 'Actions'], rows,
        { id: 'schedules-table', numeric: ['Max tries'], empty: 'No schedules' }),
      h('h2', { id: 'add-schedule-title' }, 'Add a schedule'),
      form);
    return { content };
  }

  // --- governors -----------------------------------------------------------------------------

  async function governorsPage(params) {
    const collective = params.get('collective') || 'choria';
    let listing = null;
    let error = null;
    try {
      listing = await api('GET', hashWith('/api/governors', { collective }));
    } catch (e) {
      error = e;
    }
    const collectiveInput = h('input', { name: 'collective', value: collective });
    const listForm = h('form', { class: 'inline' },
      field('governor-collective', 'Collective', collectiveInput),
      h('button', { type: 'submit' }, 'List governors'));
    listForm.addEventListener('submit', (event) => {
      event.preventDefault();
      location.hash = hashWith('#/governors', { collective: collectiveInput.value.trim() });
    });
    const nameInput = h('input', { name: 'governor', required: true });
    const openForm = h('form', { class: 'inline' },
      field('governor-name', 'Governor name', nameInput),
      h('button', { type: 'submit' }, 'Open governor'));
    openForm.addEventListener('submit', (event) => {
      event.preventDefault();
      location.hash = `#/governors/${encodeURIComponent(nameInput.value.trim())}`;
    });
    const rows = listing ? listing.governors.map((g) => h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `#/governors/${encodeURIComponent(g.name)}` }, g.name)),
      h('td', { class: 'num' }, g.limit === undefined ? '—' : String(g.limit)),
      h('td', { class: 'num' }, g.active === undefined || g.active === null ? '—' : String(g.active)),
      h('td', {}, g.max_age_secs ? fmtSecs(g.max_age_secs) : '—'),
      h('td', {}, g.subject || g.error || ''))) : [];
    const content = h('div', {},
      h('h1', {}, 'Governors'),
      listForm,
      error ? h('p', { class: 'error-text' }, error.message)
        : table(`Governors of collective ${collective}`, ['Name', 'Limit', 'Active', 'Max age', 'Subject'], rows,
          { id: 'governors-table', numeric: ['Limit', 'Active'], empty: 'None (governors on the library default subject are not listed: open one by name)' }),
      h('h2', {}, 'Open a governor by name'),
      openForm);
    return { content };
  }

  async function governorPage(name) {
    let g;
    try {
      g = await api('GET', `/api/governors/${encodeURIComponent(name)}`);
    } catch (e) {
      return { content: errorPanel(`Governor ${name}`, e) };
    }
    const rows = g.leases.map((lease) => h('tr', {},
      h('th', { scope: 'row', class: 'num' }, String(lease.seq)),
      h('td', {}, lease.holder),
      h('td', {}, timeEl(lease.taken)),
      h('td', {}, h('button', {
        type: 'button', class: 'danger', 'aria-label': `Evict lease ${lease.seq} held by ${lease.holder}`, dataset: { key: `evict-${lease.seq}` },
        onclick: () => act('Evict lease', `Evict ${lease.holder} (lease ${lease.seq}) from governor ${g.name}? The slot becomes free at once.`, 'Evict', async () => {
          await api('POST', `/api/governors/${encodeURIComponent(g.name)}/evict`, { seq: lease.seq });
          await refresh();
          return `Evicted ${lease.holder}`;
        }),
      }, 'Evict…'))));
    const content = h('div', {},
      h('h1', {}, `Governor ${g.name}`),
      h('section', { class: 'panel', 'aria-labelledby': 'governor-settings' },
        h('h2', { id: 'governor-settings' }, 'Settings'),
        h('dl', { class: 'fields' },
          h('dt', {}, 'Slots'), h('dd', { id: 'governor-slots' }, `${g.active} of ${g.limit} in use`),
          h('dt', {}, 'Max age'), h('dd', {}, g.max_age_secs ? fmtSecs(g.max_age_secs) : 'never'),
          h('dt', {}, 'Subject'), h('dd', {}, h('code', {}, g.subject)),
          h('dt', {}, 'Replicas'), h('dd', {}, String(g.replicas)),
          h('dt', {}, 'Last lease taken'), h('dd', {}, timeEl(g.last_active)))),
      table('Holders', ['Lease', 'Holder', 'Taken', 'Actions'], rows, { id: 'leases-table', empty: 'No holders' }),
      h('p', {}, h('a', { href: '#/governors' }, 'All governors')));
    return { content };
  }

  // --- pools ---------------------------------------------------------------------------------

  const POOLS_KEY = 'jetjobs-dashboard-pools';
  function recentPools() {
    try {
      return JSON.parse(localStorage.getItem(POOLS_KEY) || '[]');
    } catch (_) {
      return [];
    }
  }

  function poolForm() {
    const input = h('input', { name: 'pool', required: true });
    const form = h('form', { class: 'inline' },
      field('pool-name', 'Pool name', input),
      h('button', { type: 'submit' }, 'Show pool'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      location.hash = `#/pools/${encodeURIComponent(input.value.trim())}`;
    });
    return form;
  }

  async function poolsPage() {
    const recent = recentPools();
    const content = h('div', {},
      h('h1', {}, 'Pools'),
      h('p', {}, 'Type the name of a pool to see its nodes, workers and jobs.'),
      poolForm(),
      recent.length ? h('section', { 'aria-labelledby': 'recent-pools' },
        h('h2', { id: 'recent-pools' }, 'Recently viewed'),
        h('ul', {}, recent.map((p) => h('li', {}, h('a', { href: `#/pools/${encodeURIComponent(p)}` }, p))))) : null);
    return { content };
  }

  async function poolPage(name) {
    let pool;
    try {
      pool = await api('GET', `/api/pools/${encodeURIComponent(name)}`);
    } catch (e) {
      return { content: h('div', {}, errorPanel(`Pool ${name}`, e), poolForm()) };
    }
    const recent = [name, ...recentPools().filter((p) => p !== name)].slice(0, 10);
    try {
      localStorage.setItem(POOLS_KEY, JSON.stringify(recent));
    } catch (_) {
      // private mode: no history
    }
    const memberRow = (m, withNode) => h('tr', {},
      h('th', { scope: 'row', class: 'id' }, m.id),
      withNode ? h('td', { class: 'id' }, m.node) : null,
      h('td', {}, timeEl(m.created_at)));
    const content = h('div', {},
      h('h1', {}, `Pool ${pool.pool}`),
      table('Nodes', ['Node', 'Joined'], pool.nodes.map((m) => memberRow(m, false)), { id: 'pool-nodes' }),
      h('h2', {}, 'Workers'),
      table('Workers', ['Worker', 'Node', 'Joined'], pool.workers.map((m) => memberRow(m, true)), { id: 'pool-workers' }),
      h('h2', {}, 'Jobs'),
      table('Jobs', ['Key', 'Owner', 'Generation', 'State', 'Payload bytes'], pool.jobs.map((j) => h('tr', {},
        h('th', { scope: 'row' }, j.key),
        h('td', { class: 'id' }, j.owner || '—'),
        h('td', { class: 'num' }, String(j.generation)),
        h('td', {}, j.state),
        h('td', { class: 'num' }, String(j.payload_len)))), { id: 'pool-jobs', numeric: ['Generation', 'Payload bytes'] }),
      h('h2', {}, 'Another pool'),
      poolForm());
    return { content, onEvent: null };
  }

  // --- start ---------------------------------------------------------------------------------

  window.addEventListener('hashchange', () => route());
  main.addEventListener('click', (event) => {
    // Same-hash links re-render instead of doing nothing.
    const link = event.target.closest('a[href^="#"]');
    if (link && link.getAttribute('href') === location.hash) route();
  });
  connectEvents();
  route();
})();
