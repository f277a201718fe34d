// The client against a real Parley server (run by tests/test_js_client.py).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import { ParleyClient, ParleyError, Reply } from '../src/parley-client.js';
import {
  client,
  cuttableProxy,
  env,
  held,
  mintToken,
  next,
  release,
  script,
  storedMessages,
  upstreamRequests,
} from './support.mjs';

const seqs = (frames) => frames.filter((f) => 'seq' in f).map((f) => f.seq);
const oneToN = (n) => Array.from({ length: n }, (_, i) => i + 1);

async function framesOf(reply) {
  const frames = [];
  for await (const frame of reply) frames.push(frame);
  return frames;
}

function lastAssistant(messages) {
  return messages.filter((m) => m.role === 'assistant').at(-1);
}

test('a reply streams to done, and its text is the stored message', async (t) => {
  await script({ chunks: ['Restart', ' the', ' router', ', then', ' wait.'] });
  const parley = client(t);
  const states = [];
  parley.addEventListener('state', (event) => states.push(event.detail.state));
  const deltas = [];
  parley.addEventListener('delta', (event) => deltas.push(event.detail));

  const session = await parley.start({ agent: 'agent_gamma' });
  assert.equal(session.type, 'session');
  assert.equal(session.agent.id, 'agent_gamma');
  const reply = parley.send('My wifi keeps dropping');
  assert.ok(reply instanceof Reply);
  const frames = await framesOf(reply);
  const done = await reply.done;

  assert.equal(done.type, 'done');
  assert.equal(done.status, 'complete');
  assert.equal(reply.text, 'Restart the router, then wait.');
  assert.equal(frames[0].type, 'accepted');
  assert.equal(frames.at(-1), done);
  assert.deepEqual(seqs(frames), oneToN(frames.length - 2));
  assert.ok(frames.slice(1, -1).every((f) => f.type === 'delta' && f.reply_id === reply.replyId));
  assert.deepEqual(deltas, frames.slice(1, -1)); // the client's events carry the same frames
  assert.equal(reply.clientId.length, 36); // a UUID by default
  assert.deepEqual(states, ['connecting', 'open']);

  const stored = lastAssistant(await storedMessages(session.conversation_id));
  assert.equal(stored.content, reply.text);
  assert.equal(stored.id, reply.messageId);
  assert.equal(stored.status, 'complete');
});

test('the same client_id again gives the same reply and calls no model', async (t) => {
  await script({ chunks: ['Only', ' once.'] });
  const first = client(t);
  const session = await first.start({ agent: 'agent_gamma' });
  const clientId = randomUUID();
  const reply = first.send('Hello', { clientId });
  await reply.done;
  const calls = await upstreamRequests();

  // Sent again after the reply ended: the same ids, and the text replayed.
  const resent = first.send('Hello', { clientId });
  assert.equal((await resent.done).message_id, reply.messageId);
  assert.deepEqual([resent.replyId, resent.text], [reply.replyId, 'Only once.']);
  // Another client (a reloaded page) gets the same ids and the whole text again.
  const second = client(t);
  await second.start({ conversation_id: session.conversation_id });
  const again = second.send('Hello', { clientId });
  const done = await again.done;
  assert.equal(again.replyId, reply.replyId);
  assert.equal(again.messageId, reply.messageId);
  assert.equal(again.text, 'Only once.');
  assert.equal(done.status, 'complete');
  assert.equal(await upstreamRequests(), calls);
  const messages = await storedMessages(session.conversation_id);
  assert.deepEqual(messages.map((m) => m.role), ['user', 'assistant']);
});

test('after a dropped connection the client re-attaches and resumes the reply by seq', async (t) => {
  await script({ chunks: ['Alpha. '], hold: true, after_release: ['Bravo. ', 'Charlie.'] });
  const proxy = await cuttableProxy(t);
  const parley = client(t, { url: proxy.url });
  const states = [];
  parley.addEventListener('state', (event) => states.push(event.detail.state));
  const session = await parley.start({ agent: 'agent_gamma' });
  const reply = parley.send('Tell me the alphabet');
  const frames = [];
  reply.addEventListener('frame', (event) => frames.push(event.detail));
  await next(reply, 'delta');
  await held();

  const reattached = next(parley, 'session');
  proxy.cut(); // a network failure mid-reply
  const again = await reattached;
  assert.equal(again.session_id, session.session_id);
  assert.deepEqual(again.active_reply, { reply_id: reply.replyId, last_seq: 1 });
  await release();
  const done = await reply.done;

  assert.equal(done.status, 'complete');
  assert.equal(reply.text, 'Alpha. Bravo. Charlie.');
  assert.deepEqual(seqs(frames), oneToN(seqs(frames).length)); // none twice, none missing
  assert.equal(proxy.connections, 2);
  assert.ok(states.includes('reconnecting'));
  assert.equal(parley.state, 'open');
  const stored = lastAssistant(await storedMessages(session.conversation_id));
  assert.equal(stored.content, reply.text);
});

test('a message whose accepted was lost is sent again with its client_id, once', async (t) => {
  await script({ chunks: ['Sent', ' once.'] });
  const proxy = await cuttableProxy(t);
  const parley = client(t, { url: proxy.url });
  const session = await parley.start({ agent: 'agent_gamma' });
  const calls = await upstreamRequests();

  proxy.cutAfterNextSend(); // the server gets the message; its `accepted` never arrives
  const reply = parley.send('Are you there?');
  const done = await reply.done;

  assert.equal(done.status, 'complete');
  assert.equal(reply.text, 'Sent once.');
  assert.equal(proxy.connections, 2);
  assert.equal(await upstreamRequests(), calls + 1);
  const messages = await storedMessages(session.conversation_id);
  assert.deepEqual(messages.map((m) => [m.role, m.content]), [
    ['user', 'Are you there?'],
    ['assistant', 'Sent once.'],
  ]);
});

test('cancel ends the reply as cancelled, its partial text stored', async (t) => {
  await script({ chunks: ['Step one: open the settings. '], hold: true });
  const parley = client(t);
  const session = await parley.start({ agent: 'agent_gamma' });
  const reply = parley.send('How do I reset it?');
  await next(reply, 'delta');
  await held();
  // Sent again while it runs: the same Reply, nothing new.
  assert.equal(parley.send('How do I reset it?', { clientId: reply.clientId }), reply);
  parley.cancel(reply.replyId);
  const done = await reply.done;

  assert.equal(done.status, 'cancelled');
  assert.equal(reply.text, 'Step one: open the settings. ');
  const stored = lastAssistant(await storedMessages(session.conversation_id));
  assert.deepEqual([stored.content, stored.status], [reply.text, 'cancelled']);
});

test('a tool call that awaits confirmation runs once confirmed', async (t) => {
  const subject = `From the JS client ${randomUUID().slice(0, 6)}`;
  const args = JSON.stringify({ subject, description: 'Opened by the client test.' });
  await script({ tool_calls: [['create_ticket', args]] }, { chunks: ['Your ticket is open.'] });
  const parley = client(t);
  await parley.start({ agent: 'agent_tools' });
  const reply = parley.send('Open a ticket please');
  reply.addEventListener('tool_call', (event) => {
    const call = event.detail;
    if (call.status === 'awaiting_confirmation') parley.confirm(reply.replyId, call.call_id, true);
  });
  const frames = await framesOf(reply);
  await reply.done;

  const tools = frames.filter((f) => f.type === 'tool_call' || f.type === 'tool_result');
  assert.deepEqual(
    tools.map((f) => [f.type, f.tool, f.status]),
    [
      ['tool_call', 'create_ticket', 'awaiting_confirmation'],
      ['tool_call', 'create_ticket', 'running'],
      ['tool_result', 'create_ticket', 'ok'],
    ],
  );
  assert.equal(tools[0].arguments.subject, subject);
  assert.equal(reply.text, 'Your ticket is open.');
  assert.deepEqual(seqs(frames), oneToN(seqs(frames).length));
});

test('refusals are ParleyErrors: start, message, and a bad token', async (t) => {
  const parley = client(t);
  await assert.rejects(parley.start({ agent: 'agent_nobody' }), (error) => {
    assert.ok(error instanceof ParleyError);
    assert.equal(error.code, 'unknown_agent');
    assert.equal(error.frame.type, 'error');
    return true;
  });

  await parley.start({ agent: 'agent_gamma' });
  const tooLong = parley.send('x'.repeat(20_000));
  await assert.rejects(tooLong.done, { name: 'ParleyError', code: 'too_large' });
  await assert.rejects(framesOf(tooLong), { code: 'too_large' });

  await script({ chunks: ['Busy. '], hold: true });
  const first = parley.send('first');
  await next(first, 'delta');
  await assert.rejects(parley.send('second').done, { code: 'busy' });
  await release();
  await first.done;

  const stranger = client(t, { token: 'not-a-jwt' });
  await assert.rejects(stranger.start({ agent: 'agent_gamma' }), { code: 'unauthorized' });
  assert.equal(stranger.state, 'closed');
});

test('a reply the upstream breaks off has an error frame and a failed done', async (t) => {
  await script({ chunks: ['Partial ', 'answer ', 'never ', 'finished'], break_after: 2 });
  const parley = client(t);
  const session = await parley.start({ agent: 'agent_gamma' });
  const errors = [];
  parley.addEventListener('error', (event) => errors.push(event.detail));
  const reply = parley.send('hello');
  const done = await reply.done;

  assert.equal(done.status, 'failed');
  assert.deepEqual(errors.map((e) => [e.code, e.reply_id]), [['upstream_unavailable', reply.replyId]]);
  assert.ok(reply.text.startsWith('Partial'));
  // What streamed before the break is kept (how much of it did depends on the
  // vendor's reset racing its last chunk, which is not the client's business).
  const stored = lastAssistant(await storedMessages(session.conversation_id));
  assert.deepEqual([stored.content, stored.status], [reply.text, 'failed']);
});

test('a token function is asked again for each connection', async (t) => {
  const proxy = await cuttableProxy(t);
  let asked = 0;
  const parley = new ParleyClient({
    url: () => proxy.url,
    token: async () => {
      asked += 1;
      return (await mintToken({ user: env.user })).token;
    },
    backoff: { baseMs: 20, maxMs: 200 },
  });
  t.after(() => parley.close());
  const session = await parley.start({ agent: 'agent_gamma' });
  const reattached = next(parley, 'session');
  proxy.cut();
  assert.equal((await reattached).conversation_id, session.conversation_id);
  assert.equal(asked, 2);
});
