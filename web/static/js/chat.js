// The chat protocol state machine for the conversation on screen.
//
// It owns the list of items shown (user messages and agent replies), speaks the
// WebSocket protocol (start / message / cancel / resume) and makes the stream
// exactly-once across reconnects:
//
// - every reply keeps the last `seq` applied; deltas at or below it are
//   duplicates and dropped, a jump ahead asks the server to `resume`;
// - after any reconnect the session is re-`start`ed (by session id, falling
//   back to the conversation id) and every unfinished reply is `resume`d from
//   its last seq (deltas and tool steps share one numbering);
// - a user message stays in the outbox until `accepted` and is re-sent with
//   the same client_id after a reconnect (the server treats that as a no-op);
// - notices are de-duplicated, `resync` replaces a reply's text wholesale;
// - `handoff` frames say whether a person was asked for, holds the conversation
//   (their replies carry an `author`) or handed it back; `title` frames rename it.
//
// Rendering is delegated to `ui` callbacks; nothing here touches the DOM.

import { confirmErrorText, uuid4, provisionalTitle } from './format.js';

export const FINAL_STATUSES = new Set(['complete', 'cancelled', 'failed', 'blocked', 'interrupted']);
const MESSAGE_ERRORS = new Set(['too_large', 'rate_limited', 'busy', 'budget_exceeded', 'upstream_unavailable']);
const RETRYABLE_START_ERRORS = new Set(['rate_limited', 'internal', 'upstream_unavailable', 'busy']);

let viewCounter = 0;

function newView({ conversationId = null, agentId = null } = {}) {
  return {
    key: ++viewCounter,
    conversationId,
    agentId,
    sessionId: null,
    agent: null,
    title: null,
    attached: false,
    starting: null, // 'session' | 'conversation' | 'agent' while a start is in flight
    startRetryTimer: null,
    items: [],
    byClient: new Map(),
    byReply: new Map(),
    restHistory: null,
    sessionHistory: null,
    pendingCancels: new Set(),
    handoff: { state: 'none', by: null }, // none | waiting | taken | released
  };
}

function userItem(text) {
  return { kind: 'user', clientId: uuid4(), messageId: null, text, state: 'pending', sendCount: 0, error: null };
}

function replyItem(replyId) {
  return {
    kind: 'assistant', replyId, messageId: null, text: '', seq: 0, status: 'streaming', final: false,
    notices: new Map(), usage: null, stopRequested: false, awaitingResume: false, resumeKey: null,
    error: null, tools: new Map(), author: null, feedback: null, sources: [],
  };
}

// Same-origin source viewer addresses only: anything else in a frame is ignored.
const SOURCE_URI = /^\/v1\/conversations\/[A-Za-z0-9-]{1,64}\/sources\/\d{1,18}$/;

/** A reply's knowledge sources, from a `sources` frame or a stored message. */
export function sourcesOf(list) {
  const sources = [];
  for (const source of Array.isArray(list) ? list : []) {
    if (!source || !Number.isInteger(source.n) || typeof source.uri !== 'string') continue;
    if (!SOURCE_URI.test(source.uri)) continue;
    sources.push({
      n: source.n, title: String(source.title ?? ''), uri: source.uri,
      snippet: String(source.snippet ?? ''),
    });
  }
  return sources;
}

/** A reply's tool steps by call id, from a stored message's `tool_calls`. */
function toolSteps(calls) {
  const steps = new Map();
  for (const call of Array.isArray(calls) ? calls : []) {
    if (!call || typeof call.call_id !== 'string') continue;
    steps.set(call.call_id, {
      callId: call.call_id, tool: String(call.tool ?? ''), arguments: call.arguments ?? {},
      status: String(call.status ?? ''), summary: String(call.summary ?? ''), answering: false,
    });
  }
  return steps;
}

function historyItem(message) {
  if (message.role === 'user') {
    return {
      kind: 'user', clientId: null, messageId: message.id, text: String(message.content ?? ''),
      state: 'accepted', sendCount: 0, error: null, fromHistory: true, createdAt: message.created_at,
    };
  }
  // A reply still being written: shown live and resumed from the start once
  // the session is attached (its position in the stream is unknown: seq null).
  const live = !FINAL_STATUSES.has(message.status) && !!message.reply_id;
  return {
    kind: 'assistant', replyId: message.reply_id || null, messageId: message.id,
    text: String(message.content ?? ''), seq: null,
    status: live ? 'streaming' : message.status || 'complete', final: !live,
    notices: new Map((message.notices || []).map((n) => [`${n.rule}\u0000${n.action}`, n])),
    usage: message.usage || null, stopRequested: false, awaitingResume: false, resumeKey: null,
    error: null, fromHistory: true, createdAt: message.created_at, tools: toolSteps(message.tool_calls),
    author: message.author || null, feedback: message.feedback || null,
    sources: sourcesOf(message.sources),
  };
}

/** REST history (possibly longer) overlaid with the session's (possibly fresher) copy. */
function mergeHistory(base, overlay) {
  if (!base) return overlay || [];
  if (!overlay) return base;
  const out = base.slice();
  const index = new Map(out.map((m, i) => [m.id, i]));
  for (const m of overlay) {
    if (index.has(m.id)) {
      const i = index.get(m.id);
      out[i] = { ...out[i], ...m, usage: m.usage ?? out[i].usage };
    } else {
      index.set(m.id, out.length);
      out.push(m);
    }
  }
  return out;
}

export class ChatController {
  /**
   * @param {object} deps
   * @param {object} deps.api   REST client (conversation(id))
   * @param {object} deps.ui    callbacks: setItems, update, busyChanged, sessionState,
   *                            session, conversationInfo, conversationGone, replyDone,
   *                            error, authExpired
   */
  constructor({ api, ui }) {
    this.api = api;
    this.ui = ui;
    this.socket = null;
    this.socketGen = 0;
    this.startedOnSocket = false;
    this.lastSentClientId = null;
    this.lastCancelAt = 0;
    this.view = newView();
  }

  attachSocket(socket) {
    this.socket = socket;
  }

  // --- views ---------------------------------------------------------------

  openNew(agentId) {
    this._switch(newView({ agentId }));
  }

  openConversation(conversationId) {
    const view = newView({ conversationId });
    this._switch(view);
    this.api.conversation(conversationId).then(
      (data) => this._onRest(view.key, data),
      (error) => {
        if (this.view.key !== view.key) return;
        if (error.code === 'unauthorized') this.ui.authExpired();
        else if ((error.code === 'not_found' || error.code === 'forbidden') && !view.attached) this._gone(error.code);
      },
    );
  }

  setAgent(agentId) {
    if (!this.view.conversationId && !this.view.sessionId && !this.view.starting) this.view.agentId = agentId;
  }

  /** Drop all state (sign-out). */
  reset() {
    clearTimeout(this.view.startRetryTimer);
    this.view = newView();
    this.startedOnSocket = false;
    this.ui.setItems(this.view, []);
  }

  _switch(view) {
    clearTimeout(this.view.startRetryTimer);
    this.view = view;
    this.ui.setItems(view, view.items);
    this.ui.sessionState(view);
    this.ui.busyChanged();
    if (!this.socket) return;
    if (this.startedOnSocket) {
      // This connection is bound to the previous session: use a fresh one.
      this.startedOnSocket = false;
      this.socket.restart();
    } else {
      this._maybeStart();
    }
  }

  // --- user actions --------------------------------------------------------

  isBusy() {
    return this.view.items.some(
      (i) => (i.kind === 'user' && (i.state === 'pending' || i.state === 'sent')) || (i.kind === 'assistant' && !i.final),
    );
  }

  send(text) {
    const view = this.view;
    if (this.isBusy()) return false;
    if (!view.conversationId && !view.sessionId && !view.agentId) return false;
    const item = userItem(text);
    if (!view.conversationId && !view.title) view.title = provisionalTitle(text);
    if (view.handoff.state === 'released') this._setHandoff({ state: 'none' }); // said; move on
    view.items.push(item);
    view.byClient.set(item.clientId, item);
    this.ui.setItems(view, view.items);
    if (view.attached) this._sendMessage(item);
    else this._maybeStart();
    this.ui.busyChanged();
    return true;
  }

  /** Send a failed message again, as a new message. */
  retry(clientId) {
    const view = this.view;
    const item = view.byClient.get(clientId);
    if (!item || item.state !== 'failed' || this.isBusy()) return false;
    view.items.splice(view.items.indexOf(item), 1);
    view.byClient.delete(clientId);
    return this.send(item.text);
  }

  /** Stop the running reply (or withdraw a message that never left the browser). */
  stop() {
    const view = this.view;
    const running = [...view.items].reverse().find((i) => i.kind === 'assistant' && !i.final);
    if (running) {
      if (!running.stopRequested) {
        running.stopRequested = true;
        this.ui.update(running, 'status');
        this._cancel(running);
      }
      return true;
    }
    const waiting = view.items.find((i) => i.kind === 'user' && (i.state === 'pending' || i.state === 'sent'));
    if (!waiting) return false;
    if (waiting.state === 'pending' && waiting.sendCount === 0) {
      waiting.state = 'failed';
      waiting.error = { code: 'withdrawn', message: 'Not sent.' };
    } else {
      waiting.stopRequested = true; // cancel as soon as the reply id is known
    }
    this.ui.update(waiting, 'state');
    this.ui.busyChanged();
    return true;
  }

  // --- socket events -------------------------------------------------------

  onOpen(gen) {
    this.socketGen = gen;
    this.startedOnSocket = false;
    this.view.attached = false;
    this.view.starting = null;
    this._maybeStart();
  }

  onClose({ code }) {
    const view = this.view;
    this.startedOnSocket = false;
    view.attached = false;
    view.starting = null;
    clearTimeout(view.startRetryTimer);
    if (code === 1009 && this.lastSentClientId) {
      const item = view.byClient.get(this.lastSentClientId);
      if (item && item.state === 'sent') {
        item.state = 'failed';
        item.error = { code: 'too_large', message: '' };
        this.ui.update(item, 'state');
      }
    }
    this.lastSentClientId = null;
    for (const item of view.items) {
      if (item.kind === 'user' && item.state === 'sent') {
        item.state = 'pending'; // re-sent with the same client_id after reconnecting
        this.ui.update(item, 'state');
      } else if (item.kind === 'assistant') {
        item.awaitingResume = false;
        // An answer lost with the socket can be given again (a repeat is refused
        // as `conflict`; the resumed frames say what the server decided).
        let answering = false;
        for (const step of item.tools.values()) {
          if (step.answering) answering = true;
          step.answering = false;
        }
        if (answering) this.ui.update(item, 'tools');
      }
    }
    this.ui.sessionState(view);
    this.ui.busyChanged();
  }

  onFrame(frame) {
    switch (frame.type) {
      case 'session': return this._onSession(frame);
      case 'accepted': return this._onAccepted(frame);
      case 'delta': return this._onDelta(frame);
      case 'tool_call':
      case 'tool_result': return this._onToolStep(frame);
      case 'sources': return this._onSources(frame);
      case 'notice': return this._onNotice(frame);
      case 'done': return this._onDone(frame);
      case 'resync': return this._onResync(frame);
      case 'error': return this._onError(frame);
      case 'handoff': return this._onHandoff(frame);
      case 'title': return this._onTitle(frame);
      default: return undefined;
    }
  }

  // --- protocol ------------------------------------------------------------

  _send(frame) {
    return this.socket ? this.socket.send(frame) : false;
  }

  _maybeStart() {
    const view = this.view;
    if (!this.socket || !this.socket.isOpen || view.attached || view.starting) return;
    let frame;
    if (view.sessionId) frame = { type: 'start', session_id: view.sessionId };
    else if (view.conversationId) frame = { type: 'start', conversation_id: view.conversationId };
    else if (view.agentId && view.items.some((i) => i.kind === 'user' && i.state === 'pending')) {
      frame = { type: 'start', agent: view.agentId };
    } else return;
    if (!this._send(frame)) return;
    this.startedOnSocket = true;
    view.starting = frame.session_id ? 'session' : frame.conversation_id ? 'conversation' : 'agent';
    this.ui.sessionState(view);
  }

  _sendMessage(item) {
    if (!this._send({ type: 'message', client_id: item.clientId, text: item.text })) return;
    item.state = 'sent';
    item.sendCount += 1;
    this.lastSentClientId = item.clientId;
    this.ui.update(item, 'state');
  }

  _cancel(item) {
    if (this.view.attached && this._send({ type: 'cancel', reply_id: item.replyId })) {
      this.lastCancelAt = Date.now();
    } else {
      this.view.pendingCancels.add(item.replyId);
    }
  }

  _resume(item, force = false) {
    const key = `${this.socketGen}:${item.seq ?? 0}`;
    if (!force && item.resumeKey === key) return;
    if (this._send({ type: 'resume', reply_id: item.replyId, after_seq: item.seq ?? 0 })) {
      item.resumeKey = key;
      item.awaitingResume = true;
    }
  }

  _onSession(frame) {
    const view = this.view;
    clearTimeout(view.startRetryTimer);
    const created = !view.conversationId;
    view.starting = null;
    view.attached = true;
    view.sessionId = frame.session_id || view.sessionId;
    view.conversationId = frame.conversation_id || view.conversationId;
    if (frame.agent) view.agent = frame.agent;
    if (Array.isArray(frame.history)) view.sessionHistory = frame.history;
    if (frame.handoff && frame.handoff.state) {
      // `released` is only ever a moment: a session says `none` afterwards; keep saying it.
      const stillReleased = view.handoff.state === 'released' && frame.handoff.state === 'none';
      if (!stillReleased) this._setHandoff(frame.handoff);
    }

    const active = frame.active_reply && frame.active_reply.reply_id ? frame.active_reply : null;
    if (active && !view.byReply.has(active.reply_id)) {
      // A reply is running that we have no bubble for (page reload, or a message
      // whose `accepted` we never saw): show it after the history, resume from 0.
      const item = replyItem(active.reply_id);
      const firstLocal = view.items.findIndex((i) => i.kind === 'user' && !i.messageId);
      if (firstLocal === -1) view.items.push(item);
      else view.items.splice(firstLocal, 0, item);
      view.byReply.set(item.replyId, item);
    }
    this._rebuild();
    this.ui.session(view, { created });
    this.ui.sessionState(view);

    for (const item of view.items) {
      if (item.kind === 'assistant' && !item.final && item.replyId) this._resume(item);
    }
    for (const replyId of view.pendingCancels) this._send({ type: 'cancel', reply_id: replyId });
    if (view.pendingCancels.size) this.lastCancelAt = Date.now();
    view.pendingCancels.clear();
    for (const item of view.items) {
      if (item.kind === 'user' && item.state === 'pending') this._sendMessage(item);
    }
    this.ui.busyChanged();
  }

  _onRest(key, data) {
    const view = this.view;
    if (view.key !== key || !data) return;
    if (Array.isArray(data.messages)) view.restHistory = data.messages;
    if (data.conversation) this.ui.conversationInfo(view, data.conversation);
    this._rebuild();
  }

  // Rebuild the item list from history (REST and/or session) plus whatever
  // only exists locally (unaccepted messages, running replies, replies newer
  // than the history). Item objects are reused so their DOM survives.
  _rebuild() {
    const view = this.view;
    const merged = mergeHistory(view.restHistory, view.sessionHistory);
    const hasLive = view.items.some((i) => i.kind === 'assistant' && !i.final);
    const byMessage = new Map();
    const byReply = new Map();
    for (const item of view.items) {
      if (item.messageId) byMessage.set(item.messageId, item);
      if (item.replyId) byReply.set(item.replyId, item);
    }
    // For histories without reply ids: live replies by the id of the user
    // message they answer. The history's copy of such a reply (partial, or
    // finished while we were away) is shown by the live bubble, which resumes
    // and finishes it.
    const liveByPrompt = new Map();
    let prompt = null;
    for (const item of view.items) {
      if (item.kind === 'user') prompt = item.messageId;
      else if (!item.final && item.replyId && prompt) liveByPrompt.set(prompt, item);
    }
    const historyItems = [];
    const seen = new Set();
    const changed = [];
    let lastUserId = null;
    for (const message of merged) {
      if (!message || (message.role !== 'user' && message.role !== 'assistant') || seen.has(message.id)) continue;
      if (message.role === 'user') {
        lastUserId = message.id;
      } else if (!message.reply_id) {
        if (lastUserId && liveByPrompt.has(lastUserId)) {
          liveByPrompt.delete(lastUserId);
          continue;
        }
        if (!FINAL_STATUSES.has(message.status) && hasLive) continue; // partial copy of a live reply
      }
      let item = byMessage.get(message.id) || (message.reply_id && byReply.get(message.reply_id));
      if (item) {
        if (item.kind === 'assistant') {
          if (!item.messageId) item.messageId = message.id;
          if (!item.replyId && message.reply_id) item.replyId = message.reply_id;
          const text = String(message.content ?? '');
          // A live bubble is authoritative until its `done`; a finished one
          // takes the stored text and status (rules may have rewritten it).
          if (item.final && FINAL_STATUSES.has(message.status)
              && (item.text !== text || item.status !== message.status)) {
            item.text = text;
            item.status = message.status;
            changed.push(item);
          }
          if (message.usage && !item.usage) {
            item.usage = message.usage;
            changed.push(item);
          }
          if (item.final && Array.isArray(message.sources) && !item.sources.length) {
            item.sources = sourcesOf(message.sources);
            if (item.sources.length) changed.push(item);
          }
          if (item.final && Array.isArray(message.tool_calls) && message.tool_calls.length && !item.tools.size) {
            item.tools = toolSteps(message.tool_calls);
            changed.push(item);
          }
          if ((message.author && !item.author) || (message.feedback && !item.feedback)) {
            item.author = item.author || message.author;
            item.feedback = item.feedback || message.feedback;
            changed.push(item);
          }
        }
        item.fromHistory = true;
      } else {
        item = historyItem(message);
      }
      seen.add(message.id);
      historyItems.push(item);
    }
    const kept = new Set(historyItems);
    const local = view.items.filter((i) => !kept.has(i) && !i.fromHistory && !(i.messageId && seen.has(i.messageId)));
    view.items = [...historyItems, ...local];
    view.byClient = new Map();
    view.byReply = new Map();
    for (const item of view.items) {
      if (item.clientId) view.byClient.set(item.clientId, item);
      if (item.replyId) view.byReply.set(item.replyId, item);
    }
    this.ui.setItems(view, view.items);
    for (const item of new Set(changed)) this.ui.update(item, 'all');
    if (view.attached) {
      // e.g. the REST history arrived after the session and shows a running reply
      for (const item of view.items) {
        if (item.kind === 'assistant' && !item.final && item.replyId) this._resume(item);
      }
    }
    this.ui.busyChanged();
  }

  _onAccepted(frame) {
    const view = this.view;
    const item = view.byClient.get(frame.client_id);
    if (!item) return;
    if (this.lastSentClientId === frame.client_id) this.lastSentClientId = null;
    let anchor = item;
    if (item.state !== 'accepted') {
      item.state = 'accepted';
      item.messageId = frame.message_id || item.messageId;
      item.error = null;
      const twin = item.messageId && view.items.find((o) => o !== item && o.kind === 'user' && o.messageId === item.messageId);
      if (twin) {
        // The history already holds this message (it was accepted before a drop).
        view.items.splice(view.items.indexOf(item), 1);
        twin.clientId = item.clientId;
        view.byClient.set(item.clientId, twin);
        anchor = twin;
        this.ui.setItems(view, view.items);
      } else {
        this.ui.update(item, 'state');
      }
    }
    if (frame.reply_id) {
      let reply = view.byReply.get(frame.reply_id);
      if (!reply) {
        reply = replyItem(frame.reply_id);
        view.items.splice(view.items.indexOf(anchor) + 1, 0, reply);
        view.byReply.set(reply.replyId, reply);
        this.ui.setItems(view, view.items);
      } else if (view.items.indexOf(reply) < view.items.indexOf(anchor)) {
        // Created from `active_reply` before we knew which message it answers.
        view.items.splice(view.items.indexOf(reply), 1);
        view.items.splice(view.items.indexOf(anchor) + 1, 0, reply);
        this.ui.setItems(view, view.items);
      }
      // An ack for a re-sent message: the reply may be well under way already.
      if (item.sendCount > 1 && !reply.final) this._resume(reply);
      if (item.stopRequested || anchor.stopRequested) {
        item.stopRequested = false;
        reply.stopRequested = true;
        this.ui.update(reply, 'status');
        if (!reply.final) this._cancel(reply);
      }
    }
    this.ui.busyChanged();
  }

  _replyFor(frame) {
    const view = this.view;
    let item = view.byReply.get(frame.reply_id);
    if (!item && frame.reply_id) {
      item = replyItem(frame.reply_id);
      view.items.push(item);
      view.byReply.set(item.replyId, item);
      this.ui.setItems(view, view.items);
      this.ui.busyChanged();
    }
    return item;
  }

  /** The reply a numbered frame (delta or tool step) belongs to, if it is the next one. */
  _next(frame) {
    const known = this.view.byReply.has(frame.reply_id);
    const item = this._replyFor(frame);
    if (!item || item.final) return null;
    const seq = frame.seq;
    if (!Number.isInteger(seq) || seq < 1) return null;
    item.awaitingResume = false;
    if (item.seq === null) {
      // Position unknown after a non-final resync: wait for a replay from seq 1.
      if (seq !== 1) return null;
      item.text = '';
      item.tools = new Map();
      item.sources = [];
      item.seq = 0;
    }
    if (seq <= item.seq) return null; // duplicate
    if (seq > item.seq + 1) {
      // A gap: ask for everything after what we have (once per position).
      if (!known || item.resumeKey !== `${this.socketGen}:${item.seq}`) this._resume(item, true);
      return null;
    }
    item.seq = seq;
    return item;
  }

  _onDelta(frame) {
    const item = this._next(frame);
    if (!item) return;
    if (frame.author && !item.author) item.author = frame.author; // a person's reply
    item.text += typeof frame.text === 'string' ? frame.text : '';
    this.ui.update(item, 'text');
  }

  _onToolStep(frame) {
    const item = this._next(frame);
    if (!item || typeof frame.call_id !== 'string') return;
    const step = item.tools.get(frame.call_id) || {
      callId: frame.call_id, tool: String(frame.tool ?? ''), arguments: {}, status: '', summary: '',
      answering: false,
    };
    if (frame.type === 'tool_call') step.arguments = frame.arguments ?? {};
    else step.summary = String(frame.summary ?? '');
    step.status = String(frame.status ?? '');
    step.answering = false;
    item.tools.set(step.callId, step);
    this.ui.update(item, 'tools');
  }

  /** The knowledge passages the reply was given: listed under it, `[n]` links to them. */
  _onSources(frame) {
    const item = this._next(frame);
    if (!item) return;
    item.sources = sourcesOf(frame.sources);
    this.ui.update(item, 'sources');
  }

  /** Approve or decline a tool call waiting for the user. */
  confirm(replyId, callId, approve) {
    const item = this.view.byReply.get(replyId);
    const step = item && item.tools.get(callId);
    if (!step || step.status !== 'awaiting_confirmation' || step.answering) return false;
    if (!this._send({ type: 'confirm', reply_id: replyId, call_id: callId, approve: !!approve })) return false;
    step.answering = true;
    this.ui.update(item, 'tools');
    return true;
  }

  _onNotice(frame) {
    const item = this._replyFor(frame);
    if (!item) {
      this.ui.error(null, frame.detail || frame.action || 'Notice');
      return;
    }
    // The server repeats notices after a resume; they are identified by rule + action.
    const key = JSON.stringify([frame.rule ?? '', frame.action ?? '']);
    if (item.notices.has(key)) return;
    item.notices.set(key, { rule: frame.rule, action: frame.action, detail: frame.detail });
    this.ui.update(item, 'notices');
  }

  _onDone(frame) {
    const view = this.view;
    const item = view.byReply.get(frame.reply_id);
    if (!item) return; // a reply we never showed; the history will have it
    item.awaitingResume = false;
    if (frame.usage && !item.usage) item.usage = frame.usage;
    if (frame.author && !item.author) item.author = frame.author;
    if (item.final) {
      this.ui.update(item, 'meta');
      return;
    }
    item.final = true;
    item.status = frame.status || 'complete';
    item.messageId = frame.message_id || item.messageId;
    item.stopRequested = false;
    this._dropTwin(item);
    this.ui.update(item, 'final');
    this.ui.replyDone(view, item);
    this.ui.busyChanged();
  }

  _onResync(frame) {
    const view = this.view;
    const item = this._replyFor(frame);
    if (!item) return;
    const message = frame.message || {};
    item.awaitingResume = false;
    item.text = String(message.content ?? item.text);
    item.messageId = message.id || item.messageId;
    if (Array.isArray(message.tool_calls)) item.tools = toolSteps(message.tool_calls);
    if (Array.isArray(message.sources)) item.sources = sourcesOf(message.sources);
    if (FINAL_STATUSES.has(message.status)) {
      const wasFinal = item.final;
      item.final = true;
      item.status = message.status;
      item.stopRequested = false;
      this._dropTwin(item);
      this.ui.update(item, 'final');
      if (!wasFinal) this.ui.replyDone(view, item);
    } else {
      item.seq = null; // position unknown: only a replay from seq 1 can continue it
      this.ui.update(item, 'text');
    }
    this.ui.busyChanged();
  }

  // A finished reply whose message id the history already shows: keep one
  // copy, the live one (it has the notices), in the history copy's place.
  _dropTwin(item) {
    const view = this.view;
    if (!item.messageId) return;
    const twin = view.items.find((o) => o !== item && o.messageId === item.messageId);
    if (!twin) return;
    if (!item.usage && twin.usage) item.usage = twin.usage;
    view.items.splice(view.items.indexOf(item), 1);
    view.items.splice(view.items.indexOf(twin), 1, item);
    item.fromHistory = twin.fromHistory;
    this.ui.setItems(view, view.items);
  }

  _onError(frame) {
    const view = this.view;
    const code = frame.code || 'internal';
    if (code === 'unauthorized') {
      this.ui.authExpired();
      return;
    }
    if (frame.call_id) {
      // An answer to a tool call was refused. `conflict`: the call is no longer
      // waiting (answered elsewhere, timed out): its step stays unanswerable
      // until the reply's own frames say what happened. Otherwise the answer
      // did not count and may be given again.
      let open = false;
      for (const item of view.items) {
        const step = item.kind === 'assistant' && item.tools.get(frame.call_id);
        if (!step || step.status !== 'awaiting_confirmation' || item.final) continue;
        open = true;
        if (code !== 'conflict' && step.answering) {
          step.answering = false;
          this.ui.update(item, 'tools');
        }
      }
      // A refusal for a step the stream has settled already says nothing new.
      if (open) this.ui.error(null, confirmErrorText(code, frame.message));
      return;
    }
    if (frame.reply_id) {
      // The reply's upstream failed (or the server failed running it); a `done` follows.
      const item = view.byReply.get(frame.reply_id);
      if (item) {
        item.error = { code, message: frame.message || '' };
        this.ui.update(item, 'meta');
      } else {
        this.ui.error(code, frame.message);
      }
      return;
    }
    if (frame.client_id && view.byClient.has(frame.client_id)) {
      const item = view.byClient.get(frame.client_id);
      if (this.lastSentClientId === frame.client_id) this.lastSentClientId = null;
      if (item.state !== 'accepted') {
        item.state = 'failed';
        item.error = { code, message: frame.message || '' };
        this.ui.update(item, 'state');
        this.ui.busyChanged();
      }
      return;
    }
    if (!frame.client_id && MESSAGE_ERRORS.has(code)) {
      // An error about a message that did not name it: blame the one in flight.
      const sent = view.items.filter((i) => i.kind === 'user' && i.state === 'sent');
      if (sent.length === 1) {
        sent[0].state = 'failed';
        sent[0].error = { code, message: frame.message || '' };
        if (this.lastSentClientId === sent[0].clientId) this.lastSentClientId = null;
        this.ui.update(sent[0], 'state');
        this.ui.busyChanged();
        return;
      }
    }
    if (view.starting) {
      const kind = view.starting;
      view.starting = null;
      this.ui.sessionState(view);
      if (code === 'not_found' && kind === 'session') {
        view.sessionId = null; // expired: start again from the conversation id
        this._maybeStart();
      } else if ((code === 'not_found' || code === 'forbidden') && kind === 'conversation') {
        this._gone(code);
      } else if (kind === 'agent' && !RETRYABLE_START_ERRORS.has(code)) {
        for (const item of view.items) {
          if (item.kind === 'user' && item.state === 'pending') {
            item.state = 'failed';
            item.error = { code, message: frame.message || '' };
            this.ui.update(item, 'state');
          }
        }
        this.ui.busyChanged();
      } else {
        this.ui.error(code, frame.message);
        if (RETRYABLE_START_ERRORS.has(code)) {
          view.startRetryTimer = setTimeout(() => this._maybeStart(), 2000 + Math.random() * 3000);
        }
      }
      return;
    }
    if (code === 'not_found' || code === 'bad_request' || code === 'conflict') {
      // Most likely a resume for a reply the server no longer knows.
      const orphans = view.items.filter((i) => i.kind === 'assistant' && !i.final && i.awaitingResume);
      if (orphans.length) {
        for (const item of orphans) {
          item.final = true;
          item.status = 'interrupted';
          item.awaitingResume = false;
          this.ui.update(item, 'final');
        }
        this.ui.busyChanged();
        return;
      }
      if (Date.now() - this.lastCancelAt < 5000) return; // cancel raced the end of the reply
    }
    this.ui.error(code, frame.message);
  }

  // --- people: handoffs, titles, feedback -----------------------------------

  /** Ask for a person to take the conversation over (the server answers `handoff`). */
  requestHuman() {
    if (!this.view.attached || this.view.handoff.state === 'waiting' || this.view.handoff.state === 'taken') return false;
    return this._send({ type: 'request_human' });
  }

  /** Store the feedback the server confirmed for a reply. */
  setFeedback(messageId, feedback) {
    const item = this.view.items.find((i) => i.kind === 'assistant' && i.messageId === messageId);
    if (!item) return;
    item.feedback = feedback ? { rating: feedback.rating, comment: feedback.comment ?? null } : null;
    this.ui.update(item, 'meta');
  }

  _onHandoff(frame) {
    if (frame.conversation_id && frame.conversation_id !== this.view.conversationId) return;
    this._setHandoff(frame);
  }

  _setHandoff({ state, by }) {
    const view = this.view;
    const previous = view.handoff;
    view.handoff = { state, by: by || (state === 'released' ? previous.by : null) };
    if (previous.state !== state || (by && by.name !== previous.by?.name)) this.ui.handoff(view, previous);
  }

  _onTitle(frame) {
    const view = this.view;
    if (!frame.conversation_id || typeof frame.title !== 'string') return;
    if (frame.conversation_id === view.conversationId) view.title = frame.title;
    this.ui.conversationInfo(view, { id: frame.conversation_id, title: frame.title });
  }

  _gone(code) {
    const view = this.view;
    if (view.gone) return; // REST and the socket may both report it
    view.gone = true;
    this.ui.conversationGone(view, code);
  }
}
