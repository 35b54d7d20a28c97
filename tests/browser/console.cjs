// A person's path through the console, in Debian's Chromium driven by playwright-core
// (installed by scripts/browser.sh), against a `sigstage run` the Rust test started
// (tests/it/console_browser.rs). Exits non-zero, saying which step failed, when anything on the
// path is not as a user would expect. A screenshot of each page lands in $SHOTS.
//
// Environment: CONSOLE (http://admin-listener), TOKEN (full admin token), SCOPED_TOKEN (a token
// for ORG only), ORG (new, empty), OTHER_ORG and OTHER_KEY_ID (a key of another org), SHOTS,
// PLAYWRIGHT (the playwright-core module's path).
'use strict';

const http = require('http');
const { execFileSync } = require('child_process');
const { chromium } = require(process.env.PLAYWRIGHT);

const { CONSOLE, TOKEN, SCOPED_TOKEN, ORG, OTHER_ORG, OTHER_KEY_ID, SHOTS } = process.env;
const started = Date.now();
const step = text => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}\n`);
function check(condition, message) { if (!condition) throw new Error(message); }

// The local endpoint the webhook delivers to; it records every request.
function receiver() {
  const received = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', chunk => { body += chunk; });
    request.on('end', () => { received.push({ headers: request.headers, body }); response.end('thanks'); });
  });
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve({ server, received, url: `http://127.0.0.1:${server.address().port}/hooks` })));
}

// Runs the curl the page shows, through a shell as a user pasting it would; answers its output
// and the HTTP status (curl's -w, appended).
function runCurl(curl, payload) {
  const command = payload ? curl.replace(/-d '.*'$/s, `-d '${payload}'`) : curl;
  const output = execFileSync('sh', ['-c', `${command.replace(/^curl /, 'curl -s -w "\\n%{http_code}" ')}`], { encoding: 'utf8' });
  const lines = output.trimEnd().split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

async function until(what, probe, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, 250));
  }
}

async function main() {
  const hooks = await receiver();
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on('dialog', dialog => dialog.accept());
  const consoleErrors = [];
  page.on('pageerror', error => consoleErrors.push(String(error)));
  const shot = async name => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  const visit = async (name, wait) => {
    await page.goto(`${CONSOLE}/console#/orgs/${ORG}/${name}`);
    await page.waitForSelector(wait);
  };
  const api = (method, path, { csrf = true, body } = {}) => page.evaluate(async ([method, path, csrf, body]) => {
    const headers = { 'Content-Type': 'application/json' };
    if (csrf) headers['X-CSRF-Token'] = (await (await fetch('/console/session')).json()).csrf;
    const response = await fetch(path, { method, headers, body });
    return { status: response.status, body: await response.json().catch(() => null) };
  }, [method, path, csrf, body]);

  step('sign in: a wrong token is refused, the right one opens the console');
  await page.goto(`${CONSOLE}/console`);
  await page.fill('#token', 'not-the-admin-token-at-all');
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('[data-test=sign-in-error]:has-text("not an admin token")');
  await shot('01-sign-in-refused');
  await page.fill('#token', TOKEN);
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('nav:not([hidden])');
  const cookies = await context.cookies();
  const session = cookies.find(c => c.name === 'sigstage_console');
  check(session && session.httpOnly && session.sameSite === 'Strict', `session cookie HttpOnly, SameSite=Strict: ${JSON.stringify(session)}`);
  check(await page.evaluate(() => document.cookie) === '', 'the page script cannot read the session cookie');

  step('create a key with a name');
  await visit('keys', '#new-key');
  await page.fill('#new-key [name=name]', 'Website');
  await page.click('#new-key button[type=submit]');
  const curl = await (await page.waitForSelector('[data-test=curl]')).textContent();
  const key = (await page.textContent('[data-test=new-key]')).trim();
  check(curl.includes(key), 'the curl carries the new key');
  await page.waitForSelector(`#key-list td:has-text("Website")`);
  await shot('02-keys-created');
  const listed = await page.textContent('#key-list');
  check(!listed.includes(key), 'the listing never shows the key itself');

  step('watch the live tail, send the curl the page shows, see the signal arrive');
  await visit('tail', '#tail-status');
  await page.waitForSelector('#tail-status:has-text("live")');
  const first = runCurl(curl);
  check(first.status === 202 && first.body.includes('Signal received'), `curl answered ${first.status} ${first.body}`);
  await page.waitForSelector('#tail-list .signal[data-event="test"]', { timeout: 30000 });
  await shot('03-live-tail');
  const edge = curl.match(/"(http:\/\/[^/"]+)\//)[1];
  const metrics = await (await fetch(`${edge}/metrics`)).text();
  check(/^sigstage_admin_tails_open 1$/m.test(metrics), 'an operator sees the open tail in /metrics');

  step('see the event in the Signal Queue, create a rule from it, pre-filled');
  await until('the event in the Signal Queue', async () => {
    await visit('queue', 'h1');
    return page.$('tr[data-event="test"] [data-test=create-rule]');
  });
  await shot('04-signal-queue');
  await page.click('tr[data-event="test"] [data-test=create-rule]');
  await page.waitForSelector('#rule-editor');
  check(await page.inputValue('[name=rule-event]') === 'test', 'the event is pre-filled');
  check(await page.inputValue('#mappings [name=from]') === 'email', 'the email mapping is pre-filled from the sample');
  await page.click('[data-test=dry-run]');
  await page.waitForSelector('#dry-run-result:has-text("matches 1 of")');
  check((await page.textContent('#dry-run-result')).includes('test@example.com'), 'the dry run shows the email it would map');
  await shot('05-rule-dry-run');
  await page.click('[data-test=save-rule]');
  await page.waitForSelector('#rule-list tr[data-rule-id]');
  await shot('06-rules');

  step('send another signal and see it mapped');
  await visit('tail', '#tail-status');
  await page.waitForSelector('#tail-status:has-text("live")');
  // The stream reloads rules every SIGSTAGE_CONTROL_REFRESH_MS: send until one comes back mapped.
  let n = 0;
  await until('a mapped signal in the live tail', async () => {
    n += 1;
    const sent = runCurl(curl, `{"email": "test@example.com", "event": "test", "attempt": ${n}}`);
    check(sent.status === 202, `curl answered ${sent.status} ${sent.body}`);
    return page.waitForSelector('#tail-list .signal[data-mapped="true"]', { timeout: 2000 }).catch(() => null);
  });
  await shot('07-live-tail-mapped');

  step("open the mapped signal's trace from the tail: stored hot under its lead, and by which rule");
  const link = '#tail-list .signal[data-mapped="true"] [data-test=trace-link]';
  const id = decodeURIComponent((await page.getAttribute(link, 'href')).split('/').pop());
  await page.click(link);
  // The tail shows a signal as the stream processes it; the sink writes it a moment later.
  await until('the signal stored, in its trace', async () => {
    const row = await page.waitForSelector('[data-test=trace-rows] tr[data-table="signals_hot"]', { timeout: 2000 }).catch(() => null);
    if (!row) await page.reload();
    return row;
  });
  const traced = await page.textContent('[data-test=trace-rows]');
  check(traced.includes('test@example.com') && traced.includes('by '), `the trace shows the lead and the rule: ${traced}`);
  check((await page.textContent('h1')).includes(`Signal ${id}`), `the trace names signal ${id}, all 64 bits of it`);
  check((await page.textContent('[data-test=trace-origin]')).includes('through the live lane'), 'the trace says where the signal came in');
  await shot('07b-signal-trace');

  step("from the trace to its lead's view, and back to a signal's trace from there");
  await page.click('[data-test=trace-rows] [data-test=lead-link]');
  await page.waitForSelector('[data-test=lead-signals] tr[data-signal-id]');
  check((await page.textContent('h1')).includes('test@example.com'), 'the lead view names the lead');
  await shot('07c-lead-view');
  await page.click(`[data-test=lead-signals] tr[data-signal-id="${id}"] [data-test=trace-link]`);
  await page.waitForSelector('[data-test=trace-rows] tr[data-table="signals_hot"]');
  check((await page.textContent('h1')).includes(`Signal ${id}`), 'the lead view links to the signal it was traced from');

  step('apply the rule to the signals stored before it: preview, then a job run to its end');
  await visit('rules', '#rule-list');
  await page.click('#rule-list tr[data-rule-id] button:has-text("Edit")');
  await page.waitForSelector('#rule-history');
  await page.fill('[name=history-since]', '2000-01-01');
  await page.click('[data-test=history-preview]');
  await page.waitForSelector('#history-preview');
  check((await page.textContent('#history-preview')).includes('stored signals'), 'the preview counts the stored signals');
  await page.click('[data-test=history-apply]');
  await page.waitForSelector('#history-job[data-state="done"]', { timeout: 30000 });
  check(/of [\d,]+ stored signals read/.test(await page.textContent('#history-job')), 'the job shows its progress');
  await shot('07d-rule-applied');

  step('create a webhook to a local receiver, send a test event, see it in the history');
  await visit('webhooks', '#new-webhook');
  await page.fill('#new-webhook [name=url]', hooks.url);
  await page.click('#new-webhook button[type=submit]');
  await page.waitForSelector('[data-test=webhook-secret]');
  await shot('08-webhook-created');
  await page.click('[data-test=webhook-link]');
  await page.waitForSelector('[data-test=send-test]');
  await page.click('[data-test=send-test]');
  await until('a delivered attempt in the history', async () => {
    await page.click('#refresh-deliveries');
    return page.waitForSelector('#deliveries tr[data-outcome="delivered"][data-event-type="webhook.test"]', { timeout: 1000 }).catch(() => null);
  });
  const delivered = hooks.received.find(r => r.body.includes('"webhook.test"'));
  check(delivered && delivered.headers['webhook-signature'], `the receiver got a signed test event: ${JSON.stringify(hooks.received.map(r => r.headers))}`);
  await shot('09-webhook-history');

  step('send the new webhook the history from before it existed, and follow it to the end');
  await page.fill('[name=backfill-since]', '2000-01-01');
  await page.click('[data-test=backfill]');
  await page.waitForSelector('#backfill[data-state="done"]', { timeout: 30000 });
  check(hooks.received.some(r => r.body.includes('"lead.created"')), 'the lead made before the webhook existed was sent to it');
  check(/[1-9][\d,]* delivered/.test(await page.textContent('#backfill')), 'the backfill shows what it delivered');
  await shot('09b-webhook-backfill');

  step('limits and usage, then the overview with usage against the plan');
  await visit('limits', 'form button[type=submit]');
  await page.fill('[name=plan]', '1000');
  await page.click('form button[type=submit]');
  await page.waitForSelector('#toast:has-text("Limits saved")');
  await until('the saved plan shown', async () => (await page.inputValue('[name=plan]')) === '1000');
  await shot('12-limits-usage');
  step('the Analytics page charts the signals sent, per day and source, from the rollups');
  await visit('analytics', '[data-test=chart-signals]');
  await until('the chart counts the signals sent', async () => {
    await page.reload();
    await page.waitForSelector('[data-test=chart-signals]');
    return Number(await page.getAttribute('[data-test=chart-signals]', 'data-total')) >= 2;
  });
  check(await page.$$eval('[data-test=chart-signals] rect', bars => bars.length) >= 1, 'the signals chart has a bar');
  await page.waitForSelector('[data-test=chart-identification] polyline', { state: 'attached' });
  await shot('14-analytics');
  await visit('overview', '[data-test=signals-24h]');
  const filled = await page.$eval('[data-test=usage-bar]', el => el.getBoundingClientRect().width);
  check(filled > 0, `the usage bar shows the plan's use (${filled}px)`);
  await shot('10-overview');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await page.waitForSelector('[data-test=signals-24h]');
  await shot('11-overview-phone');
  // Every page fits a phone's width: wide tables scroll inside their card, not the page.
  for (const [name, wait] of [['overview', '[data-test=signals-24h]'], ['analytics', '[data-test=chart-signals]'], ['keys', '#key-list'], ['queue', 'h1'],
    ['rules', '#rule-list'], ['tail', '#tail-status'], ['webhooks', '#new-webhook'], ['limits', 'form button[type=submit]']]) {
    await visit(name, wait);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `${name} fits a phone's width (overflows by ${overflow}px)`);
  }
  await page.setViewportSize({ width: 1280, height: 860 });

  step('a key for one endpoint type gets a curl for that endpoint, and it works');
  await visit('keys', '#new-key');
  for (const endpoint of ['ingress', 'tracking', 'collect']) {
    await page.fill('#new-key [name=name]', `Only ${endpoint}`);
    await page.check(`#new-key input[value=${endpoint}]`);
    await page.click('#new-key button[type=submit]');
    await page.waitForSelector(`#key-list td:text-is("Only ${endpoint}")`);
    const limited = await page.textContent('[data-test=curl]');
    const sent = runCurl(limited);
    check([200, 202].includes(sent.status), `the ${endpoint} key's curl answered ${sent.status} ${sent.body}:\n${limited}`);
    await page.uncheck(`#new-key input[value=${endpoint}]`);
  }

  step('refusals: no CSRF token, another org\'s key id');
  const noCsrf = await api('POST', `/api/admin/orgs/${ORG}/rules`, { csrf: false, body: '{"name":"x"}' });
  check(noCsrf.status === 403 && noCsrf.body.error === 'csrf_token_missing', `no CSRF: ${JSON.stringify(noCsrf)}`);
  const otherKey = await api('DELETE', `/api/admin/orgs/${ORG}/keys/${OTHER_KEY_ID}`);
  check(otherKey.status === 404 && otherKey.body.error === 'key_not_found', `another org's key: ${JSON.stringify(otherKey)}`);

  step('revoke the key and see the next send refused');
  await visit('keys', '#key-list');
  await page.click('#key-list tr:has(td:text-is("Website")) [data-test=revoke]');
  await page.waitForSelector('#key-list .pill:has-text("revoked")');
  await shot('13-key-revoked');
  const refused = await until('the revoked key refused', async () => {
    const sent = runCurl(curl, '{"email": "test@example.com", "event": "after revoke"}');
    return sent.status === 401 || sent.status === 403 ? sent : null;
  }, 15);
  check(/revoked|inactive|invalid/i.test(refused.body), `the refusal says why: ${refused.body}`);

  step('delete the person the signals named: gone from the trace, suppressed, audited; then lift it');
  await visit('people', '#delete-person');
  await page.fill('#delete-person [name=person]', 'test@example.com');
  await page.click('#delete-person button[type=submit]');
  await page.waitForSelector('#toast:has-text("Deleted test@example.com")', { timeout: 60000 });
  await page.waitForSelector('#suppressions td:text-is("test@example.com")');
  check((await page.textContent('#people-audit')).includes('delete'), 'the audit shows the deletion');
  const gone = await api('GET', `/api/admin/orgs/${ORG}/signals/${id}`);
  check(gone.status === 404, `the deleted person's signal is gone: ${JSON.stringify(gone)}`);
  await shot('15-people');
  await page.click('#suppressions [data-test=lift]');
  await page.waitForSelector('#suppressions :text("Nobody is suppressed.")');

  step('a token for one org may not open another');
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in');
  await page.fill('#token', SCOPED_TOKEN);
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('nav:not([hidden])');
  const other = await api('GET', `/api/admin/orgs/${OTHER_ORG}/keys`, { csrf: false });
  check(other.status === 403 && other.body.error === 'admin_token_other_org', `another org: ${JSON.stringify(other)}`);
  const orgs = await page.$$eval('#org-picker option', options => options.map(o => o.value));
  check(orgs.length === 1 && orgs[0] === ORG, `the scoped token sees only its org: ${orgs}`);

  check(consoleErrors.length === 0, `no script errors: ${consoleErrors.join('; ')}`);
  await browser.close();
  hooks.server.close();
  step('done');
  process.stdout.write(`${JSON.stringify({ ok: true, mapped_after_sends: n, seconds: (Date.now() - started) / 1000 })}\n`);
}

main().catch(error => {
  process.stderr.write(`FAILED: ${error.stack || error}\n`);
  process.exit(1);
});
