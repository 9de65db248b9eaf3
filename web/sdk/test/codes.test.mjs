// The API's error codes as a LivetallyError reports them: the table generated from the
// server's (src/protocol/api.rs) names `ended` `campaign_ended`, the code `interact()`
// rejects with when the campaign ends, and passes every other code through.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../livetally.js';
import { origin, tab } from './fakes.mjs';

const BASE = 'https://live.example.com';
const LIVE = { status: 200, body: { id: 'launch', state: 'live', access: 'public' } };

/** A client whose registration is answered with `answer`. */
async function registering(answer) {
  const o = origin({
    routes: {
      'GET /api/v1/campaigns/launch': LIVE,
      'POST /api/v1/campaigns/launch/registrations': answer,
    },
  });
  const c = connect({ base: BASE, campaign: 'launch', env: tab(o) });
  await c.ready;
  return c;
}

describe('API error codes', () => {
  it('reports 410 ended as campaign_ended, with or without the body', async () => {
    const ended = { error: { code: 'ended', message: 'campaign has ended' } };
    let c = await registering({ status: 410, body: ended });
    await assert.rejects(c.register(), { code: 'campaign_ended', status: 410, message: 'campaign has ended' });
    c = await registering({ status: 410, body: 'Gone' });
    await assert.rejects(c.register(), { code: 'campaign_ended', status: 410 });
  });

  it('passes the other codes through, and names a bodyless answer by its status', async () => {
    const invalid = { error: { code: 'invalid', message: 'viewer must match', field: 'viewer' } };
    let c = await registering({ status: 400, body: invalid });
    await assert.rejects(c.register(), { code: 'invalid', status: 400, field: 'viewer' });
    c = await registering({ status: 502, body: 'Bad Gateway' });
    await assert.rejects(c.register(), { code: '502', status: 502 });
  });
});
