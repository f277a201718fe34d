// What the buttons in the message list do: copy (a reply, a code block), Retry
// (a message that was not sent, a reply that failed), ratings and comments
// (saved over REST), and approving or declining a tool call.

import { $, copyText, flash } from './dom.js';
import { errorText } from './format.js';

export function createMessageActions(app) {
  const { state, api, shell } = app;
  const view = app.messageView;

  /** Rate a reply (REST); true once stored. A new rating replaces the old one, comment included. */
  async function giveFeedback(item, rating, comment) {
    if (!item.messageId || item.feedbackPending) return false;
    item.feedbackPending = true;
    view.update(item, 'meta');
    try {
      const data = await api.feedback(item.messageId, rating, comment);
      item.feedbackPending = false;
      state.controller?.setFeedback(item.messageId, data.feedback);
      return true;
    } catch (e) {
      item.feedbackPending = false;
      view.update(item, 'meta');
      if (e.code === 'unauthorized') app.auth.sessionExpired();
      else shell.showBanner(errorText(e.code, e.message));
      return false;
    }
  }

  async function onClick(event) {
    const target = event.target;
    const codeCopy = target.closest('.code-copy');
    if (codeCopy) {
      const pre = codeCopy.closest('.code-block')?.querySelector('pre');
      if (pre) flash(codeCopy, (await copyText(pre.textContent)) ? 'Copied' : 'Copy failed');
      return;
    }
    const item = view.itemFor(target);
    if (!item) return;
    const controller = state.controller;
    if (target.closest('.msg-copy')) {
      flash(target.closest('.msg-copy'), (await copyText(item.text)) ? 'Copied' : 'Copy failed');
    } else if (target.closest('.msg-retry') && item.clientId) {
      controller?.retry(item.clientId);
    } else if (target.closest('.reply-retry')) {
      if (controller?.retryReply(item)) view.scrollToBottom();
    } else if (target.closest('.feedback-up, .feedback-down')) {
      const rating = target.closest('.feedback-up') ? 'up' : 'down';
      if (item.feedback?.rating !== rating) await giveFeedback(item, rating, null);
      if (rating === 'down') view.openComment(item); // what went wrong is worth asking
    } else if (target.closest('.feedback-comment-toggle')) {
      view.openComment(item);
    } else if (target.closest('.tool-approve, .tool-decline')) {
      const step = target.closest('.tool-step');
      const approve = !!target.closest('.tool-approve');
      if (step) controller?.confirm(item.replyId, step.dataset.callId, approve);
    }
  }

  async function onSubmit(event) {
    const form = event.target.closest('.feedback-form');
    const item = form && view.itemFor(form);
    if (!item) return;
    event.preventDefault();
    const comment = form.querySelector('.feedback-comment').value.trim();
    if (await giveFeedback(item, item.feedback?.rating || 'down', comment || null)) {
      form.hidden = true;
      view.update(item, 'meta');
    }
  }

  function wire() {
    $('messages').addEventListener('click', onClick);
    $('messages').addEventListener('submit', onSubmit);
  }

  return { wire };
}
