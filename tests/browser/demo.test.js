// Real-browser test of `recagent demo`: headless Chromium (Debian's `chromium`) driven by
// playwright-core. Starts the demo on a free port, loads the page, runs, selects an agent,
// pauses, interviews, role-plays one choice, and saves screenshots under target/browser/.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const root = path.resolve(__dirname, '..', '..');
const bin = process.env.RECAGENT_BIN || path.join(root, 'target', 'debug', 'recagent');
const shots = path.join(root, 'target', 'browser');
fs.mkdirSync(shots, { recursive: true });

function fail(msg) { throw new Error(msg); }

async function main() {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'recagent-demo-'));
  // round=100000: on an idle machine the demo data's rounds take ~40 ms, so a short run could end
  // (and Pause be disabled) before the test clicks it.
  const args = ['demo', '--port', '0', '--output-dir', out, '--roleplay-timeout', '60',
    '--set', 'active_prob=1', '--set', 'round=100000', ...(process.env.RECAGENT_DEMO_ARGS || '').split(' ').filter(Boolean)];
  const server = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('the demo printed no URL in 120 s: ' + stderr)), 120000);
    server.stdout.on('data', (d) => { buf += d; const m = buf.match(/open (http:\S+)/); if (m) { clearTimeout(t); resolve(m[1]); } });
    server.on('exit', (c) => reject(new Error(`the demo exited (${c}): ${stderr}`)));
  });
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'recagent-chromium-'));
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  try {
    const page = browser.pages()[0] || await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => /agents/.test(document.getElementById('graph-info').textContent));
    const round = () => page.evaluate(() => Number(document.getElementById('round').dataset.round));
    if (await round() !== 0) fail('the page does not start at round 0');

    // Start: the round counter and the log advance.
    // While the demo runs, the page takes a delta every few tens of milliseconds: clicks do not
    // wait for navigations (there are none), the state they cause is awaited instead.
    await page.click('#btn-start', { noWaitAfter: true });
    await page.waitForFunction(() => Number(document.getElementById('round').dataset.round) >= 2, null, { timeout: 120000 });
    const rows = await page.locator('#log .ev').count();
    if (rows < 5) fail(`the log shows ${rows} events after two rounds`);

    // Pause, then select an agent in the graph: its card shows.
    await page.click('#btn-pause', { noWaitAfter: true });
    await page.waitForFunction(() => document.getElementById('status').textContent === 'paused', null, { timeout: 120000 });
    await page.waitForTimeout(1500); // the layout settles
    const pos = await page.evaluate(() => window.demoNodePos(1));
    await page.mouse.click(pos[0], pos[1]);
    await page.waitForFunction(() => /#1\)/.test(document.getElementById('card-name').textContent));
    const card = await page.textContent('#card');
    if (!/Watched/.test(card) || !/Top memories/.test(card)) fail('the card lacks its histories');
    await page.screenshot({ path: path.join(shots, 'demo-running.png') });

    // Interview the selected agent.
    await page.click('.tabs button[data-tab="chat"]');
    await page.fill('#chat-input', 'Which movie did you like most recently?');
    await page.click('#chat-form button[type="submit"]');
    await page.waitForFunction(() => { const b = [...document.querySelectorAll('#chat-log .bubble.a')]; return b.length && !b[b.length - 1].classList.contains('wait'); }, null, { timeout: 60000 });
    const answer = await page.textContent('#chat-log .bubble.a:last-child');
    if (answer.length < 10) fail('empty interview answer: ' + answer);
    await page.screenshot({ path: path.join(shots, 'demo-interview.png') });

    // Role play agent 1: Step, then answer its decisions; the choice appears in the log.
    await page.click('.tabs button[data-tab="play"]');
    await page.click('#btn-play');
    await page.waitForFunction(() => /You play/.test(document.getElementById('play-who').textContent));
    const before = await round();
    await page.click('#btn-step');
    await page.waitForSelector('#play-pending:not([hidden])', { timeout: 60000 });
    const kind = await page.textContent('#play-kind');
    if (!/top decision/.test(kind)) fail('the first decision is not the top one: ' + kind);
    await page.screenshot({ path: path.join(shots, 'demo-roleplay.png') });
    await page.click('#play-choices button:has-text("Recommender")');
    // Later decisions of the round (a page, a rating): take the first choice each time.
    for (let i = 0; i < 10 && (await round()) === before; i++) {
      const pending = await page.waitForSelector('#play-pending:not([hidden])', { timeout: 3000 }).catch(() => null);
      if (!pending) continue;
      const btn = page.locator('#play-choices button').first();
      if (await btn.count()) await btn.click().catch(() => {});
      await page.waitForTimeout(300);
    }
    await page.waitForFunction((b) => Number(document.getElementById('round').dataset.round) > b, before, { timeout: 60000 });
    await page.fill('#filter-agent', '1');
    await page.selectOption('#filter-action', 'RECOMMENDER');
    const mine = await page.locator('#log .ev').allTextContents();
    if (!mine.some((t) => t.startsWith('r' + (before + 1)))) fail('the role-played choice is not in the log: ' + mine.slice(0, 3).join(' | '));
    await page.selectOption('#filter-action', '');
    await page.fill('#filter-agent', '');
    await page.click('.tabs button[data-tab="card"]');
    await page.screenshot({ path: path.join(shots, 'demo-after-roleplay.png') });
    if (errors.length) fail('page errors: ' + errors.join('; '));
    console.log(`browser test passed: rounds ${await round()}, screenshots in ${shots}`);
  } catch (e) {
    const p = browser.pages()[0];
    if (p) await p.screenshot({ path: path.join(shots, 'demo-failure.png') }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
    server.kill('SIGKILL');
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error('browser test failed:', e.message); process.exit(1); });
