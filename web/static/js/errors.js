// Where an `error` frame belongs. The server names what an error answers
// (`call_id`, `reply_id`, `client_id`, or `request: "start"`); older servers
// leave some unnamed, and those are matched to what is in flight.

import { confirmErrorText } from './format.js';

const MESSAGE_ERRORS = new Set(['too_large', 'rate_limited', 'busy', 'budget_exceeded', 'upstream_unavailable']);
const REFUSALS = new Set(['not_found', 'conflict', 'bad_request']);
const RETRYABLE_START_ERRORS = new Set(['rate_limited', 'internal', 'upstream_unavailable', 'busy']);

/** @param {import('./chat.js').ChatController} chat */
export function routeError(chat, frame) {
  const view = chat.view;
  const ui = chat.ui;
  const code = frame.code || 'internal';
  const error = { code, message: frame.message || '' };
  if (code === 'unauthorized') {
    ui.authExpired();
    return;
  }
  if (frame.call_id) {
    confirmRefused(chat, frame, code);
    return;
  }
  if (frame.reply_id) {
    const item = view.byReply.get(frame.reply_id);
    // A refused `cancel` or `resume` names the reply too: the reply is over or unknown.
    const refused = frame.request === 'cancel' || frame.request === 'resume' || REFUSALS.has(code);
    if (!refused) {
      // The reply's upstream failed (or the server failed running it); a `done` follows.
      if (!item) ui.error(code, frame.message);
      else {
        item.error = error;
        ui.update(item, 'meta');
      }
    } else if (item && !item.final && item.awaitingResume) {
      orphaned(chat, [item]);
    }
    return;
  }
  if (frame.client_id && view.byClient.has(frame.client_id)) {
    messageRefused(chat, view.byClient.get(frame.client_id), error);
    return;
  }
  if (!frame.client_id && !frame.request && MESSAGE_ERRORS.has(code)) {
    // An error about a message that did not name it: blame the one in flight.
    const sent = view.items.filter((i) => i.kind === 'user' && i.state === 'sent');
    if (sent.length === 1) {
      messageRefused(chat, sent[0], error);
      return;
    }
  }
  if (view.starting && (!frame.request || frame.request === 'start')) {
    startRefused(chat, code, error);
    return;
  }
  if (code === 'not_found' || code === 'bad_request' || code === 'conflict') {
    // Most likely a resume for a reply the server no longer knows.
    const orphans = view.items.filter((i) => i.kind === 'assistant' && !i.final && i.awaitingResume);
    if (orphans.length) {
      orphaned(chat, orphans);
      return;
    }
    if (frame.request === 'cancel' || Date.now() - chat.lastCancelAt < 5000) return; // cancel raced the end
  }
  ui.error(code, frame.message);
}

// An answer to a tool call was refused. `conflict`: the call is no longer
// waiting (answered elsewhere, timed out): its step stays unanswerable until
// the reply's own frames say what happened. Otherwise the answer did not
// count and may be given again.
function confirmRefused(chat, frame, code) {
  let open = false;
  for (const item of chat.view.items) {
    const step = item.kind === 'assistant' && item.tools.get(frame.call_id);
    if (!step || step.status !== 'awaiting_confirmation' || item.final) continue;
    open = true;
    if (code !== 'conflict' && step.answering) {
      step.answering = false;
      chat.ui.update(item, 'tools');
    }
  }
  // A refusal for a step the stream has settled already says nothing new.
  if (open) chat.ui.error(null, confirmErrorText(code, frame.message));
}

export function messageRefused(chat, item, error) {
  if (item.state === 'accepted' || !chat.view.items.includes(item)) return;
  if (error.code === 'too_large') {
    // Retrying as it is can only fail again: the text goes back to the box.
    chat.withdraw(item);
    chat.ui.messageTooLong(item.text, error.message);
    return;
  }
  item.state = 'failed';
  item.error = error;
  chat.ui.update(item, 'state');
  chat.ui.busyChanged();
}

function startRefused(chat, code, error) {
  const view = chat.view;
  const kind = view.starting;
  view.starting = null;
  chat.ui.sessionState(view);
  if (code === 'not_found' && kind === 'session') {
    view.sessionId = null; // expired: start again from the conversation id
    chat.maybeStart();
  } else if ((code === 'not_found' || code === 'forbidden') && kind === 'conversation') {
    chat.gone(code);
  } else if (kind === 'agent' && !RETRYABLE_START_ERRORS.has(code)) {
    for (const item of view.items) {
      if (item.kind === 'user' && item.state === 'pending') {
        item.state = 'failed';
        item.error = error;
        chat.ui.update(item, 'state');
      }
    }
    chat.ui.busyChanged();
  } else {
    chat.ui.error(code, error.message);
    if (RETRYABLE_START_ERRORS.has(code)) {
      view.startRetryTimer = setTimeout(() => chat.maybeStart(), 2000 + Math.random() * 3000);
    }
  }
}

function orphaned(chat, items) {
  for (const item of items) {
    chat.replies.finish(item, 'interrupted');
    chat.ui.update(item, 'final');
  }
  chat.ui.busyChanged();
}
