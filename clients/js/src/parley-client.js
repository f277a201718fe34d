// Parley's WebSocket client: one ES module with no dependencies, for browsers
// and Node >= 20. docs/protocol.md is the wire protocol; README.md beside
// this package shows the API.
//
// It is the one implementation of the protocol's client side: the chat UI,
// the widget and Node programs all use it.
//
// The client follows every reply it sees. When the socket drops it reconnects
// with backoff and jitter, re-attaches to its session (`start` with the session
// id), `resume`s each unfinished reply after the last `seq` it got, and sends
// again every message whose `accepted` it never saw (same `client_id`, so the
// server starts nothing twice). Repeated frames are dropped: numbered frames
// by `seq`, notices by rule + action, a reply's error by code, anything after
// a reply's `done`. A quiet socket is probed with `ping` and dropped when
// nothing comes back (a half-open connection never closes by itself).
//
// Close codes: 1008 (policy: bad or expired credentials, origin) stops the
// client with an `unauthorized` event, keeping its session, replies and unsent
// messages until the app signs in again and calls reconnectNow() or connect()
// (with a token function, a 1008 on a socket that had a session is retried
// at once with a fresh token instead). 1009 (a frame too large) fails the
// message last sent on that socket with `too_large` (it is not sent again),
// and the client reconnects as after any drop.

import { FAIL, NUMBERED, ParleyError, Reply, TAKE, emit, deferred } from './reply.js';

export { ParleyError, Reply };

const REPLY_FRAMES = new Set([...NUMBERED, 'notice', 'error', 'done', 'resync']);
const OPEN = 1; // WebSocket.OPEN, also for implementations without the constant
const SUBPROTOCOL = 'parley.v1';
const POLICY = 1008; // bad or expired credentials, origin
const TOO_LARGE = 1009; // a frame over the server's limit
const ENDED_KEPT = 1000; // ids of ended replies remembered to drop their late frames

function failure(code, message) {
  return new ParleyError({ type: 'error', code, message });
}

// crypto.randomUUID exists only in secure contexts (https, localhost).
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A connection to Parley's `GET /ws` that survives drops. Events (CustomEvent,
 * `detail` = the frame): one per frame type, `frame` for every frame after
 * de-duplication, `state` ({state: connecting | open | reconnecting | closed,
 * retryAt: when the next attempt is due (ms since the epoch; 0 when none is
 * waiting), attempt}) and `unauthorized` ({code, reason}: a 1008 stopped the client).
 */
export class ParleyClient extends EventTarget {
  #url;
  #token;
  #WebSocket;
  #reconnect;
  #backoff;
  #heartbeatMs;
  #connectTimeoutMs;
  #wakeOn;
  #listening = null; // the window listeners, while any
  #ws = null;
  #connecting = false;
  #state = 'closed';
  #shownRetryAt = 0;
  #closed = false; // by close(), or given up
  #stopped = false; // by disconnect() or a 1008: connect() or reconnectNow() goes on
  #attempt = 0;
  #retryTimer = null;
  #retryAt = 0;
  #connectTimer = null;
  #lastMessage = null; // client_id of the last message sent on this socket (a 1009 blames it)
  #heartbeat = null;
  #lastRx = 0;
  #pingAt = 0;
  #target = null;
  #session = null;
  #socketSession = false; // the current socket has had a `session`
  #resuming = false; // the socket dropped after a session: resume on the next one
  #starting = null; // the pending start() promise
  #pending = new Map(); // client_id -> {reply, frame}: sent, `accepted` not seen yet
  #replies = new Map(); // reply_id -> Reply, until it ends
  #ended = new Set(); // ids of replies that ended
  #outbox = []; // frames waiting for a session

  constructor({
    url,
    token,
    WebSocket = globalThis.WebSocket,
    reconnect = true,
    backoff = {},
    heartbeatMs = 20_000,
    connectTimeoutMs = 10_000,
    wakeOnWindow = true,
  } = {}) {
    super();
    if (!url) throw new TypeError('ParleyClient needs a url');
    if (!WebSocket) throw new TypeError('no WebSocket implementation (Node 20: --experimental-websocket)');
    this.#url = url;
    this.#token = token;
    this.#WebSocket = WebSocket;
    this.#reconnect = reconnect;
    this.#backoff = { baseMs: 500, maxMs: 30_000, ...backoff };
    this.#heartbeatMs = heartbeatMs;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#wakeOn = wakeOnWindow;
  }

  /** connecting, open, reconnecting or closed. */
  get state() {
    return this.#state;
  }

  /** The last `session` frame. */
  get session() {
    return this.#session;
  }

  /**
   * Open the socket and keep it open (reconnecting after drops) with no
   * session yet: start() then binds one without waiting for a handshake.
   * After disconnect() or a 1008 it goes on where the client stopped.
   */
  connect() {
    this.#wakeUp();
    if (!this.#ws && !this.#connecting && !this.#retryTimer) this.#connect();
  }

  /** Skip the backoff and connect now (also after a 1008 or disconnect()); an open socket is probed. */
  reconnectNow() {
    this.#wakeUp();
    this.#attempt = 0;
    if (this.#ws) this.#probe();
    else if (!this.#connecting) this.#connect();
  }

  /**
   * The network may have changed (browser `online`, tab visible again):
   * connect now if the client waits to retry, probe the socket if it is open.
   * Called by itself on those events when `globalThis.window` exists.
   */
  wake() {
    if (this.#closed || this.#stopped) return;
    if (this.#ws) this.#probe();
    else if (!this.#connecting) {
      this.#attempt = 0;
      this.#connect();
    }
  }

  /**
   * Close the socket but keep the session, the unfinished replies and the
   * unsent messages: connect() or reconnectNow() goes on from there.
   */
  disconnect() {
    const ws = this.#ws;
    this.#stop();
    ws?.close(1000);
  }

  /** Open a session: `{agent}`, `{conversation_id}` or `{session_id}`. Resolves with the `session` frame. */
  start(target) {
    // The same conversation again (e.g. its session expired): unsent messages wait for it.
    const named = target?.session_id ?? target?.conversation_id;
    const same = Boolean(named && this.#session
      && (named === this.#session.session_id || named === this.#session.conversation_id));
    this.#wakeUp();
    this.#target = target;
    this.#session = null;
    this.#socketSession = false; // messages wait for the new session
    if (!same) {
      this.#resuming = false;
      this.#failPending(failure('superseded', 'Another start replaced the session.'));
    }
    this.#starting?.reject(failure('superseded', 'Another start was sent.'));
    this.#starting = deferred();
    if (this.#isOpen()) this.#sendStart();
    else if (!this.#ws && !this.#connecting) this.#connect();
    return this.#starting.promise;
  }

  /** Send a message; its Reply follows it. The same clientId again gives the same reply. */
  send(text, { clientId = uuid() } = {}) {
    const known = this.#pending.get(clientId)?.reply ?? this.#live().find((r) => r.clientId === clientId);
    if (known) return known;
    const reply = new Reply({ clientId });
    if (this.#closed) {
      reply[FAIL](failure('closed', 'The client is closed.'));
      return reply;
    }
    const frame = { type: 'message', client_id: clientId, text };
    this.#pending.set(clientId, { reply, frame });
    if (this.#ready) this.#sendNow(frame);
    return reply;
  }

  /** Follow a reply the client did not start (e.g. the session's `active_reply`). */
  follow(replyId, { afterSeq = 0 } = {}) {
    const known = this.#replies.get(replyId);
    if (known) return known;
    const reply = new Reply({ replyId, afterSeq });
    this.#ended.delete(replyId);
    this.#replies.set(replyId, reply);
    this.#sendOrQueue({ type: 'resume', reply_id: replyId, after_seq: afterSeq });
    return reply;
  }

  cancel(replyId) {
    this.#sendOrQueue({ type: 'cancel', reply_id: replyId });
  }

  confirm(replyId, callId, approve) {
    const frame = { type: 'confirm', reply_id: replyId, call_id: callId, approve: Boolean(approve) };
    this.#sendOrQueue(frame);
  }

  requestHuman(reason) {
    this.#sendOrQueue(reason ? { type: 'request_human', reason } : { type: 'request_human' });
  }

  feedback(messageId, rating, comment) {
    const frame = { type: 'feedback', message_id: messageId, rating };
    this.#sendOrQueue(comment == null ? frame : { ...frame, comment });
  }

  /** Close for good: replies and unsent messages fail with `closed`. */
  close() {
    const ws = this.#ws;
    this.#shutdown(failure('closed', 'The client was closed.'));
    this.#target = null;
    this.#session = null;
    this.#resuming = false;
    ws?.close(1000);
  }

  #wakeUp() {
    this.#closed = false;
    this.#stopped = false;
    this.#listen();
  }

  // In a browser: back online, or the tab visible again, is a good moment to check.
  #listen() {
    const win = globalThis.window;
    if (!this.#wakeOn || this.#listening || typeof win?.addEventListener !== 'function') return;
    const doc = globalThis.document;
    const wake = () => this.wake();
    const visible = () => doc?.visibilityState !== 'hidden' && this.wake();
    win.addEventListener('online', wake);
    win.addEventListener('offline', wake); // probe: the socket may be dead
    doc?.addEventListener('visibilitychange', visible);
    this.#listening = () => {
      win.removeEventListener('online', wake);
      win.removeEventListener('offline', wake);
      doc?.removeEventListener('visibilitychange', visible);
    };
  }

  #unlisten() {
    this.#listening?.();
    this.#listening = null;
  }

  // -- the connection --------------------------------------------------------

  async #connect() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#retryAt = 0;
    this.#connecting = true;
    this.#setState(this.#resuming || this.#attempt ? 'reconnecting' : 'connecting');
    let ws;
    try {
      const url = typeof this.#url === 'function' ? await this.#url() : this.#url;
      const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
      ws = new this.#WebSocket(url, token ? [SUBPROTOCOL, `parley.token.${token}`] : []);
    } catch (error) {
      this.#connecting = false;
      this.#dropped({ code: 1006, reason: String(error?.message ?? error) });
      return;
    }
    this.#connecting = false;
    if (this.#closed || this.#stopped) return void ws.close(1000);
    this.#ws = ws;
    this.#socketSession = false;
    this.#lastMessage = null;
    if (this.#connectTimeoutMs) {
      this.#connectTimer = setTimeout(() => {
        if (ws !== this.#ws || this.#isOpen()) return;
        this.#dropped({ code: 4001, reason: 'connect timeout' });
        ws.close();
      }, this.#connectTimeoutMs);
      this.#connectTimer.unref?.();
    }
    ws.onopen = () => {
      if (ws !== this.#ws) return;
      clearTimeout(this.#connectTimer);
      this.#lastRx = Date.now();
      this.#pingAt = 0;
      this.#attempt = 0; // the server took the connection
      this.#startHeartbeat();
      // The session (or the target of a start() that waited) before anyone hears `open`.
      if (this.#target || this.#session) this.#sendStart();
      this.#setState('open');
    };
    ws.onmessage = (event) => this.#receive(ws, event.data);
    ws.onclose = (event) => ws === this.#ws && this.#dropped(event);
    ws.onerror = () => {}; // a close event follows
  }

  #dropped({ code, reason }) {
    const hadSession = this.#socketSession;
    this.#ws = null;
    this.#socketSession = false;
    clearTimeout(this.#connectTimer);
    this.#stopHeartbeat();
    if (this.#session) this.#resuming = true;
    if (this.#closed || this.#stopped) return;
    if (code === TOO_LARGE) this.#tooLarge(reason);
    // A token that expired on a working socket is retried at once when the
    // token is a function that can give a fresh one; any other 1008 stops.
    if (code === POLICY && !(hadSession && typeof this.#token === 'function')) {
      const error = failure('unauthorized', reason || 'The server refused the connection (1008).');
      this.#stop();
      this.#starting?.reject(error);
      this.#starting = null;
      emit(this, 'unauthorized', { code, reason });
      return;
    }
    if (!this.#reconnect) {
      this.#shutdown(failure('closed', reason || `The connection closed (${code}).`));
      return;
    }
    const { baseMs, maxMs } = this.#backoff;
    const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(this.#attempt++, 16));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#closed && !this.#stopped && !this.#ws && !this.#connecting) this.#connect();
    }, delay);
    this.#setState('reconnecting');
  }

  // The server closed with 1009: the message last sent was over its limit.
  // Sent again it would only be refused again, so it fails here.
  #tooLarge(reason) {
    const entry = this.#lastMessage && this.#pending.get(this.#lastMessage);
    if (!entry) return;
    this.#pending.delete(this.#lastMessage);
    entry.reply[FAIL](failure('too_large', reason || 'The message is too large.'));
  }

  #stop() {
    this.#stopped = true;
    this.#ws = null;
    this.#socketSession = false;
    if (this.#session) this.#resuming = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#connectTimer);
    this.#retryTimer = null;
    this.#retryAt = 0;
    this.#stopHeartbeat();
    this.#setState('closed');
  }

  #shutdown(error) {
    this.#closed = true;
    this.#ws = null;
    this.#unlisten();
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#connectTimer);
    this.#retryTimer = null;
    this.#retryAt = 0;
    this.#stopHeartbeat();
    this.#starting?.reject(error);
    this.#starting = null;
    this.#failPending(error);
    for (const reply of this.#live()) reply[FAIL](error);
    this.#replies.clear();
    this.#outbox = [];
    this.#setState('closed');
  }

  #startHeartbeat() {
    if (!this.#heartbeatMs) return;
    this.#heartbeat = setInterval(() => this.#checkAlive(), Math.max(50, this.#heartbeatMs / 4));
    this.#heartbeat.unref?.(); // Node: the heartbeat alone keeps no process alive
  }

  #stopHeartbeat() {
    clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  // A half-open connection never closes by itself: ping after a quiet spell,
  // and drop the socket if nothing at all comes back.
  #checkAlive() {
    const now = Date.now();
    if (this.#pingAt && now - this.#pingAt > this.#heartbeatMs / 2) {
      const ws = this.#ws;
      this.#dropped({ code: 4000, reason: 'heartbeat timeout' });
      ws?.close(4000);
    } else if (!this.#pingAt && now - this.#lastRx > this.#heartbeatMs) {
      this.#probe();
    }
  }

  // Ping now (after a quiet spell, or when woken): no answer in time drops the socket.
  #probe() {
    if (this.#pingAt || !this.#isOpen()) return;
    this.#pingAt = Date.now();
    this.#sendNow({ type: 'ping' });
  }

  #setState(state) {
    const retryAt = state === 'reconnecting' ? this.#retryAt : 0;
    if (state === this.#state && retryAt === this.#shownRetryAt) return;
    this.#state = state;
    this.#shownRetryAt = retryAt;
    emit(this, 'state', { state, retryAt, attempt: this.#attempt });
  }

  #isOpen() {
    return this.#ws?.readyState === OPEN;
  }

  get #ready() {
    return this.#socketSession && this.#isOpen();
  }

  #sendStart() {
    // After a drop the session is re-attached by id, on whichever instance answers.
    const target = this.#session ? { session_id: this.#session.session_id } : this.#target;
    this.#sendNow({ type: 'start', ...target });
  }

  #sendNow(frame) {
    if (!this.#isOpen()) return;
    if (frame.type === 'message') this.#lastMessage = frame.client_id;
    try {
      this.#ws.send(JSON.stringify(frame));
    } catch {
      // closing: the close event reconnects, and the frame is sent again from there
    }
  }

  #sendOrQueue(frame) {
    if (this.#ready) this.#sendNow(frame);
    else if (!this.#closed) this.#outbox.push(frame);
  }

  #live() {
    return [...this.#replies.values()];
  }

  #failPending(error) {
    for (const { reply } of this.#pending.values()) reply[FAIL](error);
    this.#pending.clear();
  }

  // -- frames from the server --------------------------------------------------

  #receive(ws, data) {
    if (ws !== this.#ws) return;
    this.#lastRx = Date.now();
    this.#pingAt = 0;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== 'string' || frame.type === 'pong') return;
    if (!this.#route(frame)) return; // a repeat
    emit(this, frame.type, frame);
    emit(this, 'frame', frame);
  }

  /** Hand the frame to whoever waits for it; false if it repeats one. */
  #route(frame) {
    switch (frame.type) {
      case 'session':
        this.#onSession(frame);
        return true;
      case 'accepted':
        return this.#onAccepted(frame);
      case 'error':
        // A reply's own failure (its `done` follows) names the reply and nothing else.
        if (frame.reply_id && !frame.call_id && !frame.request) return this.#toReply(frame);
        this.#onRefusal(frame);
        return true;
      default:
        return REPLY_FRAMES.has(frame.type) && frame.reply_id ? this.#toReply(frame) : true;
    }
  }

  #onSession(frame) {
    const resuming = this.#resuming;
    this.#session = frame;
    this.#socketSession = true;
    this.#resuming = false;
    this.#attempt = 0;
    if (resuming) {
      for (const reply of this.#live()) {
        this.#sendNow({ type: 'resume', reply_id: reply.replyId, after_seq: reply.lastSeq });
      }
    }
    for (const { frame: message } of this.#pending.values()) this.#sendNow(message);
    for (const queued of this.#outbox.splice(0)) this.#sendNow(queued);
    this.#starting?.resolve(frame);
    this.#starting = null;
  }

  #onAccepted(frame) {
    const entry = this.#pending.get(frame.client_id);
    if (!entry) return true; // another client's message, or accepted twice
    this.#pending.delete(frame.client_id);
    const replyId = frame.reply_id;
    if (replyId) {
      // Accepted again (this client_id was sent before): the server follows
      // the reply from its start, unless this socket follows it already.
      const followed = this.#replies.get(replyId);
      this.#ended.delete(replyId);
      this.#replies.set(replyId, entry.reply);
      if (followed) {
        followed[FAIL](failure('superseded', 'Followed by a resent message.'));
        this.#sendNow({ type: 'resume', reply_id: replyId, after_seq: 0 });
      }
    }
    entry.reply[TAKE](frame);
    if (entry.reply.ended) this.#forget(entry.reply);
    return true;
  }

  // A refused frame: a message (named by client_id), a resume or cancel of a
  // reply this user cannot see, a start, or another frame (confirm, feedback, rate limits).
  #onRefusal(frame) {
    const error = new ParleyError(frame);
    const entry = frame.client_id != null && this.#pending.get(frame.client_id);
    const lost = frame.reply_id && !frame.call_id && frame.code === 'not_found';
    const reply = lost && this.#replies.get(frame.reply_id);
    if (entry) {
      this.#pending.delete(frame.client_id);
      entry.reply[FAIL](error);
    } else if (reply) {
      reply[FAIL](error);
      this.#forget(reply);
    } else if (this.#starting && this.#answersStart(frame)) {
      this.#starting.reject(error);
      this.#starting = null;
      this.#failPending(error); // their session never came
    }
  }

  #answersStart(frame) {
    const named = frame.reply_id || frame.call_id || frame.message_id;
    return !named && (frame.request ?? 'start') === 'start';
  }

  #toReply(frame) {
    const replyId = frame.reply_id;
    if (this.#ended.has(replyId)) return false; // e.g. a cancel's `done` for a reply that ended
    let reply = this.#replies.get(replyId);
    if (!reply) {
      // A reply this client did not send: an operator's, or one a cancel answers.
      reply = new Reply({ replyId });
      this.#replies.set(replyId, reply);
    }
    const fresh = reply[TAKE](frame);
    if (reply.ended) this.#forget(reply);
    return fresh;
  }

  #forget(reply) {
    if (this.#replies.get(reply.replyId) !== reply) return;
    this.#replies.delete(reply.replyId);
    this.#ended.add(reply.replyId);
    if (this.#ended.size > ENDED_KEPT) this.#ended.delete(this.#ended.values().next().value);
  }
}
