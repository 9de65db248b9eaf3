// The ledger of unacknowledged interactions: batching, cumulative acks, the rebase after a
// welcome, and what survives a reload.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger, MAX_COUNT } from '../livetally.js';
import { MemoryStorage } from './fakes.mjs';

/** The storage interface the ledger expects, over a Storage. */
function store(storage = new MemoryStorage()) {
  return {
    storage,
    getJSON: (k) => JSON.parse(storage.getItem(k) ?? 'null'),
    set: (k, v) => storage.setItem(k, v),
    remove: (k) => storage.removeItem(k),
  };
}

const KEY = 'livetally.s.launch.tab-000001';
const newLedger = (s = store()) => new Ledger(s, KEY, { now: () => 1000, newSession: () => 'session-0001' });
const rows = (l) => l.pending.map((m) => [m.seq, m.kind, m.count]);
const waiter = (name, log) => ({ resolve: () => log.push(`${name} ok`), reject: (e) => log.push(`${name} ${e.code}`) });

describe('ledger', () => {
  it('joins taps into the last unsent message of their kind, up to the largest count', () => {
    const l = newLedger();
    l.add('like', 1);
    l.add('like', 2);
    l.add('cheer', 1);
    l.add('cheer', 1);
    assert.deepEqual(rows(l), [[1, 'like', 3], [2, 'cheer', 2]]);
    l.add('cheer', MAX_COUNT);
    assert.deepEqual(rows(l), [[1, 'like', 3], [2, 'cheer', 100], [3, 'cheer', 2]]);
    // Once a message is on the wire it never changes: the next tap starts a new one.
    l.sent = 3;
    l.add('cheer', 1);
    assert.deepEqual(rows(l), [[1, 'like', 3], [2, 'cheer', 100], [3, 'cheer', 2], [4, 'cheer', 1]]);
    assert.equal(l.count(), 106);
    assert.equal(l.count('like'), 3);
    assert.deepEqual(l.unsent().map((m) => m.seq), [4]);
  });

  it('settles cumulatively: an ack covers every seq up to it, with the waiters of those', () => {
    const log = [];
    const l = newLedger();
    l.add('like', 1, waiter('a', log));
    l.sent = 1;
    l.add('like', 1, waiter('b', log));
    l.sent = 2;
    l.add('cheer', 4, waiter('c', log));
    l.sent = 3;
    const r = l.ack(2);
    assert.deepEqual(r.settled, { like: 2 });
    for (const w of r.waiters) w.resolve();
    assert.deepEqual(log, ['a ok', 'b ok']);
    assert.equal(l.acked, 2);
    assert.deepEqual(rows(l), [[3, 'cheer', 4]]);
    // An old ack (coalesced, reordered) changes nothing.
    assert.deepEqual(l.ack(1).settled, {});
    assert.equal(l.acked, 2);
  });

  it('after a welcome drops what the server counted and renumbers the rest, merged by kind', () => {
    const log = [];
    const l = newLedger();
    for (let i = 0; i < 5; i++) {
      l.add(i % 2 ? 'cheer' : 'like', 1, waiter(`t${i}`, log));
      l.sent = l.pending[l.pending.length - 1].seq;
    }
    assert.deepEqual(rows(l), [[1, 'like', 1], [2, 'cheer', 1], [3, 'like', 1], [4, 'cheer', 1], [5, 'like', 1]]);
    // The server holds seq 1 and 2; 3-5 died with the old socket.
    const r = l.rebase(2);
    assert.deepEqual(r.settled, { like: 1, cheer: 1 });
    assert.deepEqual(rows(l), [[3, 'like', 2], [4, 'cheer', 1]]);
    assert.equal(l.sent, 2, 'nothing of the new numbering is on the wire yet');
    for (const w of r.waiters) w.resolve();
    assert.deepEqual(log, ['t0 ok', 't1 ok']);
    // The waiters of the merged taps wait for the message that now carries them.
    assert.equal(l.pending[0].waiters.length, 2);
    assert.equal(l.pending[1].waiters.length, 1);
  });

  it('starts again at seq 1 when the server forgot the session, losing nothing', () => {
    const l = newLedger();
    l.add('like', 1);
    l.sent = 1;
    l.ack(1);
    l.add('like', 150);
    assert.deepEqual(rows(l), [[2, 'like', 100], [3, 'like', 50]]);
    l.rebase(0);
    assert.deepEqual(rows(l), [[1, 'like', 100], [2, 'like', 50]]);
    assert.equal(l.acked, 0);
  });

  it('is stored on every change and read back by the next page, which skips anything malformed', () => {
    const s = store();
    const l = newLedger(s);
    l.add('like', 2);
    l.add('cheer', 1);
    l.sent = 2;
    l.ack(1);
    const saved = JSON.parse(s.storage.getItem(KEY));
    assert.deepEqual(saved, { session: 'session-0001', acked: 1, pending: [[2, 'cheer', 1]], t: 1000 });
    const again = newLedger(s);
    assert.equal(again.session, 'session-0001');
    assert.equal(again.acked, 1);
    assert.equal(again.sent, 1, 'a new page has sent nothing');
    assert.deepEqual(rows(again), [[2, 'cheer', 1]]);

    s.storage.setItem(KEY, JSON.stringify({
      session: 'no', acked: -3,
      pending: [[1, 'like', 1], [1, 'like', 1], [2, 'Bad Kind', 1], [3, 'like', 0], [4, 'like', 101], 'x', [5, 'cheer', 7]],
    }));
    const repaired = newLedger(s);
    assert.equal(repaired.session, 'session-0001', 'an invalid session is replaced');
    assert.equal(repaired.acked, 0);
    assert.deepEqual(rows(repaired), [[1, 'like', 1], [5, 'cheer', 7]]);
  });

  it('is removed when the campaign ends and never written again', () => {
    const s = store();
    const l = newLedger(s);
    l.add('like', 1);
    l.clear();
    assert.equal(s.storage.getItem(KEY), null);
    l.save();
    assert.equal(s.storage.getItem(KEY), null);
  });

  it('drops one message the server refused for good, with its waiters', () => {
    const log = [];
    const l = newLedger();
    l.add('vote', 1, waiter('v', log));
    l.sent = 1;
    l.add('like', 1);
    for (const w of l.drop(1)) w.reject({ code: 'unknown_kind' });
    assert.deepEqual(log, ['v unknown_kind']);
    assert.deepEqual(rows(l), [[2, 'like', 1]]);
    assert.deepEqual(l.drop(9), []);
  });
});
