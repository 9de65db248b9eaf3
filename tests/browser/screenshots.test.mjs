// Screenshots of every page at phone (360×740) and desktop (1280×800) widths, with live
// data on them, saved to tests/artifacts/ for a person to look at. Also checks that nothing
// overflows sideways at 360 px.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  artifact, createCampaign, launchBrowser, newPage, openDashboard, startNode, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

const PHONE = { width: 360, height: 740 };
const DESKTOP = { width: 1280, height: 800 };

async function noSidewaysScroll(page) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client, `page is ${scroll}px wide in a ${client}px viewport`);
}

describe('screenshots', { timeout: 120_000 }, () => {
  let node;
  let browser;
  const extras = [];

  before(async () => {
    node = await startNode();
    await createCampaign(node, {
      id: 'launch-2026', title: 'Aurora X launch ceremony', regions: ['CN-BJ', 'CN-SH', 'US'],
    });
    await createCampaign(node, { id: 'spring-fest', title: 'Spring festival online', access: 'token' });
    browser = await launchBrowser();
    // A small crowd so the pages show real numbers.
    for (const region of ['CN-BJ', 'CN-BJ', 'CN-SH', 'US', 'DE']) {
      const p = await newPage(browser);
      await p.goto(`${node.base}/c/launch-2026?region=${region}`);
      await waitAttr(p, '#app', 'data-state', 'live');
      extras.push(p);
    }
    await extras[0].evaluate(() => {
      for (let i = 0; i < 12; i++) document.querySelector('[data-kind="like"]').click();
      document.querySelector('[data-kind="cheer"]').click();
    });
    await extras[1].click('[data-kind="like"]');
    await extras[2].click('#signup');
    await extras[3].goto(`${node.base}/s/launch-2026?via=wechat`);
    await extras[4].goto(`${node.base}/s/launch-2026?via=x`);
    await waitAttr(extras[0], '#app', 'data-pending', '0');
  });

  after(() => stopNodeAndBrowser(node, browser));

  it('viewer page and dashboard in dark mode', async () => {
    const page = await newPage(browser, { viewport: PHONE, colorScheme: 'dark', isMobile: true, hasTouch: true });
    await page.goto(`${node.base}/c/launch-2026`);
    await waitAttr(page, '#app', 'data-state', 'live');
    await waitAttr(page, '[data-kind="like"]', 'data-count', '13');
    await page.screenshot({ path: artifact('viewer-phone-dark.png'), fullPage: true });
    const ops = await newPage(browser, { viewport: DESKTOP, colorScheme: 'dark' });
    await openDashboard(ops, node, 'launch-2026');
    await waitAttr(ops, '#kinds [data-kind="like"]', 'data-value', '13');
    await ops.screenshot({ path: artifact('ops-desktop-dark.png') });
    assert.deepEqual([...page.errors, ...ops.errors], []);
    await page.context().close();
    await ops.context().close();
  });

  for (const [name, viewport] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    it(`viewer page, ${name}`, async () => {
      const page = await newPage(browser, { viewport, isMobile: name === 'phone', hasTouch: name === 'phone' });
      await page.goto(`${node.base}/c/launch-2026?region=CN-SH`);
      await waitAttr(page, '#app', 'data-state', 'live');
      await waitAttr(page, '#viewer-count', 'data-count', '6');
      await waitAttr(page, '[data-kind="like"]', 'data-count', '13');
      await page.click('[data-kind="cheer"]');
      await waitAttr(page, '#app', 'data-pending', '0');
      await noSidewaysScroll(page);
      await page.screenshot({ path: artifact(`viewer-${name}.png`), fullPage: true });
      assert.deepEqual(page.errors, []);
      await page.context().close();
    });

    it(`viewer page in Chinese, ended, ${name}`, async () => {
      const page = await newPage(browser, { viewport, locale: 'zh-CN' });
      await page.goto(`${node.base}/c/spring-fest`);
      await waitAttr(page, '#app', 'data-state', 'private');
      await noSidewaysScroll(page);
      await page.screenshot({ path: artifact(`viewer-private-zh-${name}.png`), fullPage: true });
      await page.context().close();
    });

    it(`operator dashboard, ${name}`, async () => {
      const page = await newPage(browser, { viewport });
      await openDashboard(page, node, 'launch-2026');
      await waitAttr(page, '#m-viewers', 'data-value', '5');
      await waitAttr(page, '#kinds [data-kind="like"]', 'data-value', '13');
      await waitAttr(page, '#m-registrations', 'data-value', '1');
      await noSidewaysScroll(page);
      await page.screenshot({ path: artifact(`ops-${name}.png`), fullPage: true });
      await page.click('#signout');
      await page.screenshot({ path: artifact(`ops-signin-${name}.png`) });
      assert.deepEqual(page.errors, []);
      await page.context().close();
    });

    it(`landing page, ${name}`, async () => {
      const page = await newPage(browser, { viewport });
      await page.goto(`${node.base}/`);
      await noSidewaysScroll(page);
      await page.screenshot({ path: artifact(`landing-${name}.png`), fullPage: true });
      assert.deepEqual(page.errors, []);
      await page.context().close();
    });
  }
});
