// The connection itself: a socket kept open before any session, reconnecting
// at once when asked, ping probes, and the close codes 1008 and 1009.
// Run by tests/test_js_client.py against a real Parley server.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ParleyClient } from '../src/parley-client.js';
import { client, cuttableProxy, env, mintToken, next, script } from './support.mjs';

/** The next `state` event whose state is `state`. */
async function stateOf(parley, state) {
  for (;;) {
    const detail = await next(parley, 'state');
    if (detail.state === state) return detail;
  }
}

test('connect() keeps a socket open with no session; start() binds one on it', async (t) => {
  const proxy = await cuttableProxy(t);
  const parley = client(t, { url: proxy.url });
  const frames = [];
  parley.addEventListener('frame', (event) => frames.push(event.detail));
  const opened = stateOf(parley, 'open');
  parley.connect();
  await opened;
  assert.equal(parley.session, null);

  // Dropped before any session: it comes back by itself, still without one.
  const waiting = stateOf(parley, 'reconnecting');
  proxy.cut();
  const { retryAt } = await waiting;
  assert.ok(retryAt > 0, 'the retry time is in the state event');
  await stateOf(parley, 'open');
  assert.equal(proxy.connections, 2);
  assert.deepEqual(frames, []); // no start was sent

  const session = await parley.start({ agent: 'agent_gamma' });
  assert.ok(session.session_id);
  assert.equal(proxy.connections, 2); // on the socket that was open
});

test('reconnectNow() skips the backoff', async (t) => {
  const proxy = await cuttableProxy(t);
  const parley = client(t, { url: proxy.url, backoff: { baseMs: 60_000, maxMs: 60_000 } });
  const session = await parley.start({ agent: 'agent_gamma' });
  const waiting = stateOf(parley, 'reconnecting');
  proxy.cut();
  const { retryAt, attempt } = await waiting;
  assert.ok(retryAt - Date.now() > 20_000, 'a long wait is due');
  assert.equal(attempt, 1);
  const reattached = next(parley, 'session');
  parley.reconnectNow();
  assert.equal((await reattached).session_id, session.session_id);
  assert.equal(parley.state, 'open');
});

test('a dead connection is found by a ping that gets no answer', async (t) => {
  const proxy = await cuttableProxy(t);
  const parley = client(t, { url: proxy.url, heartbeatMs: 400 });
  const session = await parley.start({ agent: 'agent_gamma' });
  proxy.freeze(); // half-open: nothing comes back, nothing closes
  const lost = stateOf(parley, 'reconnecting');
  await lost;
  proxy.thaw();
  const reattached = await next(parley, 'session');
  assert.equal(reattached.conversation_id, session.conversation_id);
});

test('in a browser, `online` and a visible tab wake a client waiting to retry', async (t) => {
  const saved = [globalThis.window, globalThis.document];
  const win = new EventTarget();
  const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  globalThis.window = win;
  globalThis.document = doc;
  t.after(() => ([globalThis.window, globalThis.document] = saved));

  const proxy = await cuttableProxy(t);
  // A heartbeat long enough that only the wake-up's probe can find the frozen socket in time.
  const parley = client(t, { url: proxy.url, heartbeatMs: 2_000, backoff: { baseMs: 60_000, maxMs: 60_000 } });
  await parley.start({ agent: 'agent_gamma' });
  for (const wake of [() => win.dispatchEvent(new Event('online')), () => doc.dispatchEvent(new Event('visibilitychange'))]) {
    const waiting = stateOf(parley, 'reconnecting');
    proxy.cut();
    await waiting;
    const reattached = next(parley, 'session');
    wake();
    await reattached;
  }
  assert.equal(proxy.connections, 3);

  // An open socket is probed instead: a frozen one is dropped and replaced.
  proxy.freeze();
  const lost = stateOf(parley, 'reconnecting');
  const woken = Date.now();
  win.dispatchEvent(new Event('online'));
  await lost;
  assert.ok(Date.now() - woken < 2_000, 'dropped by the probe, before any idle ping');
  proxy.thaw();
  parley.reconnectNow();
  await next(parley, 'session');

  // Closed for good, it listens no more.
  parley.close();
  win.dispatchEvent(new Event('online'));
  await new Promise((done) => setTimeout(done, 100));
  assert.equal(parley.state, 'closed');
  assert.equal(proxy.connections, 4);
});

test('a 1008 stops the client with an unauthorized event until reconnectNow()', async (t) => {
  let token = 'not-a-jwt';
  const parley = new ParleyClient({ url: env.wsUrl, token: () => token, backoff: { baseMs: 20, maxMs: 200 } });
  t.after(() => parley.close());
  const refused = next(parley, 'unauthorized');
  await assert.rejects(parley.start({ agent: 'agent_gamma' }), { code: 'unauthorized' });
  assert.equal((await refused).code, 1008);
  assert.equal(parley.state, 'closed');

  // Stopped, not closed: a message waits for the session, which comes once
  // the app has a good token again and says so.
  const reply = parley.send('Hello again');
  await new Promise((done) => setTimeout(done, 300)); // no retries meanwhile
  assert.equal(parley.state, 'closed');
  token = (await mintToken({ user: env.user })).token;
  await script({ chunks: ['Welcome back.'] });
  const session = next(parley, 'session');
  parley.reconnectNow();
  assert.ok((await session).session_id);
  assert.equal((await reply.done).status, 'complete');
  assert.equal(reply.text, 'Welcome back.');
});

test('disconnect() keeps the session for connect()', async (t) => {
  const parley = client(t);
  const session = await parley.start({ agent: 'agent_gamma' });
  parley.disconnect();
  assert.equal(parley.state, 'closed');
  const reattached = next(parley, 'session');
  parley.connect();
  assert.equal((await reattached).session_id, session.session_id);
});

test('a 1009 fails the message that was too large, and the client goes on', async (t) => {
  const parley = client(t);
  const session = await parley.start({ agent: 'agent_gamma' });
  const reattached = next(parley, 'session');
  const huge = parley.send('x'.repeat(70_000)); // over the server's frame limit: it closes with 1009
  await assert.rejects(huge.done, { name: 'ParleyError', code: 'too_large' });
  assert.equal((await reattached).conversation_id, session.conversation_id);

  await script({ chunks: ['Still here.'] });
  const reply = parley.send('A short one');
  assert.equal((await reply.done).status, 'complete');
  assert.equal(reply.text, 'Still here.');
});
