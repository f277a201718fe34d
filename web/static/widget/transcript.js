// The widget's messages: what the visitor wrote, and replies as they stream.
//
// Model output goes through the UI's own Markdown pipeline (markdown.js:
// marked, then DOMPurify), never into innerHTML; everything else is text.
// Each reply shows its notices, the knowledge sources it was given and its
// tool steps, with Approve / Decline for a step that waits for the visitor.
// Test hooks: article.w-msg[data-status] (user: pending|accepted|failed;
// reply: streaming|complete|cancelled|failed|blocked|interrupted),
// article.w-reply[data-reply-id], .w-tool[data-status].

import { renderMarkdown } from '../js/markdown.js';
import { errorText, noticeLabel, statusText, toolStatusText } from '../js/format.js';

const FINAL = new Set(['complete', 'cancelled', 'failed', 'blocked', 'interrupted']);
const HANDOFF_TEXT = {
  waiting: 'A person has been asked to join this conversation.',
  released: 'The assistant is answering again.',
};

/** A readable sentence for an error a guest can meet. */
export function guestErrorText(code, message) {
  if (code === 'unauthorized' || code === 'forbidden') return 'This chat is not available here.';
  if (code === 'not_found' || code === 'unknown_agent') return 'This chat is no longer available.';
  return errorText(code, message);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

class ReplyView {
  constructor(replyId, agentName) {
    this.replyId = replyId;
    this.text = '';
    this.final = false;
    this.notices = new Set();
    this.steps = new Map();
    this.node = element('article', 'w-msg w-reply');
    this.node.dataset.status = 'streaming';
    this.node.dataset.seq = '0';
    if (replyId) this.node.dataset.replyId = replyId;
    this.author = element('p', 'w-author', agentName);
    this.body = element('div', 'w-body');
    this.tools = element('div', 'w-tools');
    this.sources = element('ol', 'w-sources');
    this.sources.hidden = true;
    this.noticeList = element('ul', 'w-notices');
    this.noticeList.hidden = true;
    this.meta = element('p', 'w-meta');
    this.meta.hidden = true;
    this.node.append(this.author, this.tools, this.body, this.sources, this.noticeList, this.meta);
    this.scheduled = false;
  }

  setText(text) {
    this.text = text;
    if (this.scheduled) return;
    this.scheduled = true;
    // At most one Markdown render per frame, however fast deltas come.
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.body.replaceChildren(renderMarkdown(this.text));
    });
  }

  addNotice(notice) {
    const key = `${notice.rule}\u0000${notice.action}`;
    if (this.notices.has(key)) return;
    this.notices.add(key);
    const item = element('li', 'w-notice');
    item.dataset.action = String(notice.action || '');
    item.append(element('strong', null, noticeLabel(notice.action)));
    if (notice.detail) item.append(document.createTextNode(` ${notice.detail}`));
    this.noticeList.append(item);
    this.noticeList.hidden = false;
  }

  setSources(sources) {
    this.sources.replaceChildren();
    for (const source of Array.isArray(sources) ? sources : []) {
      if (!source || !Number.isInteger(source.n)) continue;
      const item = element('li', 'w-source');
      item.value = source.n;
      item.append(element('span', 'w-source-title', String(source.title || `Source ${source.n}`)));
      if (source.snippet) item.append(element('span', 'w-source-snippet', String(source.snippet)));
      this.sources.append(item);
    }
    this.sources.hidden = !this.sources.children.length;
  }

  setStep(update, onConfirm) {
    let view = this.steps.get(update.callId);
    if (!view) {
      view = element('div', 'w-tool');
      view.dataset.callId = update.callId;
      view.step = {};
      this.steps.set(update.callId, view);
      this.tools.append(view);
    }
    // A result names no arguments and may name no tool: keep the call's.
    const step = { ...view.step, ...update };
    step.tool = update.tool || view.step.tool || '';
    step.arguments = Object.keys(update.arguments).length ? update.arguments : view.step.arguments || {};
    view.step = step;
    view.dataset.status = step.status;
    const head = element('p', 'w-tool-head');
    head.append(element('span', 'w-tool-name', step.tool), element('span', 'w-tool-status', toolStatusText(step.status)));
    const parts = [head];
    if (step.arguments && Object.keys(step.arguments).length) {
      parts.push(element('code', 'w-tool-args', JSON.stringify(step.arguments)));
    }
    if (step.summary) parts.push(element('p', 'w-tool-summary', step.summary));
    if (step.status === 'awaiting_confirmation' && !this.final) {
      const actions = element('div', 'w-tool-actions');
      const approve = element('button', 'w-approve', 'Approve');
      const decline = element('button', 'w-decline', 'Decline');
      for (const [button, yes] of [[approve, true], [decline, false]]) {
        button.type = 'button';
        button.addEventListener('click', () => {
          approve.disabled = true;
          decline.disabled = true;
          onConfirm(this.replyId, step.callId, yes);
        });
      }
      actions.append(approve, decline);
      parts.push(actions);
    }
    view.replaceChildren(...parts);
  }

  setAuthor(author) {
    if (author && author.name) this.author.textContent = String(author.name);
  }

  finish(status, error) {
    this.final = true;
    this.node.dataset.status = status;
    for (const button of this.tools.querySelectorAll('button')) button.remove();
    const said = error ? guestErrorText(error.code, error.message) : statusText(status);
    this.meta.textContent = said;
    this.meta.hidden = !said;
  }
}

export class Transcript {
  #log;
  #welcome;
  #agentName;
  #onConfirm;
  #users = new Map(); // client_id -> article
  #replies = new Map(); // reply_id -> ReplyView

  constructor(log, { agentName, onConfirm }) {
    this.#log = log;
    this.#welcome = log.querySelector('.w-welcome');
    this.#agentName = agentName;
    this.#onConfirm = onConfirm;
  }

  /** The id of the reply still being written, if any. */
  get running() {
    for (const view of this.#replies.values()) if (!view.final) return view.replyId;
    return null;
  }

  /** A conversation's stored messages, but the reply ``live`` (it is followed afresh). */
  showHistory(messages, live) {
    for (const message of Array.isArray(messages) ? messages : []) {
      if (message.role === 'user') {
        this.#append(this.#userNode(String(message.content ?? ''), 'accepted'));
        continue;
      }
      if (live && message.reply_id === live) continue;
      const view = new ReplyView(message.reply_id || null, this.#agentName);
      view.setAuthor(message.author);
      view.setText(String(message.content ?? ''));
      view.setSources(message.sources);
      for (const notice of message.notices || []) view.addNotice(notice);
      for (const call of message.tool_calls || []) {
        view.setStep(this.#step(call), this.#onConfirm);
      }
      view.finish(FINAL.has(message.status) ? message.status : 'interrupted');
      this.#append(view.node);
    }
  }

  /** What the visitor just sent, before the server has it. */
  addUser(clientId, text) {
    const node = this.#userNode(text, 'pending');
    this.#users.set(clientId, node);
    this.#append(node);
  }

  failUser(clientId, code, message) {
    const node = this.#users.get(clientId);
    if (!node || node.dataset.status === 'accepted') return;
    node.dataset.status = 'failed';
    node.querySelector('.w-error').textContent = guestErrorText(code, message);
  }

  /** A frame of the chat (after the client's de-duplication). */
  apply(frame) {
    switch (frame.type) {
      case 'accepted': return this.#accepted(frame);
      case 'delta': {
        const view = this.#reply(frame.reply_id);
        if (!view) return undefined;
        view.setAuthor(frame.author);
        view.node.dataset.seq = String(frame.seq);
        return view.setText(view.text + (typeof frame.text === 'string' ? frame.text : ''));
      }
      case 'tool_call':
      case 'tool_result': return this.#reply(frame.reply_id)?.setStep(this.#step(frame), this.#onConfirm);
      case 'sources': return this.#reply(frame.reply_id)?.setSources(frame.sources);
      case 'notice': return this.#reply(frame.reply_id)?.addNotice(frame);
      case 'error': {
        const view = this.#reply(frame.reply_id);
        if (view) view.error = { code: frame.code, message: frame.message };
        return undefined;
      }
      case 'done': {
        const view = this.#reply(frame.reply_id);
        if (view && !view.final) view.finish(frame.status || 'complete', view.error);
        return undefined;
      }
      case 'resync': {
        const view = this.#reply(frame.reply_id);
        const message = frame.message || {};
        if (!view) return undefined;
        view.setText(String(message.content ?? view.text));
        if (FINAL.has(message.status)) view.finish(message.status);
        return undefined;
      }
      default: return undefined;
    }
  }

  #accepted(frame) {
    const node = this.#users.get(frame.client_id);
    if (node) {
      node.dataset.status = 'accepted';
      // The message as stored: an input rule may have redacted it.
      if (typeof frame.text === 'string') node.querySelector('.w-text').textContent = frame.text;
    }
    if (frame.reply_id && !this.#replies.has(frame.reply_id)) this.#reply(frame.reply_id);
  }

  /** The view of a reply, made (at the end) the first time it is named. */
  #reply(replyId) {
    if (!replyId) return null;
    let view = this.#replies.get(replyId);
    if (!view) {
      view = new ReplyView(replyId, this.#agentName);
      this.#replies.set(replyId, view);
      this.#append(view.node);
    }
    return view;
  }

  #step(frame) {
    return {
      callId: String(frame.call_id ?? ''),
      tool: String(frame.tool ?? ''),
      arguments: frame.arguments && typeof frame.arguments === 'object' ? frame.arguments : {},
      status: String(frame.status ?? ''),
      summary: String(frame.summary ?? ''),
    };
  }

  #userNode(text, status) {
    const node = element('article', 'w-msg w-user');
    node.dataset.status = status;
    node.append(element('p', 'w-text', text), element('p', 'w-error'));
    return node;
  }

  #append(node) {
    if (this.#welcome) {
      this.#welcome.remove();
      this.#welcome = null;
    }
    const log = this.#log;
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    log.append(node);
    if (atEnd) node.scrollIntoView({ block: 'end' });
  }
}

export { HANDOFF_TEXT };
