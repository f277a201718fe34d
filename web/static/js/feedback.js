// Feedback under a finished reply: thumbs up / down and an optional comment.
// Built and updated from the reply's item; the comment is plain text, never HTML.
// Saving is actions.js's job (REST), the state lives on the item:
// item.feedback = {rating, comment} | null, item.feedbackPending while saving.

import { el } from './dom.js';

/** The rating buttons (in the reply's footer). */
export function buildFeedback() {
  const box = el('div', 'feedback');
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', 'Rate this reply');
  const up = el('button', 'feedback-btn feedback-up');
  const down = el('button', 'feedback-btn feedback-down');
  // The icons are CSS masks (app.css): no <svg> in a reply, so any found there came from its text.
  up.append(el('span', 'feedback-icon'));
  down.append(el('span', 'feedback-icon'));
  up.setAttribute('aria-label', 'Helpful');
  down.setAttribute('aria-label', 'Not helpful');
  up.title = 'Helpful';
  down.title = 'Not helpful';
  const comment = el('button', 'link-btn feedback-comment-toggle', 'Add a comment');
  for (const button of [up, down, comment]) button.type = 'button';
  box.append(up, down, comment);
  return box;
}

/** The comment form and the saved comment (below the footer). */
export function buildCommentBox() {
  const form = el('form', 'feedback-form');
  form.hidden = true;
  const label = el('label', 'visually-hidden', 'Comment on this reply');
  const input = el('input', 'feedback-comment');
  input.type = 'text';
  input.maxLength = 2000;
  input.placeholder = 'What could be better? (optional)';
  const send = el('button', 'btn btn-quiet feedback-send', 'Send');
  send.type = 'submit';
  form.append(label, input, send);
  input.id = `feedback-comment-${Math.random().toString(36).slice(2)}`;
  label.htmlFor = input.id;
  const saved = el('p', 'feedback-saved');
  saved.hidden = true;
  return [form, saved];
}

export function openComment(node, item) {
  if (!item.feedback) return;
  const form = node.querySelector('.feedback-form');
  form.hidden = false;
  const input = form.querySelector('.feedback-comment');
  if (!input.value && item.feedback.comment) input.value = item.feedback.comment;
  input.focus();
  renderFeedback(node, item);
}

export function renderFeedback(node, item) {
  const rateable = item.final && !!item.messageId;
  const rating = item.feedback ? item.feedback.rating : '';
  const comment = item.feedback ? item.feedback.comment : null;
  node.dataset.feedback = rating;
  if (item.feedbackPending) node.dataset.feedbackPending = 'true';
  else delete node.dataset.feedbackPending;
  const box = node.querySelector('.feedback');
  box.hidden = !rateable;
  for (const [selector, value] of [['.feedback-up', 'up'], ['.feedback-down', 'down']]) {
    const button = box.querySelector(selector);
    button.setAttribute('aria-pressed', String(rating === value));
    button.disabled = !!item.feedbackPending;
  }
  const toggle = box.querySelector('.feedback-comment-toggle');
  toggle.hidden = !rating;
  toggle.textContent = comment ? 'Edit comment' : 'Add a comment';
  const form = node.querySelector('.feedback-form');
  if (!rating) form.hidden = true;
  form.querySelector('.feedback-send').disabled = !!item.feedbackPending;
  const saved = node.querySelector('.feedback-saved');
  saved.hidden = !comment || !form.hidden;
  saved.textContent = comment ? `Your comment: ${comment}` : '';
}
