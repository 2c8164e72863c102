// The supervisors' web pages in a real browser: Debian's chromium driven by
// playwright-core (no browser download). Run by tests/tests/web_pages.rs
// against `server serve --demo`:
//
//   node pages.mjs --base http://127.0.0.1:PORT --out DIR
//
// Saves a screenshot of each page to DIR and prints one JSON line at the
// end with what the Rust test checks against the API.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { join } from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const base = args.base;
const out = args.out;
if (!base || !out) throw new Error('usage: node pages.mjs --base URL --out DIR');
mkdirSync(out, { recursive: true });

const step = (what) => console.error(`step: ${what}`);
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// --- a minimal XLSX reader: a zip's central directory, inflate, sheet XML ---
function unzip(buf) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  check(eocd >= 0, 'xlsx: end of central directory');
  const entries = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const files = {};
  for (let n = 0; n < entries; n++) {
    check(buf.readUInt32LE(p) === 0x02014b50, 'xlsx: central directory entry');
    const method = buf.readUInt16LE(p + 10);
    const size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    const dataAt = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(dataAt, dataAt + size);
    files[name] = method === 8 ? inflateRawSync(raw) : raw;
    p += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}
const unxml = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'")
  .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d))).replace(/&amp;/g, '&');
function readSheet(path, sheet = 1) {
  const files = unzip(readFileSync(path));
  const shared = [];
  const ss = files['xl/sharedStrings.xml']?.toString('utf8') ?? '';
  for (const si of ss.matchAll(/<si>([\s\S]*?)<\/si>/g)) {
    shared.push(unxml([...si[1].matchAll(/<t[^>]*>([\s\S]*?)<\/t>/g)].map((m) => m[1]).join('')));
  }
  const xml = files[`xl/worksheets/sheet${sheet}.xml`]?.toString('utf8');
  check(xml, `xlsx: sheet${sheet}.xml`);
  const rows = [];
  for (const row of xml.matchAll(/<row[^>]*>([\s\S]*?)<\/row>/g)) {
    const cells = [];
    for (const c of row[1].matchAll(/<c r="([A-Z]+)\d+"([^>]*?)(?:\/>|>([\s\S]*?)<\/c>)/g)) {
      const col = [...c[1]].reduce((n, ch) => n * 26 + ch.charCodeAt(0) - 64, 0) - 1;
      const type = /t="(\w+)"/.exec(c[2])?.[1];
      const inner = c[3] ?? '';
      let value = '';
      if (type === 's') value = shared[Number(/<v>([^<]*)<\/v>/.exec(inner)?.[1])] ?? '';
      else if (type === 'inlineStr') value = unxml([...inner.matchAll(/<t[^>]*>([\s\S]*?)<\/t>/g)].map((m) => m[1]).join(''));
      else value = unxml(/<v>([^<]*)<\/v>/.exec(inner)?.[1] ?? '');
      cells[col] = value;
    }
    rows.push(Array.from(cells, (v) => v ?? ''));
  }
  return rows;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = {};
try {
  // ----- the town supervisor, on a 1366×768 laptop -----
  const sup = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true, locale: 'zh-CN' });
  const page = await sup.newPage();
  page.setDefaultTimeout(20000);
  const shot = (name) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });

  step('login page');
  let response = await page.goto(`${base}/`);
  check(page.url().includes('/login'), `/ sends a stranger to the login page (${page.url()})`);
  check(response.status() === 200, 'login page 200');
  await shot('01-login');
  await page.fill('input[name=username]', 'sup-town1');
  await page.fill('input[name=password]', 'wrong-password');
  await page.click('button[type=submit]');
  check((await page.textContent('.alert')).includes('用户名或密码错误'), 'a wrong password is refused in Chinese');
  await shot('02-login-wrong-password');
  await page.fill('input[name=username]', 'sup-town1');
  await page.fill('input[name=password]', 'demo-pass');
  await Promise.all([page.waitForURL('**/ledger'), page.click('button[type=submit]')]);
  const cookies = await sup.cookies();
  const session = cookies.find((c) => c.name === 'vd_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie HttpOnly, SameSite=Strict');

  step('ledger');
  check((await page.textContent('h1')).includes('民情台账'), 'ledger heading');
  const allRows = await page.locator('table.ledger tbody tr').count();
  check(allRows > 0, 'the ledger has rows');
  await shot('03-ledger');

  step('filter overdue');
  await page.check('input[name=overdue]');
  await Promise.all([page.waitForURL(/overdue=true/), page.click('form.filters button[type=submit]')]);
  const overdueRows = page.locator('table.ledger tbody tr');
  const overdueCount = await overdueRows.count();
  check(overdueCount > 0, 'some petitions are overdue in the demo');
  check(await page.locator('table.ledger tbody tr:not(.overdue)').count() === 0, 'every row of the overdue filter is highlighted');
  result.overdue_total_before = Number(await page.textContent('.count strong'));
  await shot('04-ledger-overdue');

  step('open a petition');
  const link = overdueRows.first().locator('td.matter a');
  await Promise.all([page.waitForURL(/\/petitions\//), link.click()]);
  const url = new URL(page.url());
  result.petition_id = decodeURIComponent(url.pathname.split('/')[2]);
  result.document_id = url.searchParams.get('document_id');
  check((await page.textContent('h1')).includes('诉求事项'), 'petition heading');
  check(await page.locator('section.detail.overdue').count() === 1, 'the petition page shows it overdue');
  check(await page.locator('table.history tbody tr').count() >= 1, 'history has rows');
  const historyHead = await page.textContent('table.history thead');
  check(historyHead.includes('操作人') && historyHead.includes('设备'), 'history shows who and which device');
  result.applicant = (await page.textContent('section.detail dd')).trim();
  await shot('05-petition');

  step('extend the deadline');
  const future = new Date(Date.now() + 45 * 86400e3 + 8 * 3600e3).toISOString().slice(0, 10);
  result.deadline = future;
  await page.fill('form[action$="/deadline"] input[name=deadline]', future);
  await Promise.all([page.waitForURL(/done=deadline/), page.click('form[action$="/deadline"] button')]);
  check((await page.textContent('.notice')).includes('办结时限已更新'), 'deadline confirmation');
  check((await page.textContent('dd.deadline')).includes(future), 'the new deadline is shown');
  check(await page.locator('section.detail.overdue').count() === 0, 'no longer overdue');

  step('add a 督办 note');
  const note = `请于${future}前办结并反馈群众（浏览器测试 ${Date.now()}）`;
  result.note = note;
  await page.fill('form[action$="/supervise"] textarea[name=note]', note);
  await Promise.all([page.waitForURL(/done=supervise/), page.click('form[action$="/supervise"] button')]);
  check((await page.textContent('.notice')).includes('督办意见已记录'), 'supervision confirmation');
  const history = await page.textContent('table.history');
  check(history.includes(note) && history.includes('督办') && history.includes('sup-town1'), 'the note is in the history, by sup-town1');
  await shot('06-petition-after-actions');

  step('the ledger shows the change');
  await page.goto(`${base}/ledger?q=${encodeURIComponent(result.applicant)}`);
  const row = page.locator(`table.ledger tbody tr:has(a[href*="${result.petition_id}"])`);
  check(await row.count() === 1, 'the petition is in the ledger searched by applicant');
  const rowText = await row.textContent();
  check(rowText.includes(future), 'the ledger row shows the new deadline');
  check(!(await row.getAttribute('class') ?? '').includes('overdue'), 'the ledger row is no longer highlighted');
  await page.goto(`${base}/ledger?overdue=true`);
  result.overdue_total_after = Number(await page.textContent('.count strong'));
  check(result.overdue_total_after === result.overdue_total_before - 1, 'one overdue petition fewer');
  check(await page.locator(`a[href*="${result.petition_id}"]`).count() === 0, 'not in the overdue filter any more');
  await shot('07-ledger-after');

  step('statistics');
  await page.goto(`${base}/stats`);
  check((await page.textContent('h1')).includes('走访统计'), 'stats heading');
  check(await page.locator('figure.chart svg').count() >= 3, 'three server-drawn charts');
  check(await page.locator('figure.chart svg rect').count() > 3, 'charts have bars');
  const statsText = await page.textContent('main');
  for (const word of ['单位排名', '干部排名', '零战果', '反馈率', '满意率', '按分类']) check(statsText.includes(word), `stats shows ${word}`);
  await shot('08-stats');

  step('the three lists');
  await page.goto(`${base}/lists`);
  const listsText = await page.textContent('main');
  for (const word of ['问题清单', '任务清单', '效果清单', '分类汇总']) check(listsText.includes(word), `lists show ${word}`);
  await shot('09-lists');

  step('devices');
  await page.goto(`${base}/devices`);
  check((await page.textContent('h1')).includes('设备同步情况'), 'devices heading');
  check(await page.locator('table.devices tbody tr').count() >= 6, 'a row per cadre of the town');
  check(await page.locator('table.devices tbody tr:not(.stale)').count() >= 1, "a phone that synced today is not flagged (the test's cadre01 phone-1)");
  check(await page.locator('table.devices tbody tr.stale').count() >= 1, 'cadres whose phones never synced stand out');
  await shot('10-devices');
  const [devicesXlsx] = await Promise.all([page.waitForEvent('download'), page.click('a.button:has-text("导出 Excel")')]);
  await devicesXlsx.saveAs(join(out, 'devices.xlsx'));
  const deviceRows = readSheet(join(out, 'devices.xlsx'));
  check(deviceRows[0].includes('最近同步'), 'devices xlsx header');
  check(deviceRows.length - 1 === await page.locator('table.devices tbody tr').count(), 'devices xlsx has the table rows');

  step('download the ledger as XLSX');
  await page.goto(`${base}/ledger`);
  result.ledger_total = Number(await page.textContent('.count strong'));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a.button:has-text("导出 Excel")')]);
  const xlsx = join(out, 'ledger.xlsx');
  await download.saveAs(xlsx);
  const rows = readSheet(xlsx);
  const header = rows[0];
  for (const col of ['序号', '单位', '登记人', '诉求人', '联系电话', '诉求事项', '办结时限', '办理情况']) check(header.includes(col), `xlsx header has ${col}`);
  check(rows.length - 1 === result.ledger_total, `xlsx has ${result.ledger_total} rows (has ${rows.length - 1})`);
  const phone = header.indexOf('联系电话');
  // Whole only where the supervisor is the responsible person (personal.rs).
  const responsibleCol = header.indexOf('责任人');
  const others = rows.slice(1).filter((r) => r[phone] && r[responsibleCol] !== 'sup-town1');
  check(others.length > 0 && others.every((r) => /^\d{3}\*{4}\d{4}$/.test(r[phone])), 'phones in the export are masked for a supervisor');
  const deadlineCol = header.indexOf('办结时限');
  const applicantCol = header.indexOf('诉求人');
  check(rows.some((r) => r[applicantCol] === result.applicant && r[deadlineCol] === future), 'the export has the new deadline');
  result.xlsx_rows = rows.length - 1;
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('a.button:has-text("导出 CSV")')]);
  check((await csv.suggestedFilename()).endsWith('.csv'), 'CSV download');

  step('tablet');
  const tablet = await sup.newPage();
  await tablet.setViewportSize({ width: 768, height: 1024 });
  await tablet.goto(`${base}/ledger`);
  await tablet.screenshot({ path: join(out, '11-ledger-tablet.png') });
  await tablet.goto(`${base}/petitions/${encodeURIComponent(result.petition_id)}?document_id=${result.document_id}`);
  await tablet.screenshot({ path: join(out, '12-petition-tablet.png'), fullPage: true });

  step('logout');
  await Promise.all([page.waitForURL('**/login'), page.click('header .who button')]);
  response = await page.goto(`${base}/ledger`);
  check(page.url().includes('/login'), 'after logout the ledger asks for a login');

  // ----- a cadre of the other town -----
  step('a cadre of town 2');
  const cadre = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN' });
  const cp = await cadre.newPage();
  cp.setDefaultTimeout(20000);
  await cp.goto(`${base}/login`);
  await cp.fill('input[name=username]', 'cadre07');
  await cp.fill('input[name=password]', 'demo-pass');
  await Promise.all([cp.waitForURL('**/ledger'), cp.click('button[type=submit]')]);
  const owners = await cp.locator('table.ledger tbody tr td:nth-child(3)').allTextContents();
  check(owners.length > 0 && new Set(owners).size === 1, `a cadre sees their own items only (${[...new Set(owners)]})`);
  check(await cp.locator('select[name=cadre]').count() === 0, 'a cadre gets no cadre filter');
  await cp.screenshot({ path: join(out, '13-cadre-ledger.png'), fullPage: true });
  response = await cp.goto(`${base}/petitions/${encodeURIComponent(result.petition_id)}?document_id=${result.document_id}`);
  check(response.status() === 404, `another town's petition is 404 for the cadre (${response.status()})`);
  check((await cp.textContent('h1')).includes('未找到'), 'a Chinese not-found page');
  check(!(await cp.textContent('body')).includes(result.note), 'nothing of the petition shows');
  await cp.screenshot({ path: join(out, '14-cadre-other-town-petition.png'), fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
