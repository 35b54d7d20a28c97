// sigstage console: a client of the admin API (/api/admin/openapi.json), nothing more. Pages
// are drawn from API answers with DOM calls only (no HTML from data), routed by the hash:
// #/orgs/{org}/{page}[/{id}].
'use strict';

const state = { session: null, orgs: [], tail: null, view: 0 };
const main = () => document.getElementById('main');

// ---- DOM ---------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'value') el.value = value;
    else el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}
function show(...nodes) { main().replaceChildren(...nodes.filter(node => node)); return true; }
// A page's own `show`: it draws only while the page is still the one routed to, so a slow
// answer for a page the user has left never replaces the page they are on.
function view() {
  const mine = state.view;
  return (...nodes) => mine === state.view && show(...nodes);
}
function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('show'), 3000);
}
// A bar filled to `percent`; set through the style object, which the page's CSP allows.
function bar(percent) {
  const fill = h('span', { 'data-test': 'usage-bar' });
  fill.style.width = `${percent.toFixed(1)}%`;
  return h('div', { class: 'bar' }, fill);
}
const when = ms => (ms ? new Date(Number(ms)).toLocaleString() : '—');
const num = n => (n === null || n === undefined ? '—' : Number(n).toLocaleString());
function table(headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map(([title, cls]) => h('th', { class: cls }, title)))),
    h('tbody', {}, rows)));
}

// ---- API ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.session) headers['X-CSRF-Token'] = state.session.csrf;
  const response = await fetch(path, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { message: text }; }
  if (response.status === 401 && path.startsWith('/api/')) { state.session = null; signIn(); }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
const orgPath = (org, rest) => `/api/admin/orgs/${encodeURIComponent(org)}${rest}`;
function failure(error) {
  const problems = error.body && error.body.problems ? error.body.problems : [];
  return h('div', { class: 'error', 'data-test': 'error' }, error.message, problems.length ? h('ul', {}, problems.map(p => h('li', {}, p))) : null);
}
// Runs an action from a button, showing what went wrong next to it.
async function act(button, action) {
  const place = button.parentElement;
  place.querySelectorAll(':scope > .error').forEach(el => el.remove());
  button.disabled = true;
  try { await action(); } catch (error) { place.append(failure(error)); } finally { button.disabled = false; }
}

// ---- sign-in and routing -----------------------------------------------------------------
function signIn(message) {
  stopTail();
  state.view += 1;
  document.getElementById('nav').hidden = true;
  document.getElementById('org-picker').hidden = true;
  document.getElementById('sign-out').hidden = true;
  document.getElementById('who').textContent = '';
  const token = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', required: true });
  const problem = h('p', { class: 'error', 'data-test': 'sign-in-error' }, message || '');
  const form = h('form', { class: 'card stack sign-in', id: 'sign-in', onsubmit: async event => {
    event.preventDefault();
    problem.textContent = '';
    try {
      state.session = await api('POST', '/console/session', { token: token.value });
      await start();
    } catch (error) { problem.textContent = error.message; }
  } },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'With an admin token (SIGSTAGE_ADMIN_TOKEN, or one of SIGSTAGE_ADMIN_TOKENS).'),
  h('label', {}, 'Admin token', token), problem, h('button', { type: 'submit' }, 'Sign in'));
  show(form);
  token.focus();
}

async function start() {
  const { orgs } = await api('GET', '/api/admin/orgs');
  state.orgs = orgs.map(o => o.org_id);
  if (state.session.org && !state.orgs.includes(state.session.org)) state.orgs.push(state.session.org);
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
  document.getElementById('who').textContent = `${state.session.token_id}${state.session.read_only ? ' (read-only)' : ''}`;
  route();
}

function current() {
  let parts = [];
  try { parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent); } catch (_) { /* a mangled link: start over */ }
  if (parts[0] === 'orgs' && parts[1]) return { org: parts[1], page: parts[2] || 'overview', id: parts[3] };
  return { org: state.orgs[0] || state.session.org || null, page: parts[0] === 'new-org' ? 'new-org' : 'overview' };
}
const go = (org, page, id) => { location.hash = `#/orgs/${encodeURIComponent(org)}/${page}${id ? '/' + encodeURIComponent(id) : ''}`; };

async function route() {
  if (!state.session) return signIn();
  stopTail();
  state.view += 1;
  const { org, page, id } = current();
  if (org && !state.orgs.includes(org)) state.orgs.push(org);
  const picker = document.getElementById('org-picker');
  picker.replaceChildren(...state.orgs.map(o => h('option', { value: o }, o)));
  picker.hidden = state.orgs.length === 0;
  picker.value = org || '';
  for (const link of document.querySelectorAll('nav a')) {
    link.classList.toggle('active', link.dataset.page === page);
    link.href = org ? `#/orgs/${encodeURIComponent(org)}/${link.dataset.page}` : '#/new-org';
  }
  if (!org || page === 'new-org') return newOrg();
  const pages = { overview, analytics, keys, queue, rules, tail, signal, lead, webhooks, webhook, limits, people };
  const show = view();
  show(h('p', { class: 'muted' }, 'Loading…'));
  try { await (pages[page] || overview)(org, id); } catch (error) { show(failure(error)); }
}

function newOrg() {
  const show = view();
  const org = h('input', { name: 'org', required: true, pattern: '[A-Za-z0-9_.\\-]{1,64}' });
  show(h('h1', {}, 'No organisation yet'), h('form', { class: 'card stack', onsubmit: event => {
    event.preventDefault();
    go(org.value, 'keys');
  } }, h('p', {}, 'An org exists once it has an API key. Name one, then create its first key.'),
  h('label', {}, 'Org id', org), h('button', { type: 'submit' }, 'Continue')));
}

// ---- Overview ----------------------------------------------------------------------------
async function overview(org) {
  const show = view();
  const o = await api('GET', orgPath(org, '/overview'));
  const total = o.sources.reduce((sum, s) => sum + s.signals, 0);
  const plan = o.usage.monthly_raw_signals;
  const used = o.usage.used_this_month;
  const dead = o.dead_letters;
  show(h('h1', {}, `Overview · ${org}`), h('div', { class: 'grid' },
    h('section', { class: 'card' }, h('h2', {}, 'Signals, last 24 h'), h('div', { class: 'stat', 'data-test': 'signals-24h' }, num(total)),
      table([['Source'], ['Signals', 'num'], ['Attributed', 'num']],
        o.sources.map(s => h('tr', {}, h('td', {}, s.source), h('td', { class: 'num' }, num(s.signals)), h('td', { class: 'num' }, num(s.attributed)))),
        'No signals in the last 24 hours.')),
    h('section', { class: 'card' }, h('h2', {}, 'Usage this month'),
      h('div', { class: 'stat' }, num(used), plan ? h('span', { class: 'muted' }, ` of ${num(plan)}`) : h('span', { class: 'muted' }, ' (no plan limit)')),
      plan ? bar(Math.min(100, (100 * used) / plan)) : null,
      h('h2', {}, 'Refusals, since yesterday'),
      table([['Reason'], ['Signals', 'num']], o.refusals.map(r => h('tr', {}, h('td', {}, r.name), h('td', { class: 'num' }, num(r.signals)))), 'None.')),
    h('section', { class: 'card' }, h('h2', {}, 'Dead letters, last 24 h'),
      dead.total === null ? h('p', { class: 'warn' }, `Not counted: ${dead.unavailable}`)
        : [h('div', { class: 'stat' }, num(dead.total)), table([['Reason'], ['Signals', 'num']],
          Object.entries(dead.by_reason).map(([reason, n]) => h('tr', {}, h('td', {}, reason), h('td', { class: 'num' }, num(n)))), 'None.')]),
    h('section', { class: 'card wide' }, h('h2', {}, 'Webhook health, last 24 h'),
      table([['Endpoint'], ['State'], ['Delivered', 'num'], ['Failed attempts', 'num'], ['Last']],
        o.webhooks.map(w => h('tr', {},
          h('td', {}, h('a', { href: `#/orgs/${encodeURIComponent(org)}/webhook/${encodeURIComponent(w.subscription_id)}` }, w.url)),
          h('td', {}, h('span', { class: `pill ${w.active ? 'ok' : 'bad'}` }, w.active ? 'active' : 'disabled'), w.disabled_reason ? h('div', { class: 'muted' }, w.disabled_reason) : null),
          h('td', { class: 'num' }, num(w.delivered_24h)), h('td', { class: 'num' }, num(w.failed_attempts_24h)),
          h('td', {}, w.last_status ? `${w.last_status} · ${when(w.last_attempt_ms)}` : '—'))),
        'No webhooks.'))));
}

// ---- API keys ----------------------------------------------------------------------------
const ENDPOINTS = ['signal_staging', 'collect', 'ingress', 'tracking'];
// A first request the key may make, as a user would paste it: seed 000's signal when the key
// may use that endpoint, else seed 002's activity, a Segment track, or a collect call.
function curlFor(base, key, endpoints, secret) {
  const may = endpoint => endpoints.length === 0 || endpoints.includes(endpoint);
  const json = '  -H "Content-Type: application/json" \\';
  const withSecret = secret ? [`  -H "X-API-Secret: ${secret}" \\`] : [];
  let lines;
  if (may('signal_staging')) {
    lines = [`curl -X POST "${base}/api/signal-staging/webhook/${key}" \\`, json, ...withSecret,
      `  -d '{"email": "test@example.com", "event": "test"}'`];
  } else if (may('ingress')) {
    lines = [`curl -X POST "${base}/webhooks/ingress/${key}" \\`, json, ...withSecret,
      `  -d '{"title": "Test activity", "startTime": "${new Date().toISOString()}"}'`];
  } else if (may('tracking')) {
    lines = [`curl -X POST "${base}/v1/track" -u "${key}:${secret || ''}" \\`, json,
      `  -d '{"event": "test", "userId": "test-user"}'`];
  } else {
    lines = [`curl ${secret ? `-H "X-API-Secret: ${secret}" ` : ''}"${base}/collect/page_view/${key}?url=https%3A%2F%2Fexample.com%2F"`];
  }
  return lines.join('\n');
}

async function keys(org) {
  const show = view();
  const { keys: list } = await api('GET', orgPath(org, '/keys'));
  const name = h('input', { name: 'name', placeholder: 'Production website' });
  const secret = h('input', { name: 'secret', placeholder: 'optional: sent as X-API-Secret' });
  const expires = h('input', { name: 'expires', type: 'date' });
  const boxes = ENDPOINTS.map(e => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: e, name: 'endpoint' }), e));
  const created = h('div', { id: 'created-key' });
  const form = h('form', { class: 'card stack', id: 'new-key', onsubmit: event => {
    event.preventDefault();
    act(form.querySelector('button'), async () => {
      const body = { name: name.value || null, secret: secret.value || null, endpoints: boxes.map(b => b.firstChild).filter(b => b.checked).map(b => b.value) };
      if (expires.value) body.expires_at_ms = new Date(`${expires.value}T23:59:59Z`).getTime();
      const key = await api('POST', orgPath(org, '/keys'), body);
      const curl = curlFor(state.session.public_url, key.key, body.endpoints, body.secret);
      created.replaceChildren(h('div', { class: 'card once' },
        h('h2', {}, 'Your new key: copy it now, it is not shown again'),
        h('pre', { 'data-test': 'new-key' }, key.key),
        body.secret ? h('p', {}, 'Secret: ', h('code', { 'data-test': 'new-secret' }, body.secret)) : null,
        h('p', {}, 'Try it:'), h('pre', { 'data-test': 'curl' }, curl),
        h('button', { class: 'secondary', type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(curl).then(() => toast('Copied')) }, 'Copy curl')));
      await refresh();
    });
  } },
  h('h2', {}, 'Create a key'), h('div', { class: 'row' }, h('label', {}, 'Name', name), h('label', {}, 'Secret', secret), h('label', {}, 'Expires (UTC)', expires)),
  h('div', {}, h('span', { class: 'muted' }, 'Endpoint types (none ticked: all) '), h('div', { class: 'row' }, boxes)),
  h('div', {}, h('button', { type: 'submit' }, 'Create key')));
  const listing = h('section', { class: 'card', id: 'key-list' });
  const draw = rows => listing.replaceChildren(h('h2', {}, 'Keys'), table([['Name'], ['Key'], ['Endpoints'], ['State'], ['Created'], ['Expires'], ['']],
    rows.map(k => h('tr', { 'data-key-id': k.key_id },
      h('td', {}, k.name || h('span', { class: 'muted' }, '—')), h('td', { class: 'mono' }, `${k.prefix}…`, k.has_secret ? h('div', { class: 'muted' }, 'with secret') : null,
        k.signing_provider ? h('div', { class: 'muted', 'data-test': 'signed-by' }, `only signed ${k.signing_provider} webhooks`) : null),
      h('td', {}, k.endpoints.length ? k.endpoints.join(', ') : 'all'),
      h('td', {}, h('span', { class: `pill ${k.active ? 'ok' : 'bad'}` }, k.active ? 'active' : 'revoked')),
      h('td', {}, when(k.created_at_ms)), h('td', {}, k.expires_at_ms ? when(k.expires_at_ms) : 'never'),
      h('td', {}, k.active ? h('button', { class: 'danger', 'data-test': 'revoke', onclick: event => act(event.target, async () => {
        if (!confirm(`Revoke ${k.name || k.prefix}? Senders using it are refused at once.`)) return;
        await api('DELETE', orgPath(org, `/keys/${encodeURIComponent(k.key_id)}`));
        toast('Key revoked');
        await refresh();
      }) }, 'Revoke') : null))), 'No keys yet.'));
  const refresh = async () => draw((await api('GET', orgPath(org, '/keys'))).keys);
  draw(list);
  show(h('h1', {}, `API keys · ${org}`), form, created, listing);
}

// ---- Signal Queue ------------------------------------------------------------------------
// A rule's conditions and mappings, guessed from a sample's structure (seed 001): the event's
// own properties must exist, emails and traits map to the lead.
// The server reads the group's sample (schemas::suggest), as `sigstage rules suggest` does.
async function suggestRule(org, group) {
  try {
    return await api('POST', orgPath(org, '/rules/suggest'), { source: group.source, event: group.event || '' });
  } catch (error) {
    toast(`No fields pre-filled: ${error.message}`);
    return { name: `${group.event || 'Any event'} from ${group.source}`, source: group.source, event: group.event || null, conditions: [], map: {} };
  }
}

async function queue(org) {
  const show = view();
  const { groups } = await api('GET', orgPath(org, '/queue'));
  show(h('h1', {}, `Signal Queue · ${org}`),
    h('p', { class: 'muted' }, 'Signals no rule of yours mapped, by source and event. Create a rule from a group to map it.'),
    h('section', { class: 'card' }, table([['Source'], ['Event'], ['Signals', 'num'], ['First seen'], ['Last seen'], ['Sample'], ['']],
      groups.map(g => h('tr', { 'data-event': g.event, 'data-source': g.source },
        h('td', {}, g.source), h('td', {}, g.event || h('span', { class: 'muted' }, '(none)')), h('td', { class: 'num' }, num(g.signals)),
        h('td', {}, when(g.first_seen_ms)), h('td', {}, when(g.last_seen_ms)),
        h('td', {}, h('details', {}, h('summary', {}, 'payload'), h('pre', {}, pretty(g.sample)))),
        h('td', {}, h('button', { 'data-test': 'create-rule', onclick: event => act(event.target, async () => { sessionStorage.setItem('draft', JSON.stringify(await suggestRule(org, g))); go(org, 'rules', 'new'); }) }, 'Create rule')))),
      'The queue is empty: every signal matched a rule.')));
}
function pretty(text) { try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; } }

// ---- Rules -------------------------------------------------------------------------------
const OPS = ['exists', 'equals', 'contains', 'prefix', 'regex', 'in'];
const FIELDS = ['email', 'name', 'company', 'title'];
async function rules(org, id) {
  const show = view();
  const { rules: list } = await api('GET', orgPath(org, '/rules'));
  const editing = id === 'new' ? JSON.parse(sessionStorage.getItem('draft') || 'null') || { name: '', conditions: [], map: {} }
    : list.find(r => r.id === id);
  sessionStorage.removeItem('draft');
  const editor = editing ? ruleEditor(org, editing, id === 'new' ? null : id) : null;
  const order = list.map(r => r.id);
  const move = (index, by) => async event => act(event.target, async () => {
    const next = order.slice();
    [next[index], next[index + by]] = [next[index + by], next[index]];
    await api('PUT', orgPath(org, '/rules/order'), { rule_ids: next });
    toast('Order saved');
    route();
  });
  show(h('h1', {}, `Rules · ${org}`), editor,
    h('section', { class: 'card', id: 'rule-list' }, h('div', { class: 'row' }, h('h2', {}, 'Rules, in the order they apply'),
      h('button', { class: 'secondary', onclick: () => go(org, 'rules', 'new') }, 'New rule')),
    table([['#'], ['Name'], ['Source / event'], ['Conditions'], ['Maps'], ['']],
      list.map((r, i) => h('tr', { 'data-rule-id': r.id },
        h('td', {}, i + 1), h('td', {}, r.name), h('td', {}, `${r.source || 'any'} / ${r.event || 'any'}`),
        h('td', { class: 'mono' }, (r.conditions || []).map(c => h('div', {}, `${c.path} ${c.op} ${c.value !== undefined ? JSON.stringify(c.value) : c.values ? JSON.stringify(c.values) : ''}`))),
        h('td', { class: 'mono' }, Object.entries(r.map || {}).map(([f, p]) => h('div', {}, `${f} ← ${p}`))),
        h('td', {}, h('div', { class: 'row' },
          i > 0 ? h('button', { class: 'secondary', title: 'Earlier', onclick: move(i, -1) }, '↑') : null,
          i < list.length - 1 ? h('button', { class: 'secondary', title: 'Later', onclick: move(i, 1) }, '↓') : null,
          h('button', { class: 'secondary', onclick: () => go(org, 'rules', r.id) }, 'Edit'),
          h('button', { class: 'danger', onclick: event => act(event.target, async () => {
            if (!confirm(`Delete rule ${r.name}?`)) return;
            await api('DELETE', orgPath(org, `/rules/${encodeURIComponent(r.id)}`));
            toast('Rule deleted');
            route();
          }) }, 'Delete'))))),
    'No rules yet: create one from the Signal Queue.')));
}

function ruleEditor(org, rule, id) {
  const name = h('input', { name: 'rule-name', value: rule.name, required: true });
  const source = h('input', { name: 'rule-source', value: rule.source || '', placeholder: 'any' });
  const event = h('input', { name: 'rule-event', value: rule.event || '', placeholder: 'any' });
  const conditions = h('div', { class: 'stack', id: 'conditions' });
  const mappings = h('div', { class: 'stack', id: 'mappings' });
  const addCondition = c => {
    const op = h('select', { name: 'op' }, OPS.map(o => h('option', { value: o }, o)));
    op.value = c.op || 'exists';
    const shown = c.values !== undefined ? c.values.join(', ') : c.value !== undefined ? String(c.value) : '';
    const line = h('div', { class: 'row condition' }, h('label', {}, 'Path', h('input', { name: 'path', value: c.path || '' })),
      h('label', {}, 'Test', op), h('label', {}, 'Value', h('input', { name: 'value', value: shown, placeholder: 'in: a, b, c' })),
      h('button', { type: 'button', class: 'danger', onclick: () => line.remove() }, '×'));
    conditions.append(line);
  };
  const addMapping = (field, path) => {
    const to = h('input', { name: 'field', value: field || '', list: 'lead-fields', placeholder: 'email, name, company, title, custom.x' });
    const line = h('div', { class: 'row mapping' }, h('label', {}, 'Lead field', to), h('label', {}, 'From path', h('input', { name: 'from', value: path || '' })),
      h('button', { type: 'button', class: 'danger', onclick: () => line.remove() }, '×'));
    mappings.append(line);
  };
  (rule.conditions || []).forEach(addCondition);
  Object.entries(rule.map || {}).forEach(([f, p]) => addMapping(f, p));
  const scalar = text => (text === 'true' ? true : text === 'false' ? false : text !== '' && !Number.isNaN(Number(text)) ? Number(text) : text);
  const spec = () => ({
    name: name.value, source: source.value || null, event: event.value || null,
    conditions: [...conditions.querySelectorAll('.condition')].map(line => {
      const [path, op, value] = ['path', 'op', 'value'].map(n => line.querySelector(`[name=${n}]`).value);
      if (op === 'exists') return { path, op };
      if (op === 'in') return { path, op, values: value.split(',').map(v => scalar(v.trim())) };
      return { path, op, value: op === 'equals' ? scalar(value) : value };
    }),
    map: Object.fromEntries([...mappings.querySelectorAll('.mapping')].map(line => [line.querySelector('[name=field]').value, line.querySelector('[name=from]').value])),
  });
  const result = h('div', { id: 'dry-run-result' });
  const dryRun = h('button', { type: 'button', class: 'secondary', 'data-test': 'dry-run', onclick: e => act(e.target, async () => {
    const run = await api('POST', orgPath(org, '/rules/dry-run'), spec());
    result.replaceChildren(h('h2', {}, `Dry run: matches ${run.matched_groups} of ${run.samples.length} queue groups (${num(run.matched_signals)} signals)`),
      table([['Source'], ['Event'], ['Signals', 'num'], ['Result']], run.samples.map(s => h('tr', { class: s.result.matches ? 'match' : '' },
        h('td', {}, s.source), h('td', {}, s.event), h('td', { class: 'num' }, num(s.signals)),
        h('td', {}, !s.result.checked ? h('span', { class: 'muted' }, s.result.why) : s.result.matches
          ? h('div', { class: 'ok' }, 'maps ', h('code', {}, JSON.stringify(Object.assign(s.result.email ? { email: s.result.email } : {}, s.result.fields))))
          : h('span', { class: 'muted' }, 'no match')))), 'The queue is empty.'));
  }) }, 'Dry run on the queue');
  const form = h('form', { class: 'card stack', id: 'rule-editor', onsubmit: e => {
    e.preventDefault();
    act(form.querySelector('[type=submit]'), async () => {
      if (id) await api('PUT', orgPath(org, `/rules/${encodeURIComponent(id)}`), spec());
      else await api('POST', orgPath(org, '/rules'), spec());
      toast('Rule saved');
      go(org, 'rules');
    });
  } },
  h('h2', {}, id ? `Edit rule ${rule.name}` : 'New rule'),
  h('div', { class: 'row' }, h('label', {}, 'Name', name), h('label', {}, 'Source', source), h('label', {}, 'Event', event)),
  h('strong', {}, 'Conditions (all must hold)'), conditions,
  h('div', {}, h('button', { type: 'button', class: 'secondary', onclick: () => addCondition({}) }, 'Add condition')),
  h('strong', {}, 'Map to the lead'), mappings,
  h('datalist', { id: 'lead-fields' }, FIELDS.map(f => h('option', { value: f }))),
  h('div', {}, h('button', { type: 'button', class: 'secondary', onclick: () => addMapping() }, 'Add mapping')),
  h('div', { class: 'row' }, dryRun, h('button', { type: 'submit', 'data-test': 'save-rule' }, 'Save rule'),
    h('button', { type: 'button', class: 'secondary', onclick: () => go(org, 'rules') }, 'Cancel')),
  result);
  return id ? h('div', { class: 'stack' }, form, ruleHistory(org, id)) : form;
}

// A saved rule applied to the signals stored before it: a preview, then a background job whose
// progress is polled while it runs, with pause, resume and cancel.
function ruleHistory(org, id) {
  const since = h('input', { type: 'date', name: 'history-since', required: true,
    value: new Date(Date.now() - 90 * 86400000).toISOString().slice(0, 10) });
  const out = h('div', { id: 'history-result' });
  const path = rest => orgPath(org, rest);
  const showJob = job => {
    const running = job.state === 'running';
    const done = job.total ? Math.min(100, (100 * job.read) / job.total) : 100;
    const control = (label, action) => h('button', { class: 'secondary', 'data-test': `job-${action}`, onclick: e => act(e.target, async () => {
      showJob(await api('POST', path(`/rules/jobs/${encodeURIComponent(job.job_id)}/${action}`)));
      poll(job.job_id);
    }) }, label);
    out.replaceChildren(h('div', { id: 'history-job', 'data-state': job.state },
      h('p', {}, `Job ${job.job_id}: ${job.state}, ${num(job.read)} of ${num(job.total)} stored signals read, ${num(job.sent)} sent to be attributed`),
      bar(done), job.error ? h('p', { class: 'error' }, job.error) : null,
      h('div', { class: 'row' }, running ? control('Pause', 'pause') : null,
        job.state === 'paused' ? control('Resume', 'resume') : null,
        running || job.state === 'paused' ? control('Cancel', 'cancel') : null)));
  };
  const poll = async jobId => {
    const mine = state.view;
    while (mine === state.view) {
      const job = await api('GET', path(`/rules/jobs/${encodeURIComponent(jobId)}`));
      if (mine !== state.view) return;
      showJob(job);
      if (job.state !== 'running') return;
      await new Promise(resolve => setTimeout(resolve, 1000));
    }
  };
  const body = dry_run => ({ since: since.value, dry_run });
  const preview = h('button', { type: 'button', class: 'secondary', 'data-test': 'history-preview', onclick: e => act(e.target, async () => {
    const p = await api('POST', path(`/rules/${encodeURIComponent(id)}/apply`), body(true));
    out.replaceChildren(h('p', { id: 'history-preview' }, `Of ${num(p.signals)} stored signals, it matches ${num(p.matched)}: `,
      `${num(p.newly_attributed)} would be attributed, ${num(p.visitors_identified)} visitors identified, `,
      `${num(p.rehydrated)} signals rehydrated, ${num(p.new_leads)} leads new`,
      p.sample_leads.length ? ` (${p.sample_leads.join(', ')})` : '', '.'));
  }) }, 'Preview on history');
  const apply = h('button', { type: 'button', 'data-test': 'history-apply', onclick: e => act(e.target, async () => {
    if (!confirm('Apply this rule to the stored signals since ' + since.value + '?')) return;
    const job = await api('POST', path(`/rules/${encodeURIComponent(id)}/apply`), body(false));
    showJob(job);
    poll(job.job_id);
  }) }, 'Apply to history');
  return h('section', { class: 'card stack', id: 'rule-history' }, h('h2', {}, 'Apply to the signals already stored'),
    h('p', { class: 'muted' }, 'A rule maps signals from when it is saved. This sends the stored anonymous signals it would attribute back through the stream, paced, so their leads, links and rehydration are as if the rule had been there.'),
    h('div', { class: 'row' }, h('label', {}, 'Since', since), preview, apply), out);
}

// ---- Live tail ---------------------------------------------------------------------------
function stopTail() { if (state.tail) { state.tail.close(); state.tail = null; } }
async function tail(org) {
  const show = view();
  const source = h('input', { name: 'tail-source', placeholder: 'any source' });
  const event = h('input', { name: 'tail-event', placeholder: 'any event' });
  const status = h('span', { class: 'pill', id: 'tail-status' }, 'connecting');
  const list = h('div', { id: 'tail-list' });
  let paused = false;
  const pause = h('button', { type: 'button', class: 'secondary', id: 'tail-pause', onclick: () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    status.textContent = paused ? 'paused' : 'live';
    if (paused) stopTail(); else connect();
  } }, 'Pause');
  const connect = () => {
    stopTail();
    const query = new URLSearchParams();
    if (source.value) query.set('source', source.value);
    if (event.value) query.set('event', event.value);
    const stream = new EventSource(`${orgPath(org, '/tail')}?${query}`);
    state.tail = stream;
    status.textContent = 'connecting';
    stream.addEventListener('ready', () => { status.textContent = 'live'; status.className = 'pill ok'; });
    // The server ends a tail that had nothing to show for a while; reopening it is one click.
    stream.addEventListener('end', message => {
      stopTail();
      paused = true;
      pause.textContent = 'Resume';
      status.textContent = `ended: ${JSON.parse(message.data).reason}; press Resume to reopen`;
      status.className = 'pill';
    });
    stream.addEventListener('signal', message => {
      const { skipped, signal: s } = JSON.parse(message.data);
      const mapped = s.mapped ? h('span', { class: 'pill ok' }, `mapped by ${(s.rules || []).join(', ')}`) : h('span', { class: 'pill' }, 'unmapped');
      list.prepend(h('div', { class: 'signal', 'data-event': s.event, 'data-mapped': String(Boolean(s.mapped)) },
        h('strong', {}, s.event || '(no event)'), ' ', h('span', { class: 'muted' }, `${s.source} · ${s.kind} · ${when(s.received_ms)}`), ' ', mapped,
        s.email ? h('span', {}, ` · ${s.email}`) : null, ' ',
        h('a', { href: `#/orgs/${encodeURIComponent(org)}/signal/${encodeURIComponent(s.signal_id)}`, 'data-test': 'trace-link' }, 'trace'),
        skipped ? h('span', { class: 'muted' }, ` (${skipped} more not shown)`) : null,
        s.fields && Object.keys(s.fields).length ? h('div', { class: 'mono muted' }, JSON.stringify(s.fields)) : null));
      while (list.childNodes.length > 200) list.lastChild.remove();
    });
    stream.onerror = () => {
      // The browser retries a dropped stream by itself, but not one the server refused.
      const refused = stream.readyState === EventSource.CLOSED;
      status.textContent = refused ? 'stopped: the tail is unavailable (too many open, or Kafka out of reach); reload to retry' : 'reconnecting';
      status.className = 'pill bad';
    };
  };
  const filters = h('form', { class: 'card row', onsubmit: e => { e.preventDefault(); list.replaceChildren(); connect(); } },
    h('label', {}, 'Source', source), h('label', {}, 'Event', event), h('button', { type: 'submit' }, 'Filter'), pause);
  show(h('h1', {}, `Live tail · ${org} `, status), h('p', { class: 'muted' }, 'Processed signals as they arrive, sampled to 20 a second while this page is open.'),
    filters, h('section', { class: 'card' }, list)) && connect();
}

// ---- One signal's trace ------------------------------------------------------------------
// Everything sigstage did with one signal, read from where it is stored (GET …/signals/{id}).
async function signal(org, id) {
  const show = view();
  let trace;
  try {
    trace = await api('GET', orgPath(org, `/signals/${encodeURIComponent(id)}`));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    return show(h('h1', {}, `Signal ${id}`), h('p', { class: 'muted', 'data-test': 'trace-missing' },
      `${error.message}. The sink writes a signal within a second or so of the live tail showing it.`),
    h('button', { type: 'button', onclick: () => route() }, 'Look again'));
  }
  const rows = table([['Table'], ['Source · kind'], ['Event'], ['Attributed'], ['Mapped'], ['Event time'], ['Written']],
    trace.rows.map(r => h('tr', { 'data-table': r.table },
      h('td', { class: 'mono' }, r.table),
      h('td', {}, `${r.source} · ${r.kind}`), h('td', {}, r.event || '(no event)'),
      h('td', {}, r.lead_email ? [h('a', { href: leadLink(org, r.lead_email), 'data-test': 'lead-link' }, r.lead_email), ` (${r.attributed_by})`] : 'anonymous',
        r.anonymous_id ? h('div', { class: 'muted' }, `visitor ${r.anonymous_id}`) : null),
      h('td', {}, r.mapped ? h('span', { class: 'pill ok' }, `by ${r.rules.join(', ')}`) : h('span', { class: 'pill' }, 'unmapped'),
        r.mapped ? h('div', { class: 'mono muted' }, r.fields) : null),
      h('td', {}, when(r.event_ms)), h('td', {}, when(r.written_ms)))), 'No row.');
  const made = [
    ...trace.links.map(l => h('li', {}, `linked visitor ${l.anonymous_id} to lead ${l.email}`)),
    ...trace.leads_created.map(email => h('li', {}, `first signal of lead ${email}`)),
  ];
  const deliveries = table([['Event'], ['Subscription'], ['Attempt', 'num'], ['Outcome'], ['When']],
    trace.deliveries.map(d => h('tr', { 'data-outcome': d.outcome },
      h('td', { class: 'mono' }, d.event_id), h('td', {}, h('a', { href: `#/orgs/${encodeURIComponent(org)}/webhook/${encodeURIComponent(d.subscription_id)}` }, d.subscription_id)),
      h('td', { class: 'num' }, d.attempt), h('td', {}, h('span', { class: `pill ${d.outcome === 'delivered' ? 'ok' : 'bad'}` }, d.status_code || d.outcome), ' ', d.error),
      h('td', {}, when(d.attempted_ms)))), trace.events.length ? 'Not delivered yet.' : 'It caused no webhook event.');
  const origin = trace.origin
    ? `With key ${trace.origin.key_id} on ${trace.origin.endpoint}, through the ${trace.origin.lane} lane.`
    : 'Before sigstage kept where signals come in.';
  show(h('h1', {}, `Signal ${trace.signal_id} · ${org}`),
    h('section', { class: 'card', 'data-test': 'trace-origin' }, h('h2', {}, 'Came in'), h('p', {}, origin),
      h('p', { class: 'muted' }, `Dedupe: ${trace.dedupe}.`)),
    h('section', { class: 'card', 'data-test': 'trace-rows' }, h('h2', {}, 'Stored as'), rows),
    h('section', { class: 'card' }, h('h2', {}, 'Identity'), made.length ? h('ul', {}, made) : h('p', { class: 'muted' }, 'It linked no visitor and made no lead.')),
    h('section', { class: 'card' }, h('h2', {}, 'Webhook events'), h('p', { class: 'mono muted' }, trace.events.map(e => e.event_id).join(' · ')), deliveries));
}

const leadLink = (org, email) => `#/orgs/${encodeURIComponent(org)}/lead/${encodeURIComponent(email)}`;
const traceLink = (org, id) => `#/orgs/${encodeURIComponent(org)}/signal/${encodeURIComponent(id)}`;

// One lead: its traits, its visitors and its newest signals, each a link to its trace.
async function lead(org, email) {
  const show = view();
  const v = await api('GET', orgPath(org, `/leads/${encodeURIComponent(email)}`));
  const l = v.lead;
  const traits = [l.name, l.title, l.company].filter(Boolean).join(' · ') || 'no traits mapped';
  show(h('h1', {}, `Lead ${l.email} · ${org}`),
    h('section', { class: 'card', 'data-test': 'lead' }, h('p', {}, traits),
      h('p', { class: 'muted' }, 'First seen ', when(l.created_ms), ' with signal ', h('a', { href: traceLink(org, l.first_signal_id) }, l.first_signal_id))),
    h('section', { class: 'card' }, h('h2', {}, 'Visitors'), v.visitors.length
      ? h('ul', {}, v.visitors.map(x => h('li', {}, h('span', { class: 'mono' }, x.anonymous_id), ` linked ${when(x.linked_ms)}`)))
      : h('p', { class: 'muted' }, 'No visitor linked: every signal named the email.')),
    h('section', { class: 'card', 'data-test': 'lead-signals' }, h('h2', {}, `Signals (${num(v.signal_count)}, the newest ${v.signals.length} here)`),
      table([['When'], ['Source · kind'], ['Event'], ['Attributed'], ['']], v.signals.map(x => h('tr', { 'data-signal-id': x.signal_id },
        h('td', {}, when(x.event_ms)), h('td', {}, `${x.source} · ${x.kind}`), h('td', {}, x.event || '(no event)'),
        h('td', {}, x.attributed_by, x.anonymous_id ? h('div', { class: 'muted' }, `visitor ${x.anonymous_id}`) : null),
        h('td', {}, h('a', { href: traceLink(org, x.signal_id), 'data-test': 'trace-link' }, 'trace')))), 'No signal.')));
}

// ---- Webhooks ----------------------------------------------------------------------------
const EVENT_TYPES = ['signal.created', 'lead.created', 'lead.identified'];
const eventBoxes = chosen => EVENT_TYPES.map(t => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: t, name: 'event-type', checked: chosen.includes(t) }), t));
const ticked = boxes => boxes.map(b => b.firstChild).filter(b => b.checked).map(b => b.value);

async function webhooks(org) {
  const show = view();
  const { subscriptions } = await api('GET', orgPath(org, '/webhooks'));
  const url = h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://hooks.example.com/sigstage' });
  const boxes = eventBoxes(EVENT_TYPES);
  const created = h('div');
  const form = h('form', { class: 'card stack', id: 'new-webhook', onsubmit: e => {
    e.preventDefault();
    act(form.querySelector('[type=submit]'), async () => {
      const sub = await api('POST', orgPath(org, '/webhooks'), { url: url.value, events: ticked(boxes) });
      created.replaceChildren(h('div', { class: 'card once' }, h('h2', {}, 'Signing secret: copy it now, it is not shown again'),
        h('pre', { 'data-test': 'webhook-secret' }, sub.secret),
        h('a', { href: `#/orgs/${encodeURIComponent(org)}/webhook/${encodeURIComponent(sub.subscription_id)}`, 'data-test': 'webhook-link' }, 'Open its page')));
    });
  } }, h('h2', {}, 'Add an endpoint'), h('label', {}, 'URL', url), h('div', { class: 'row' }, boxes), h('div', {}, h('button', { type: 'submit' }, 'Create webhook')));
  show(h('h1', {}, `Webhooks · ${org}`), form, created, h('section', { class: 'card' }, table([['Endpoint'], ['Events'], ['State'], ['']],
    subscriptions.map(s => h('tr', {}, h('td', {}, h('a', { href: `#/orgs/${encodeURIComponent(org)}/webhook/${encodeURIComponent(s.subscription_id)}` }, s.url)),
      h('td', {}, s.event_types.join(', ')), h('td', {}, h('span', { class: `pill ${s.active ? 'ok' : 'bad'}` }, s.active ? 'active' : 'disabled')),
      h('td', {}, toggle(org, s)))), 'No webhooks yet.')));
}
function toggle(org, s) {
  return h('button', { class: 'secondary', 'data-test': 'toggle', onclick: e => act(e.target, async () => {
    await api('POST', orgPath(org, `/webhooks/${encodeURIComponent(s.subscription_id)}/${s.active ? 'disable' : 'enable'}`));
    toast(s.active ? 'Disabled' : 'Enabled');
    route();
  }) }, s.active ? 'Disable' : 'Enable');
}

async function webhook(org, id) {
  const show = view();
  const { subscriptions } = await api('GET', orgPath(org, '/webhooks'));
  const s = subscriptions.find(x => x.subscription_id === id);
  if (!s) return show(h('p', { class: 'error' }, `No webhook ${id} in ${org}.`));
  const base = orgPath(org, `/webhooks/${encodeURIComponent(id)}`);
  const url = h('input', { name: 'url', type: 'url', value: s.url, required: true });
  const boxes = eventBoxes(s.event_types);
  const since = h('input', { name: 'since', type: 'datetime-local' });
  const history = h('section', { class: 'card', id: 'deliveries' });
  const load = async () => {
    const { deliveries } = await api('GET', `${base}/deliveries`);
    history.replaceChildren(h('div', { class: 'row' }, h('h2', {}, 'Delivery history'), h('button', { class: 'secondary', id: 'refresh-deliveries', onclick: e => act(e.target, load) }, 'Refresh')),
      table([['When'], ['Event'], ['Attempt', 'num'], ['Status'], ['Duration', 'num'], ['Failures', 'num'], ['Response'], ['']],
        deliveries.map(d => h('tr', { 'data-outcome': d.outcome, 'data-event-type': d.event_type },
          h('td', {}, when(d.attempted_ms)), h('td', { class: 'mono' }, d.event_type, h('div', { class: 'muted' }, d.event_id)),
          h('td', { class: 'num' }, d.attempt), h('td', {}, h('span', { class: `pill ${d.outcome === 'delivered' ? 'ok' : 'bad'}` }, d.status_code || d.outcome), h('div', { class: 'muted' }, d.outcome)),
          h('td', { class: 'num' }, `${d.duration_ms} ms`), h('td', { class: 'num' }, d.failure_count),
          h('td', {}, h('code', {}, (d.response_body || d.error || '').slice(0, 200))),
          h('td', {}, h('button', { class: 'secondary', onclick: e => act(e.target, async () => {
            await api('POST', `${base}/resend/${encodeURIComponent(d.event_id)}`);
            toast('Queued again');
          }) }, 'Re-send')))), 'Nothing delivered yet.'));
  };
  const edit = h('form', { class: 'card stack', onsubmit: e => {
    e.preventDefault();
    act(edit.querySelector('[type=submit]'), async () => { await api('PUT', base, { url: url.value, events: ticked(boxes) }); toast('Saved'); });
  } }, h('h2', {}, 'Endpoint'), h('label', {}, 'URL', url), h('div', { class: 'row' }, boxes),
  h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save'), toggle(org, s),
    h('button', { type: 'button', class: 'secondary', 'data-test': 'send-test', onclick: e => act(e.target, async () => {
      await api('POST', `${base}/test`);
      toast('Test event queued');
    }) }, 'Send test event')));
  const recover = h('form', { class: 'card row', onsubmit: e => {
    e.preventDefault();
    act(recover.querySelector('button'), async () => {
      const { queued } = await api('POST', `${base}/recover`, { since_ms: new Date(since.value).getTime() });
      toast(`${queued} events queued again`);
    });
  } }, h('label', {}, 'Recover everything not delivered since', since), h('button', { type: 'submit' }, 'Recover'));
  show(h('h1', {}, 'Webhook ', h('span', { class: 'mono' }, id)),
    s.active ? null : h('p', { class: 'bad' }, `Disabled${s.disabled_reason ? ': ' + s.disabled_reason : ''}`), edit, recover,
    backfillCard(base), history);
  await load();
}

// History sent to a subscription through a queue of its own (live deliveries never wait behind
// it): start one, follow its progress while it runs, pause, resume or cancel it.
function backfillCard(base) {
  const since = h('input', { name: 'backfill-since', type: 'date', required: true,
    value: new Date(Date.now() - 30 * 86400000).toISOString().slice(0, 10) });
  const rate = h('input', { name: 'backfill-rate', type: 'number', min: 1, value: 100 });
  const status = h('div', { id: 'backfill-status' });
  const mine = state.view;
  const render = async () => {
    const [latest] = await api('GET', `${base}/backfills`);
    if (!latest || mine !== state.view) return latest;
    const { backfill: b, progress: p } = latest;
    const finished = p.delivered + p.failed;
    const control = (label, action) => h('button', { class: 'secondary', 'data-test': `backfill-${action}`, onclick: e => act(e.target, async () => {
      await api('POST', `${base}/backfills/${encodeURIComponent(b.backfill_id)}/${action}`);
      follow();
    }) }, label);
    status.replaceChildren(h('div', { id: 'backfill', 'data-state': b.state },
      h('p', {}, `Backfill ${b.backfill_id}: ${b.state}, ${num(p.delivered)} delivered, ${num(p.failed)} failed, ${num(p.pending)} pending of ${num(b.total)}, at ${num(b.per_second)} a second`),
      bar(b.total ? Math.min(100, (100 * finished) / b.total) : 100),
      h('div', { class: 'row' }, b.state === 'running' ? control('Pause', 'pause') : null,
        b.state === 'paused' ? control('Resume', 'resume') : null,
        ['running', 'paused'].includes(b.state) ? control('Cancel', 'cancel') : null)));
    return latest;
  };
  const follow = async () => {
    while (mine === state.view) {
      const latest = await render();
      if (!latest || latest.backfill.state !== 'running') return;
      await new Promise(resolve => setTimeout(resolve, 1000));
    }
  };
  const form = h('form', { class: 'card stack', id: 'backfill-form', onsubmit: e => {
    e.preventDefault();
    act(form.querySelector('[type=submit]'), async () => {
      const started = await api('POST', `${base}/backfill`, { since_ms: new Date(since.value).getTime(), per_second: Number(rate.value) });
      toast(`${started.total} past events queued`);
      follow();
    });
  } }, h('h2', {}, 'Send history'),
  h('p', { class: 'muted' }, 'Every stored event of its types since then that it was not delivered, also from before it existed, with the webhook-id a live delivery has. It goes through a queue of its own: live deliveries never wait behind it.'),
  h('div', { class: 'row' }, h('label', {}, 'Since', since), h('label', {}, 'Per second', rate), h('button', { type: 'submit', 'data-test': 'backfill' }, 'Backfill history')),
  status);
  follow();
  return form;
}

// ---- Limits and usage --------------------------------------------------------------------
async function limits(org) {
  const show = view();
  const [current, daily, monthly] = await Promise.all([api('GET', orgPath(org, '/limits')),
    api('GET', orgPath(org, '/usage?days=31')), api('GET', orgPath(org, '/usage?days=400&by=month'))]);
  const rate = h('input', { name: 'rps', type: 'number', min: 0, value: current.rate ? current.rate.requests_per_second : '' });
  const burst = h('input', { name: 'burst', type: 'number', min: 1, value: current.rate ? current.rate.burst : '' });
  const plan = h('input', { name: 'plan', type: 'number', min: 0, value: current.plan ? current.plan.monthly_raw_signals : '' });
  const overages = h('input', { name: 'overages', type: 'checkbox', checked: Boolean(current.plan && current.plan.allow_overages) });
  const form = h('form', { class: 'card stack', onsubmit: e => {
    e.preventDefault();
    act(form.querySelector('button'), async () => {
      const body = { allow_overages: overages.checked, monthly_raw_signals: Number(plan.value || 0) };
      if (rate.value !== '') body.requests_per_second = Number(rate.value);
      if (burst.value !== '' && rate.value !== '0') body.burst = Number(burst.value);
      await api('PUT', orgPath(org, '/limits'), body);
      toast('Limits saved');
      route();
    });
  } }, h('h2', {}, 'Limits'), h('div', { class: 'row' }, h('label', {}, 'Requests per second (0: none)', rate), h('label', {}, 'Burst', burst),
    h('label', {}, 'Raw signals a month (0: unlimited)', plan), h('label', { class: 'check' }, overages, 'Allow overages')),
  h('p', { class: 'muted' }, `Used this month: ${num(current.used_this_month)}`), h('div', {}, h('button', { type: 'submit' }, 'Save limits')));
  const usage = (rows, label) => {
    const outcomes = [...new Set(rows.map(r => r.outcome))].sort();
    const periods = [...new Set(rows.map(r => r.day))].sort().reverse();
    return table([[label], ...outcomes.map(o => [o, 'num'])], periods.map(p => h('tr', {}, h('td', {}, p.slice(0, label === 'Month' ? 7 : 10)),
      outcomes.map(o => h('td', { class: 'num' }, num((rows.find(r => r.day === p && r.outcome === o) || {}).signals || 0))))), 'No usage yet.');
  };
  show(h('h1', {}, `Limits & usage · ${org}`), form, h('div', { class: 'grid' },
    h('section', { class: 'card' }, h('h2', {}, 'Per month'), usage(monthly.usage, 'Month')),
    h('section', { class: 'card' }, h('h2', {}, 'Per day, last 31 days'), usage(daily.usage, 'Day'))));
}

// ---- people ------------------------------------------------------------------------------
// Deleting a person everywhere (control::people): their rows, links, lead and webhook events go,
// and their later signals are kept out until the suppression is lifted.
async function people(org) {
  const show = view();
  const [listed, audit] = await Promise.all([api('GET', orgPath(org, '/people/suppressions')), api('GET', orgPath(org, '/people/audit'))]);
  const who = h('input', { name: 'person', placeholder: 'jo@example.com, or a visitor id' });
  const form = h('form', { class: 'card stack', id: 'delete-person', onsubmit: e => {
    e.preventDefault();
    act(form.querySelector('button'), async () => {
      const value = who.value.trim();
      if (!value) return;
      const param = value.includes('@') ? 'email' : 'anonymous_id';
      if (!confirm(`Delete ${value} everywhere? Their signals, links, lead and webhook events are deleted, and their new signals are kept out until the suppression is lifted.`)) return;
      toast('Deleting: waiting for every stage to hold the suppression…');
      const done = await api('DELETE', orgPath(org, `/people?${param}=${encodeURIComponent(value)}`));
      toast(`Deleted ${value}: ${num(done.rows.reduce((sum, [, rows]) => sum + rows, 0))} rows`);
      await people(org);
    });
  } }, h('h2', {}, 'Delete a person'),
  h('p', { class: 'muted' }, 'Deletes their signals, identity links, lead, rollup rows and webhook events from ClickHouse and the identities topic, and keeps their later signals out. Raw topics keep their records until retention ends.'),
  h('div', { class: 'row' }, h('label', {}, 'Email or visitor id', who)), h('div', {}, h('button', { type: 'submit', class: 'danger' }, 'Delete everywhere')));
  const lift = s => h('button', { 'data-test': 'lift', onclick: event => act(event.target, async () => {
    await api('DELETE', orgPath(org, `/people/suppressions?${s.kind}=${encodeURIComponent(s.value)}`));
    toast('Suppression lifted');
    await people(org);
  }) }, 'Lift');
  const suppressed = h('section', { class: 'card', id: 'suppressions' }, h('h2', {}, 'Suppressed'),
    table([['Kind'], ['Value'], ['By'], ['Since'], ['']], listed.suppressions.map(s => h('tr', {},
      h('td', {}, s.kind), h('td', { class: 'mono' }, s.value), h('td', {}, s.actor), h('td', {}, when(s.version)), h('td', {}, lift(s)))), 'Nobody is suppressed.'));
  const log = h('section', { class: 'card', id: 'people-audit' }, h('h2', {}, 'Audit'),
    table([['When'], ['Who'], ['Action'], ['Person'], ['Rows', 'num']], audit.audit.map(a => h('tr', {},
      h('td', {}, when(a.at_ms)), h('td', {}, a.actor), h('td', {}, a.action), h('td', { class: 'mono' }, a.value), h('td', { class: 'num' }, num(a.rows)))), 'Nothing yet.'));
  show(h('h1', {}, `People · ${org}`), form, suppressed, log);
}

// ---- analytics ---------------------------------------------------------------------------
// Charts of the rollups, drawn as SVG from the library's answers (schemas/queries/), over the
// last 30 days. Every shape is an attribute, never an inline style, which the CSP refuses.
const SVG = 'http://www.w3.org/2000/svg';
const PALETTE = ['#3b6fd4', '#e08a2c', '#3a9d5d', '#c2455b', '#7a5cc7', '#2a9fb0', '#9a7b3c', '#666'];
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  el.append(...children);
  return el;
}
const lastDays = n => Array.from({ length: n }, (_, i) => new Date(Date.now() - (n - 1 - i) * 86400000).toISOString().slice(0, 10));
// A chart of `series` ([{name, values: {day: n}}]) over `days`: stacked bars, or lines.
function chart(test, days, series, kind) {
  const width = 720, height = 220, left = 40, bottom = 24, top = 8;
  const totals = days.map(d => series.reduce((sum, s) => sum + (kind === 'bars' ? s.values[d] || 0 : 0), 0));
  const peak = Math.max(1, ...(kind === 'bars' ? totals : series.flatMap(s => days.map(d => s.values[d] || 0))));
  const x = i => left + (i * (width - left)) / days.length;
  const y = n => top + (height - top - bottom) * (1 - n / peak);
  const step = (width - left) / days.length;
  const shapes = [];
  if (kind === 'bars') {
    days.forEach((d, i) => {
      let base = 0;
      series.forEach((s, k) => {
        const n = s.values[d] || 0;
        if (n) shapes.push(svg('rect', { x: x(i) + 1, y: y(base + n), width: Math.max(1, step - 2), height: y(base) - y(base + n), fill: PALETTE[k % PALETTE.length] },
          svg('title', {}, `${d} · ${s.name}: ${n}`)));
        base += n;
      });
    });
  } else {
    series.forEach((s, k) => shapes.push(svg('polyline', { fill: 'none', stroke: PALETTE[k % PALETTE.length], 'stroke-width': 2,
      points: days.map((d, i) => `${x(i) + step / 2},${y(s.values[d] || 0)}`).join(' ') })));
  }
  const axis = [svg('line', { x1: left, y1: y(0), x2: width, y2: y(0), stroke: '#999' }),
    svg('text', { x: left - 6, y: y(peak) + 4, 'text-anchor': 'end', 'font-size': 11 }, String(peak)),
    svg('text', { x: left - 6, y: y(0), 'text-anchor': 'end', 'font-size': 11 }, '0'),
    svg('text', { x: left, y: height - 6, 'font-size': 11 }, days[0]),
    svg('text', { x: width, y: height - 6, 'text-anchor': 'end', 'font-size': 11 }, days[days.length - 1])];
  const total = series.reduce((sum, s) => sum + Object.values(s.values).reduce((a, b) => a + b, 0), 0);
  return h('figure', { class: 'chart', 'data-test': test, 'data-total': total },
    svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': test }, ...axis, ...shapes),
    h('figcaption', {}, series.map((s, k) => h('span', { class: 'legend' }, h('b', { class: `swatch c${k % PALETTE.length}` }, '■'), ` ${s.name}`))));
}
async function analytics(org) {
  const show = view();
  const ask = name => api('GET', orgPath(org, `/analytics/${name}`));
  const [bySource, identification, active] = await Promise.all([ask('signals_by_source_and_day'), ask('identification_by_day'), ask('daily_active')]);
  const days = lastDays(31);
  const per = (rows, key, field) => {
    const values = {};
    for (const row of rows) if (!key || row.source === key) values[row.day] = (values[row.day] || 0) + Number(row[field]);
    return values;
  };
  const sources = [...new Set(bySource.data.map(r => r.source))].sort();
  show(h('h1', {}, `Analytics · ${org}`),
    h('p', { class: 'muted' }, 'The last 31 days, from the rollups (each signal counted once). The same questions, and more, are in schemas/queries/ and `sigstage query`.'),
    h('section', { class: 'card wide' }, h('h2', {}, 'Signals per day, by source'),
      sources.length ? chart('chart-signals', days, sources.map(source => ({ name: source, values: per(bySource.data, source, 'signals') })), 'bars')
        : h('p', { class: 'muted', 'data-test': 'chart-signals', 'data-total': 0 }, 'No signals in the last 31 days.')),
    h('section', { class: 'card wide' }, h('h2', {}, 'Identification: visitors first seen and identified, per day'),
      chart('chart-identification', days, [{ name: 'first seen', values: per(identification.data, null, 'first_seen') },
        { name: 'identified', values: per(identification.data, null, 'identified') }], 'lines')),
    h('section', { class: 'card wide' }, h('h2', {}, 'Active visitors and leads, per day'),
      chart('chart-active', days, [{ name: 'visitors', values: per(active.data, null, 'visitors') },
        { name: 'leads', values: per(active.data, null, 'leads') }], 'lines')));
}

// ---- start -------------------------------------------------------------------------------
window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', async () => {
  document.getElementById('org-picker').addEventListener('change', e => go(e.target.value, current().page === 'new-org' ? 'overview' : current().page));
  document.getElementById('sign-out').addEventListener('click', async () => {
    await api('DELETE', '/console/session').catch(() => null);
    state.session = null;
    signIn('Signed out.');
  });
  try {
    state.session = await api('GET', '/console/session');
    await start();
  } catch (_) { signIn(); }
});
