// Sign-ups in the browser: the registration-field editor of /ops's create form, the export
// buttons (CSV and JSON, as downloaded files), and the viewer page's form for the declared
// fields (checked before sending, the server's 400 shown next to its field).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  api, createCampaign, newPage, openDashboard, startNodeAndBrowser, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

describe('sign-ups', { timeout: 120_000 }, () => {
  let node;
  let browser;

  before(async () => ({ node, browser } = await startNodeAndBrowser()));

  after(() => stopNodeAndBrowser(node, browser));

  it('declares sign-up fields in the create form', async () => {
    const page = await newPage(browser, { allow: [/status of 400/] });
    await openDashboard(page, node);
    await page.fill('#f-id', 'drive-ops');
    await page.fill('#f-title', 'Drive');
    await page.click('#rf-add');
    await page.click('#rf-add');
    const rows = page.locator('#rf-rows li');
    assert.equal(await rows.count(), 2);
    await rows.nth(0).locator('[name="rf-name"]').fill('phone');
    await rows.nth(0).locator('[name="rf-max"]').fill('32');
    await rows.nth(0).locator('[name="rf-required"]').check();
    // A bad name comes back from the server, named.
    await rows.nth(1).locator('[name="rf-name"]').fill('Bad Name');
    await page.click('#create button[type="submit"]');
    await page.waitForSelector('#create-error:not([hidden])');
    assert.match(await page.textContent('#create-error'), /field name "Bad Name"/);
    await rows.nth(1).locator('[name="rf-name"]').fill('city');
    await page.click('#create button[type="submit"]');
    await page.waitForSelector('.campaign-item[data-id="drive-ops"]');
    const c = await api(node, '/api/v1/campaigns/drive-ops', { token: null });
    assert.deepEqual(c.body.registration_fields, [
      { name: 'phone', max: 32, required: true },
      { name: 'city', max: 256, required: false },
    ]);
    // The form is emptied for the next campaign; at most eight rows.
    assert.equal(await page.locator('#rf-rows li').count(), 0);
    for (let i = 0; i < 8; i++) await page.click('#rf-add');
    assert.equal(await page.isDisabled('#rf-add'), true);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('signs a viewer up with the declared fields and exports them', async () => {
    await createCampaign(node, {
      id: 'drive-view', title: 'Drive',
      registration_fields: [{ name: 'phone', max: 8, required: true }, { name: 'city' }],
    });
    const page = await newPage(browser, { allow: [/status of 400/] });
    await page.goto(`${node.base}/c/drive-view`);
    await page.waitForSelector('#signup-f-phone');
    assert.equal(await page.textContent('label[for="signup-f-city"]'), 'city (optional)');
    // Required, checked before anything is sent.
    await page.click('#signup');
    await page.waitForSelector('#signup-f-phone-error:not([hidden])');
    assert.equal(await page.getAttribute('#signup-f-phone', 'aria-invalid'), 'true');
    assert.equal((await api(node, '/api/v1/campaigns/drive-view/stats', { token: null })).body.registrations, 0);
    await page.fill('#signup-f-phone', '=1+2');
    await page.fill('#signup-f-city', 'Paris, FR');
    await page.click('#signup');
    await waitAttr(page, '#signup-result', 'data-status', 'new');
    assert.equal(await page.isHidden('#signup-f-phone-error'), true);
    assert.deepEqual(page.errors, []);
    await page.context().close();

    // The dashboard exports it as files: CSV (formula defused) and JSON.
    const ops = await newPage(browser, { acceptDownloads: true });
    await openDashboard(ops, node, 'drive-view');
    const csv = await download(ops, '#export-csv');
    assert.equal(csv.name, 'drive-view-registrations.csv');
    const lines = csv.text.split('\r\n');
    assert.equal(lines[0], 'viewer,registered_at,phone,city');
    // An id starting with `-` (1 in 64 of the SDK's) reads `'-…`: the `'` is the export's.
    assert.match(lines[1], /^(?:'-|[A-Za-z0-9_])[A-Za-z0-9_-]{7,63},\d{13},'=1\+2,"Paris, FR"$/);
    const json = await download(ops, '#export-json');
    const rows = JSON.parse(json.text);
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0].fields, { phone: '=1+2', city: 'Paris, FR' });
    assert.equal(await ops.textContent('#panel-result'), 'Sign-ups downloaded.');
    assert.deepEqual(ops.errors, []);
    await ops.context().close();
  });

  it('shows the server\'s refusal next to its field', async () => {
    await createCampaign(node, { id: 'drive-long', title: 'Drive', registration_fields: [{ name: 'code', max: 3 }] });
    const page = await newPage(browser, { allow: [/status of 400/] });
    // A page that believes the field longer than it is (a stale copy of the campaign) lets
    // the value through; the server's 400 names the field and lands next to it.
    await page.route('**/api/v1/campaigns/drive-long', async (route) => {
      const response = await route.fetch();
      const c = await response.json();
      c.registration_fields[0].max = 10;
      await route.fulfill({ response, json: c });
    });
    await page.goto(`${node.base}/c/drive-long`);
    await page.waitForSelector('#signup-f-code');
    await page.fill('#signup-f-code', 'abcdef');
    await page.click('#signup');
    await page.waitForSelector('#signup-f-code-error:not([hidden])');
    assert.equal(await page.textContent('#signup-f-code-error'), 'code must be at most 3 characters');
    assert.equal(await page.getAttribute('#signup-result', 'data-status'), '');
    assert.equal((await api(node, '/api/v1/campaigns/drive-long/stats', { token: null })).body.registrations, 0);
    await page.context().close();
  });
});

async function download(page, button) {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return { name: d.suggestedFilename(), text: await readFile(await d.path(), 'utf8') };
}
