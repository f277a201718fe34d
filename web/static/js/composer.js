// The message box: Enter sends, Shift+Enter breaks the line; Send becomes Stop
// while a reply is written. It counts characters (code points, as the server
// does) against the current agent's limit and keeps a message over it in the
// box, saying why, instead of sending it.
//
// Test hooks: body[data-busy], #composer-count[data-over], #composer-error
// (the reason a message can't be sent; hidden when there is none).

import { $ } from './dom.js';
import { charCount, errorText } from './format.js';
import { agentLabel, messageLimit } from './state.js';

const fieldSizing = window.CSS && CSS.supports && CSS.supports('field-sizing', 'content');

export function createComposer(app) {
  const { state, body, narrow } = app;
  const input = $('message-input');
  let refused = null; // {text, message}: the server refused this text as too long

  function tooLongText(count, limit) {
    return `${agentLabel(state)} accepts messages of up to ${limit.toLocaleString()} characters; `
      + `this one has ${count.toLocaleString()}. Shorten it to send it.`;
  }

  /** Why the text in the box can't be sent ('' when it can). */
  function reason(text) {
    const limit = messageLimit(state);
    const count = charCount(text);
    if (limit > 0 && count > limit) return tooLongText(count, limit);
    if (refused && refused.text === text) return errorText('too_large', refused.message);
    return '';
  }

  function update() {
    const controller = state.controller;
    if (!controller) return;
    const busy = controller.isBusy();
    const view = controller.view;
    body.dataset.busy = String(busy);
    const limit = messageLimit(state);
    const count = charCount(input.value);
    const why = input.value.trim() ? reason(input.value) : '';
    const haveAgent = !!(view.conversationId || view.sessionId || view.agentId);
    $('send-button').disabled = busy || !!why || !input.value.trim() || !haveAgent;
    $('send-button').hidden = busy;
    $('stop-button').hidden = !busy;
    const counter = $('composer-count');
    if (limit > 0 && count > limit * 0.8) {
      counter.hidden = false;
      counter.textContent = `${count.toLocaleString()} / ${limit.toLocaleString()}`;
      counter.dataset.over = String(count > limit);
    } else {
      counter.hidden = true;
    }
    const error = $('composer-error');
    if (error.textContent !== why) error.textContent = why;
    error.hidden = !why;
    if (why) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function autosize() {
    if (fieldSizing) return;
    input.style.height = 'auto'; // CSSOM, not a style attribute: allowed by the CSP
    input.style.height = `${Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
  }

  function focus() {
    if (!narrow.matches) input.focus({ preventScroll: true });
  }

  function submit() {
    const controller = state.controller;
    if (!controller || controller.isBusy()) return;
    const text = input.value.replace(/^\s*\n/, '').trimEnd();
    if (!text.trim()) return;
    if (reason(text)) {
      update(); // the reason shows under the box; the text stays
      input.focus({ preventScroll: true });
      return;
    }
    if (!controller.send(text)) {
      if (!controller.view.agentId && !controller.view.conversationId) app.shell.showBanner('Pick an agent first.');
      return;
    }
    input.value = '';
    autosize();
    update();
    app.messageView.scrollToBottom();
  }

  /** A message found too long after it left the box: back into the box, with the reason. */
  function giveBack(text, message) {
    refused = { text, message };
    if (!input.value.trim()) input.value = text;
    autosize();
    update();
    input.focus({ preventScroll: true });
  }

  function clear() {
    refused = null;
    update();
  }

  function wire() {
    input.addEventListener('input', () => {
      autosize();
      update();
    });
    input.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' || event.shiftKey || event.altKey || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      submit();
    });
    $('composer').addEventListener('submit', (event) => {
      event.preventDefault();
      submit();
    });
    $('stop-button').addEventListener('click', () => {
      state.controller?.stop();
      input.focus({ preventScroll: true });
    });
  }

  return { wire, update, focus, giveBack, clear, input };
}
