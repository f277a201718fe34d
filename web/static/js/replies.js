// A reply's frames, applied exactly once to the reply's item:
//
// - `accepted` ties a message to its reply (the bubble goes right after it) and
//   gives the message's text as stored;
// - every reply keeps the last `seq` applied (the client drops repeats before
//   they get here; a reply shown from stored history starts from 0, and after a
//   `resync` that did not end it only a replay from seq 1 goes on);
// - notices are keyed by rule + action, `resync` replaces a reply's text
//   wholesale, `done` makes it final.
//
// The controller (chat.js) owns the view and the client; this only reads and
// changes the items of its current view and tells `ui` what changed.

import { provisionalTitle } from './format.js';
import { FINAL_STATUSES, noticeKey, replyItem, sourcesOf, toolSteps } from './items.js';

export class ReplyFrames {
  /** @param {import('./chat.js').ChatController} chat */
  constructor(chat) {
    this.chat = chat;
  }

  get view() {
    return this.chat.view;
  }

  get ui() {
    return this.chat.ui;
  }

  /**
   * Follow every unfinished reply of the view through the client (replies
   * shown from stored history, or named by the session's `active_reply`). One
   * the client follows already is left as it is; after a reconnect the client
   * resumes its replies itself.
   */
  followAll() {
    const client = this.chat.client;
    if (!client) return;
    for (const item of this.view.items) {
      if (item.kind !== 'assistant' || item.final || !item.replyId) continue;
      item.awaitingResume = true; // a `not_found` for it means the server forgot it
      client.follow(item.replyId, { afterSeq: item.seq ?? 0 });
    }
  }

  /**
   * A message is stored: `text` is what was stored (input redactions applied).
   * Its reply's bubble goes right after it.
   */
  onAccepted(frame) {
    const view = this.view;
    const chat = this.chat;
    const item = view.byClient.get(frame.client_id);
    if (!item) return;
    let anchor = item;
    if (item.state !== 'accepted') {
      item.state = 'accepted';
      item.messageId = frame.message_id || item.messageId;
      item.error = null;
      if (typeof frame.text === 'string' && frame.text !== item.text) {
        // As stored (redactions applied): the title taken from it must not keep what was removed.
        if (view.title === provisionalTitle(item.text)) {
          view.title = provisionalTitle(frame.text);
          if (view.conversationId) this.ui.conversationInfo(view, { id: view.conversationId, title: view.title });
        }
        item.text = frame.text;
      }
      if (frame.redacted === true) item.redacted = true;
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
      reply.prompt = anchor;
      if (item.stopRequested || anchor.stopRequested) {
        item.stopRequested = false;
        reply.stopRequested = true;
        this.ui.update(reply, 'status');
        if (!reply.final) chat.cancelReply(reply);
      }
    }
    this.ui.busyChanged();
  }

  replyFor(frame) {
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

  /** The reply a numbered frame (delta or tool step) belongs to, if it goes on from what is shown. */
  next(frame) {
    const item = this.replyFor(frame);
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
    if (seq <= item.seq) return null; // shown already (e.g. a reply the history had)
    item.seq = seq;
    return item;
  }

  onDelta(frame) {
    const item = this.next(frame);
    if (!item) return;
    if (frame.author && !item.author) item.author = frame.author; // a person's reply
    item.text += typeof frame.text === 'string' ? frame.text : '';
    this.ui.update(item, 'text');
  }

  onToolStep(frame) {
    const item = this.next(frame);
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
  onSources(frame) {
    const item = this.next(frame);
    if (!item) return;
    item.sources = sourcesOf(frame.sources);
    this.ui.update(item, 'sources');
  }

  onNotice(frame) {
    const item = this.replyFor(frame);
    if (!item) {
      this.ui.error(null, frame.detail || frame.action || 'Notice');
      return;
    }
    // The server repeats notices after a resume; they are identified by rule + action.
    const key = noticeKey(frame);
    if (item.notices.has(key)) return;
    item.notices.set(key, { rule: frame.rule, action: frame.action, detail: frame.detail });
    this.ui.update(item, 'notices');
  }

  onDone(frame) {
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
    this.finish(item, frame.status || 'complete');
    item.messageId = frame.message_id || item.messageId;
    this.dropTwin(item);
    this.ui.update(item, 'final');
    this.ui.replyDone(view, item);
    this.ui.busyChanged();
  }

  onResync(frame) {
    const view = this.view;
    const item = this.replyFor(frame);
    if (!item) return;
    const message = frame.message || {};
    item.awaitingResume = false;
    item.text = String(message.content ?? item.text);
    item.messageId = message.id || item.messageId;
    if (Array.isArray(message.tool_calls)) item.tools = toolSteps(message.tool_calls);
    if (Array.isArray(message.sources)) item.sources = sourcesOf(message.sources);
    if (FINAL_STATUSES.has(message.status)) {
      const wasFinal = item.final;
      this.finish(item, message.status);
      this.dropTwin(item);
      this.ui.update(item, 'final');
      if (!wasFinal) this.ui.replyDone(view, item);
    } else {
      item.seq = null; // position unknown: only a replay from seq 1 can continue it
      this.ui.update(item, 'text');
    }
    this.ui.busyChanged();
  }

  finish(item, status) {
    item.final = true;
    item.status = status;
    item.stopRequested = false;
    item.awaitingResume = false;
  }

  // A finished reply whose message id the history already shows: keep one
  // copy, the live one (it has the notices), in the history copy's place.
  dropTwin(item) {
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
}
