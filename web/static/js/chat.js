// The chat controller for the conversation on screen: a consumer of
// ParleyClient (/static/client/parley-client.js, the one implementation of the
// protocol's client side, shared with the widget and Node).
//
// The client keeps the socket open from sign-in on, reconnects, re-attaches the
// session, resumes unfinished replies, re-sends unaccepted messages with their
// client_id and drops repeated frames. This controller turns its events into
// the view (items.js, history.js, replies.js; errors are routed by errors.js):
//
// - a message waits on screen (`pending`) until the session is attached, then
//   goes to the client (`sent`) until `accepted` (the text as stored, input
//   redactions applied);
// - replies from the stored history (REST or the session frame) that are still
//   running are followed through the client;
// - `handoff` frames say whether a person was asked for, holds the conversation
//   or handed it back; `title` frames rename it.
//
// One client per conversation: opening another one after a session was
// started replaces the client (and its socket). Rendering is delegated to `ui`
// callbacks; nothing here touches the DOM.

import { charCount, provisionalTitle } from './format.js';
import { newView, replyItem, userItem } from './items.js';
import { rebuildItems } from './history.js';
import { ReplyFrames } from './replies.js';
import { messageRefused, routeError } from './errors.js';

export { FINAL_STATUSES } from './items.js';

/** The longest message an agent takes, from the session frame or the agent list (0: unknown). */
export function agentLimit(agent) {
  const limit = agent && Number(agent.max_message_chars);
  return Number.isInteger(limit) && limit > 0 ? limit : 0;
}

export class ChatController {
  /**
   * @param {object} deps
   * @param {object} deps.api        REST client (conversation(id))
   * @param {() => import('/static/client/parley-client.js').ParleyClient} deps.newClient
   * @param {object} deps.ui         callbacks: setItems, update, busyChanged, sessionState,
   *                                 session, conversationInfo, conversationGone, replyDone,
   *                                 error, authExpired, handoff, messageTooLong,
   *                                 connection (the client's `state`), opened, unauthorized
   */
  constructor({ api, ui, newClient }) {
    this.api = api;
    this.ui = ui;
    this.newClient = newClient;
    this.client = null;
    this.listening = null;
    this.started = false; // start() was called on this client
    this.startKind = null;
    this.open = false;
    this.lastCancelAt = 0;
    this.view = newView();
    this.replies = new ReplyFrames(this);
  }

  // --- the connection ------------------------------------------------------

  /** Keep a socket open (signed in), with or without a session. */
  connect() {
    if (!this.client) this._attach();
    this.client.connect();
  }

  /** Skip the backoff (the reconnect button, or after signing in again). */
  reconnectNow() {
    if (!this.client) this.connect();
    else this.client.reconnectNow();
  }

  /** The sign-in expired: close the socket, keep the session and unsent messages for later. */
  disconnect() {
    this.client?.disconnect();
  }

  /** Signed out: the socket closes for good. */
  close() {
    this._detach();
    clearTimeout(this.view.startRetryTimer);
  }

  _attach() {
    const client = this.newClient();
    const listening = new AbortController();
    const on = (type, handle) => client.addEventListener(type, (event) => handle(event.detail), { signal: listening.signal });
    on('frame', (frame) => this.onFrame(frame));
    on('state', (detail) => this.onState(detail));
    on('unauthorized', (detail) => this.ui.unauthorized(detail));
    this.client = client;
    this.listening = listening;
    this.started = false;
  }

  _detach() {
    this.listening?.abort(); // nothing the old client says reaches this view
    this.client?.close();
    this.client = null;
    this.listening = null;
    this.started = false;
    this.open = false;
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
        else if ((error.code === 'not_found' || error.code === 'forbidden') && !view.attached) this.gone(error.code);
      },
    );
  }

  setAgent(agentId) {
    if (!this.view.conversationId && !this.view.sessionId && !this.view.starting) this.view.agentId = agentId;
  }

  _switch(view) {
    clearTimeout(this.view.startRetryTimer);
    this.view = view;
    this.ui.setItems(view, view.items);
    this.ui.sessionState(view);
    this.ui.busyChanged();
    if (!this.client) return;
    if (this.started) {
      // This client is bound to the previous session (and follows its replies): use a fresh one.
      this._detach();
      this.connect();
    } else {
      this.maybeStart();
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
    else this.maybeStart();
    this.ui.busyChanged();
    return true;
  }

  /** Send a failed message again, as a new message. */
  retry(clientId) {
    const view = this.view;
    const item = view.byClient.get(clientId);
    if (!item || item.state !== 'failed' || this.isBusy()) return false;
    this.withdraw(item);
    return this.send(item.text);
  }

  /** Ask again what a failed (or interrupted) reply answered: its message, sent anew. */
  retryReply(reply) {
    if (!reply || !reply.final || this.isBusy()) return false;
    const prompt = reply.prompt;
    if (!prompt || !prompt.text) return false;
    return this.send(prompt.text);
  }

  /** Take a message that never got an answer off the list. */
  withdraw(item) {
    const view = this.view;
    const index = view.items.indexOf(item);
    if (index !== -1) view.items.splice(index, 1);
    if (item.clientId) view.byClient.delete(item.clientId);
    this.ui.setItems(view, view.items);
    this.ui.busyChanged();
  }

  /** Stop the running reply (or withdraw a message that never left the browser). */
  stop() {
    const view = this.view;
    const running = [...view.items].reverse().find((i) => i.kind === 'assistant' && !i.final);
    if (running) {
      if (!running.stopRequested) {
        running.stopRequested = true;
        this.ui.update(running, 'status');
        this.cancelReply(running);
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

  /** Approve or decline a tool call waiting for the user. */
  confirm(replyId, callId, approve) {
    const item = this.view.byReply.get(replyId);
    const step = item && item.tools.get(callId);
    if (!step || step.status !== 'awaiting_confirmation' || step.answering) return false;
    if (!this.client || !this.open) return false;
    this.client.confirm(replyId, callId, !!approve);
    step.answering = true;
    this.ui.update(item, 'tools');
    return true;
  }

  /** Ask for a person to take the conversation over (the server answers `handoff`). */
  requestHuman() {
    if (!this.view.attached || this.view.handoff.state === 'waiting' || this.view.handoff.state === 'taken') return false;
    this.client.requestHuman();
    return true;
  }

  /** Store the feedback the server confirmed for a reply. */
  setFeedback(messageId, feedback) {
    const item = this.view.items.find((i) => i.kind === 'assistant' && i.messageId === messageId);
    if (!item) return;
    item.feedback = feedback ? { rating: feedback.rating, comment: feedback.comment ?? null } : null;
    this.ui.update(item, 'meta');
  }

  // --- the client's events -------------------------------------------------

  onState(detail) {
    const view = this.view;
    if (detail.state === 'open') {
      this.open = true;
      this.ui.opened();
      if (this.started) {
        // The client re-attaches by itself (the session, else the start that waited).
        view.starting = view.attached ? null : this.client.session || view.sessionId ? 'session' : this.startKind;
        this.ui.sessionState(view);
      } else {
        this.maybeStart();
      }
    } else if (this.open) {
      this.open = false;
      this._lost();
    }
    this.ui.connection(detail);
  }

  // The socket is gone: the client re-sends unaccepted messages and resumes
  // the replies once it is back; answers to tool calls may be given again.
  _lost() {
    const view = this.view;
    view.attached = false;
    view.starting = null;
    clearTimeout(view.startRetryTimer);
    for (const item of view.items) {
      if (item.kind === 'user' && item.state === 'sent') {
        // "Waiting for connection": handed to the client again on the next
        // session, where the same client_id gives the same reply (no second send).
        item.state = 'pending';
        this.ui.update(item, 'state');
      }
      if (item.kind !== 'assistant') continue;
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
    this.ui.sessionState(view);
    this.ui.busyChanged();
  }

  onFrame(frame) {
    const replies = this.replies;
    switch (frame.type) {
      case 'session': return this._onSession(frame);
      case 'accepted': return replies.onAccepted(frame);
      case 'delta': return replies.onDelta(frame);
      case 'tool_call':
      case 'tool_result': return replies.onToolStep(frame);
      case 'sources': return replies.onSources(frame);
      case 'notice': return replies.onNotice(frame);
      case 'done': return replies.onDone(frame);
      case 'resync': return replies.onResync(frame);
      case 'error': return routeError(this, frame);
      case 'handoff': return this._onHandoff(frame);
      case 'title': return this._onTitle(frame);
      default: return undefined;
    }
  }

  // --- protocol ------------------------------------------------------------

  maybeStart() {
    const view = this.view;
    if (!this.client || !this.open || view.attached || view.starting) return;
    this.start();
  }

  /** Bind the view's session (again: e.g. by conversation after the session expired). */
  start() {
    const view = this.view;
    let target;
    if (view.sessionId) target = { session_id: view.sessionId };
    else if (view.conversationId) target = { conversation_id: view.conversationId };
    else if (view.agentId && view.items.some((i) => i.kind === 'user' && i.state === 'pending')) {
      target = { agent: view.agentId };
    } else return;
    this.started = true;
    view.starting = target.session_id ? 'session' : target.conversation_id ? 'conversation' : 'agent';
    this.startKind = view.starting;
    this.client.start(target).catch(() => {}); // a refusal also comes as an `error` frame (errors.js)
    this.ui.sessionState(view);
  }

  _sendMessage(item) {
    const limit = agentLimit(this.view.agent);
    if (limit && charCount(item.text) > limit) {
      // Only known now (the session names the agent's limit): not sent, back to the box.
      this.withdraw(item);
      this.ui.messageTooLong(item.text, '');
      return;
    }
    const reply = this.client.send(item.text, { clientId: item.clientId });
    item.state = 'sent';
    item.sendCount += 1;
    this.ui.update(item, 'state');
    // Failures the server names come as `error` frames; this catches the
    // client's own (a frame too large for the socket: close code 1009).
    const view = this.view;
    reply.done.catch((error) => {
      // `closed` and `superseded`: the client went away with its conversation, not the message.
      if (view !== this.view || item.state === 'failed' || error.code === 'closed' || error.code === 'superseded') return;
      messageRefused(this, item, { code: error.code || 'internal', message: error.code === 'too_large' ? '' : error.message });
    });
  }

  cancelReply(item) {
    this.client?.cancel(item.replyId); // sent once the session is attached
    this.lastCancelAt = Date.now();
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

    for (const item of view.items.slice()) {
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

  _rebuild() {
    const view = this.view;
    const changed = rebuildItems(view);
    this.ui.setItems(view, view.items);
    for (const item of changed) this.ui.update(item, 'all');
    // e.g. the REST history arrived after the session and shows a running reply
    if (view.attached) this.replies.followAll();
    this.ui.busyChanged();
  }

  // --- people and titles ---------------------------------------------------

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

  gone(code) {
    const view = this.view;
    if (view.gone) return; // REST and the socket may both report it
    view.gone = true;
    this.ui.conversationGone(view, code);
  }
}
