// What the client's tests need around a real Parley server. tests/test_js_client.py
// runs them with the server's URLs, a token, and the URL of a control server
// that scripts the fake LLM vendor behind Parley (tests/support/fake_control.py).

import { once } from 'node:events';
import net from 'node:net';

import { ParleyClient } from '../src/parley-client.js';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through tests/test_js_client.py`);
  }
  return value;
}

export const env = {
  url: required('PARLEY_URL'),
  wsUrl: required('PARLEY_WS_URL'),
  token: required('PARLEY_TOKEN'),
  user: required('PARLEY_USER'),
  control: required('PARLEY_FAKE_CONTROL'),
};

async function control(path, body) {
  const response = await fetch(env.control + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`fake control ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Queue scripts for the fake vendor (fields of tests/support/fake_llm.py's Script). */
export const script = (...scripts) => control('/scripts', scripts);
/** Let held streams finish. */
export const release = () => control('/release', {});
/** Resolves once `count` streams hold (`hold: true` scripts). */
export const held = (count = 1) => control('/held', { count });
/** Requests the fake vendor has had in this run. */
export const upstreamRequests = async () => (await control('/requests')).count;
/** A fresh token: `{user_id, token}`. */
export const mintToken = (options = {}) => control('/token', options);

/** A client of the test server, closed when the test ends. */
export function client(t, options = {}) {
  const made = new ParleyClient({ url: env.wsUrl, token: env.token, backoff: { baseMs: 20, maxMs: 200 }, ...options });
  t.after(() => made.close());
  return made;
}

/** The next event of that type on an EventTarget: its detail. */
export async function next(target, type) {
  const [event] = await once(target, type);
  return event.detail;
}

/** The stored messages of a conversation (REST). */
export async function storedMessages(conversationId, token = env.token) {
  const response = await fetch(`${env.url}/v1/conversations/${conversationId}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new Error(`GET conversation: ${response.status}`);
  return (await response.json()).messages;
}

/**
 * A TCP proxy in front of the server whose connections the test can cut with
 * a reset, as a network failure would: the client sees an abnormal close.
 */
export async function cuttableProxy(t) {
  const target = new URL(env.url);
  const sockets = new Set();
  let accepted = 0;
  let cutAfterSending = false;
  let frozen = false;
  const server = net.createServer((downstream) => {
    accepted += 1;
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    // Frozen: what the server says is lost, as on a half-open connection.
    upstream.on('data', (chunk) => frozen || downstream.write(chunk));
    upstream.on('end', () => downstream.end());
    downstream.on('data', (chunk) => {
      upstream.write(chunk);
      if (!cutAfterSending) return;
      // The server gets what the client sent, the client never gets the answer.
      cutAfterSending = false;
      upstream.end();
      downstream.resetAndDestroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxy = {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    get connections() {
      return accepted;
    },
    cut() {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    /** Lose everything the server sends from now on, without closing anything. */
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
    },
    /** Pass the client's next data on to the server, then cut the connection. */
    cutAfterNextSend() {
      cutAfterSending = true;
    },
  };
  t.after(async () => {
    proxy.cut();
    server.close();
    await once(server, 'close');
  });
  return proxy;
}
