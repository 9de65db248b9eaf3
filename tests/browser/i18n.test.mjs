// English and Simplified Chinese: the language follows the browser, can be switched, and
// the choice is remembered.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCampaign, launchBrowser, newPage, openDashboard, startNode, stopNodeAndBrowser, waitAttr,
} from './helpers.mjs';

describe('languages', { timeout: 90_000 }, () => {
  let node;
  let browser;

  before(async () => {
    node = await startNode();
    await createCampaign(node, { id: 'gala', title: '春节联欢晚会' });
    browser = await launchBrowser();
  });

  after(() => stopNodeAndBrowser(node, browser));

  it('a zh-CN browser gets Chinese labels on the viewer page', async () => {
    const page = await newPage(browser, { locale: 'zh-CN', viewport: { width: 360, height: 740 } });
    await page.goto(`${node.base}/c/gala`);
    await waitAttr(page, '#app', 'data-state', 'live');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal(await page.inputValue('#lang'), 'zh-CN');
    assert.equal(await page.textContent('#conn-text'), '直播中');
    assert.equal(await page.textContent('#count-label'), '人正在观看');
    assert.deepEqual(
      await page.$$eval('#reaction-buttons .reaction-label', (l) => l.map((x) => x.textContent)),
      ['点赞', '喝彩', '评论'],
    );
    assert.equal(await page.textContent('#share-button [data-i18n="share"]'), '分享');
    assert.equal(await page.textContent('#signup'), '立即报名');
    assert.equal(await page.getAttribute('#stream', 'aria-label'), '直播画面');

    // Switch to English: the page changes at once and remembers it after a reload.
    await page.selectOption('#lang', 'en');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(await page.textContent('#count-label'), 'watching now');
    assert.equal(await page.textContent('#reaction-buttons [data-kind="like"] .reaction-label'), 'Like');
    assert.equal(await page.textContent('#conn-text'), 'Live');
    await page.reload();
    await waitAttr(page, '#app', 'data-state', 'live');
    assert.equal(await page.textContent('#count-label'), 'watching now');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('an English browser gets English, and the dashboard speaks Chinese when chosen', async () => {
    const page = await newPage(browser, { locale: 'en-GB' });
    await page.goto(`${node.base}/c/gala`);
    await waitAttr(page, '#app', 'data-state', 'live');
    assert.equal(await page.textContent('#reaction-buttons [data-kind="cheer"] .reaction-label'), 'Cheer');

    const ops = await newPage(browser, { locale: 'zh-CN' });
    await ops.goto(`${node.base}/ops`);
    assert.equal(await ops.textContent('#signin-title'), '运营登录');
    await openDashboard(ops, node, 'gala');
    assert.equal(await ops.textContent('#live-state-text'), '实时');
    assert.equal(await ops.textContent('[data-i18n="m_viewers"]'), '当前观众');
    assert.equal(await ops.textContent('#kinds [data-kind="like"] .bar-label'), '点赞');
    assert.equal(await ops.textContent('#c-title'), '春节联欢晚会');
    await ops.selectOption('#lang', 'en');
    assert.equal(await ops.textContent('[data-i18n="m_viewers"]'), 'Viewers now');
    assert.equal(await ops.textContent('#kinds [data-kind="like"] .bar-label'), 'Like');
    assert.deepEqual(page.errors, []);
    assert.deepEqual(ops.errors, []);
  });
});
