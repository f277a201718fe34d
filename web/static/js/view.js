// DOM for the message list: user messages as plain text, replies as sanitised
// Markdown re-rendered (at most once per animation frame) from the full text.
//
// Test hooks (stable, read-only state mirrors):
//   article.msg-user[data-client-id][data-message-id][data-state=pending|sent|accepted|failed]
//   article.msg-assistant[data-reply-id][data-message-id][data-status][data-seq][data-stopping][data-waiting]
//     data-seq is the last seq (delta or tool step) whose content is in the DOM;
//     data-status turns final (complete|cancelled|failed|blocked|interrupted) only
//     once the final text has been rendered; data-waiting="true" while a tool
//     step waits for the user's answer.
//   li.notice-chip[data-action]  .msg-usage  .msg-error
//   article.msg-assistant[data-author-kind="operator"]: a person's reply (.msg-author is their name)
//   article.msg-assistant[data-feedback="up"|"down"|""], with button.feedback-up /
//     button.feedback-down (aria-pressed), .feedback-comment-toggle and form.feedback-form
//     (input.feedback-comment); data-feedback-pending="true" while a rating is being saved
//   details.tool-step[data-call-id][data-tool][data-status]
//     (status: awaiting_confirmation|running|ok|error|refused|declined|interrupted;
//     a step a finished reply left running or waiting shows as interrupted),
//     open only while it waits for the user, with button.tool-approve /
//     button.tool-decline then (disabled while the answer is on its way)

import { renderMarkdown } from './markdown.js';
import { errorText, formatUsage, noticeLabel, statusText, toolStatusText } from './format.js';
import { buildCommentBox, buildFeedback, openComment, renderFeedback } from './feedback.js';

const NEAR_BOTTOM_PX = 96;

const UNSETTLED_STEPS = new Set(['awaiting_confirmation', 'running']);

/** The status a step is shown with: a finished reply has no step still going. */
function shownStatus(step, item) {
  return item.final && UNSETTLED_STEPS.has(step.status) ? 'interrupted' : step.status;
}

/** A tool step of this reply waits for the user's answer. */
function waitingForUser(item) {
  if (item.final || !item.tools) return false;
  for (const step of item.tools.values()) if (step.status === 'awaiting_confirmation') return true;
  return false;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A person's reply: written by an operator who took the conversation over. */
function byOperator(item) {
  return !!(item.author && item.author.kind === 'operator');
}

export class MessageView {
  constructor({ list, scroller, jumpButton, live, agentName, connected }) {
    this.list = list;
    this.scroller = scroller;
    this.jumpButton = jumpButton;
    this.live = live;
    this.agentName = agentName || (() => 'Assistant');
    this.connected = connected || (() => true);
    this.elements = new Map(); // item -> element
    this.items = new WeakMap(); // element -> item
    this.rendered = new WeakMap(); // item -> text currently in its DOM
    this.dirty = new Set();
    this.frame = 0;
    this.lastRenderAt = 0;
    this.minGapMs = 0;
    this.stick = true;
    scroller.addEventListener('scroll', () => {
      this.stick = this.nearBottom();
      this.jumpButton.hidden = this.stick;
    }, { passive: true });
    jumpButton.addEventListener('click', () => this.scrollToBottom(true));
  }

  itemFor(node) {
    const article = node.closest('article.msg');
    return article ? this.items.get(article) : undefined;
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(smooth = false) {
    this.stick = true;
    this.jumpButton.hidden = true;
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: smooth ? 'smooth' : 'auto' });
  }

  _keepPinned() {
    if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
    else this.jumpButton.hidden = false;
  }

  /** Show exactly these items, in order, reusing existing elements. */
  setItems(items) {
    const wanted = new Set(items);
    for (const [item, node] of this.elements) {
      if (!wanted.has(item)) {
        this.elements.delete(item);
        this.dirty.delete(item);
        node.remove();
      }
    }
    const nodes = items.map((item) => {
      let node = this.elements.get(item);
      if (!node) {
        node = item.kind === 'user' ? this._buildUser(item) : this._buildReply(item);
        this.elements.set(item, node);
        this.items.set(node, item);
        this.update(item, 'all');
      }
      return node;
    });
    const current = Array.from(this.list.children);
    const same = current.length === nodes.length && current.every((node, i) => node === nodes[i]);
    if (!same) {
      const pinned = this.stick;
      this.list.replaceChildren(...nodes);
      this.stick = pinned;
      this._keepPinned();
    }
  }

  /** The agent's name above each reply (it may be known only after the history). */
  refreshAuthors() {
    const name = this.agentName();
    for (const node of this.list.querySelectorAll('article.msg-assistant:not([data-author-kind="operator"]) .msg-author')) {
      if (node.textContent !== name) node.textContent = name;
    }
  }

  /** Re-render messages waiting to be sent (their label depends on the connection). */
  refreshPending() {
    for (const [item, node] of this.elements) {
      if (item.kind === 'user' && item.state === 'pending') this._renderUser(node, item);
    }
  }

  clear() {
    this.elements.clear();
    this.dirty.clear();
    this.list.replaceChildren();
    this.stick = true;
    this.jumpButton.hidden = true;
  }

  update(item, what = 'all') {
    const node = this.elements.get(item);
    if (!node) return;
    if (item.kind === 'user') {
      this._renderUser(node, item);
      this._keepPinned();
      return;
    }
    this._renderReplyMeta(node, item);
    if (what === 'tools' || what === 'all' || item.final) this._renderTools(node, item);
    if (item.final || what === 'all' || what === 'tools') {
      // Synchronous: a final state is never ahead of the DOM, and a tool step's
      // seq (data-seq) only counts once the text before it is rendered too.
      this._renderReplyText(node, item);
      this.dirty.delete(item);
    } else if (what === 'text') {
      this.dirty.add(item);
      this._schedule();
    }
    this._keepPinned();
  }

  announce(text) {
    this.live.textContent = '';
    // A separate task so that repeating the same text is announced again.
    setTimeout(() => { this.live.textContent = text; }, 60);
  }

  // --- building ------------------------------------------------------------

  _buildUser(item) {
    const node = el('article', 'msg msg-user');
    const who = el('span', 'visually-hidden', 'You said:');
    const bubble = el('div', 'msg-bubble');
    const meta = el('div', 'msg-meta');
    node.append(who, bubble, meta);
    return node;
  }

  _buildReply(item) {
    const node = el('article', 'msg msg-assistant');
    const who = el('span', 'msg-author', this.agentName());
    const tools = el('div', 'msg-tools');
    tools.hidden = true;
    const body = el('div', 'msg-body markdown');
    const sources = el('ol', 'msg-sources');
    sources.setAttribute('aria-label', 'Sources');
    sources.hidden = true;
    const notices = el('ul', 'msg-notices');
    notices.setAttribute('aria-label', 'Notices');
    notices.hidden = true;
    const footer = el('div', 'msg-footer');
    const status = el('span', 'msg-status');
    const usage = el('span', 'msg-usage');
    const copy = el('button', 'msg-copy', 'Copy');
    copy.type = 'button';
    copy.setAttribute('aria-label', 'Copy reply');
    footer.append(status, usage, copy, buildFeedback());
    node.append(who, tools, body, sources, notices, footer, ...buildCommentBox());
    return node;
  }

  /** Open the comment box under a reply (after a rating). */
  openComment(item) {
    const node = this.elements.get(item);
    if (node) openComment(node, item);
  }

  /** A reply's tool steps, collapsed unless they wait for the user; updated in place
   *  so a step the reader opened stays open. Arguments and results are text, never HTML. */
  _renderTools(node, item) {
    const box = node.querySelector('.msg-tools');
    const steps = item.tools ? Array.from(item.tools.values()) : [];
    box.hidden = steps.length === 0;
    const existing = new Map(Array.from(box.children, (child) => [child.dataset.callId, child]));
    const wanted = steps.map((step) => {
      const details = existing.get(step.callId) || this._buildToolStep(step);
      this._fillToolStep(details, step, item);
      return details;
    });
    const same = wanted.length === box.children.length && wanted.every((n, i) => box.children[i] === n);
    if (!same) box.replaceChildren(...wanted);
  }

  _buildToolStep(step) {
    const details = el('details', 'tool-step');
    details.dataset.callId = step.callId;
    const summary = el('summary', 'tool-head');
    summary.append(el('span', 'tool-name'), el('span', 'tool-status'));
    const args = el('pre', 'tool-args');
    const result = el('p', 'tool-summary');
    const confirm = el('div', 'tool-confirm');
    const question = el('p', 'tool-question');
    const approve = el('button', 'btn btn-primary tool-approve', 'Approve');
    const decline = el('button', 'btn btn-quiet tool-decline', 'Decline');
    approve.type = decline.type = 'button';
    confirm.append(question, approve, decline);
    details.append(summary, confirm, args, result);
    return details;
  }

  _fillToolStep(details, step, item) {
    const waiting = step.status === 'awaiting_confirmation' && !item.final;
    const status = shownStatus(step, item);
    details.dataset.tool = step.tool;
    details.dataset.status = status;
    details.querySelector('.tool-name').textContent = step.tool;
    details.querySelector('.tool-status').textContent = toolStatusText(status);
    const args = JSON.stringify(step.arguments ?? {}, null, 2);
    const pre = details.querySelector('.tool-args');
    if (pre.textContent !== args) pre.textContent = args;
    const result = details.querySelector('.tool-summary');
    result.textContent = step.summary || '';
    result.hidden = !step.summary;
    const confirm = details.querySelector('.tool-confirm');
    confirm.hidden = !waiting;
    details.querySelector('.tool-question').textContent = `Allow ${step.tool} to run with these arguments?`;
    for (const button of confirm.querySelectorAll('button')) button.disabled = !!step.answering;
    if (waiting && details.dataset.asked !== 'true') {
      details.open = true; // a question must be seen; the reader may close it again
      details.dataset.asked = 'true';
      // The reply is aria-busy while it runs, so its contents are not read out.
      this.announce(`${this.agentName()} asks to run ${step.tool}. Approve or decline it.`);
    } else if (!waiting && details.dataset.asked === 'true') {
      details.open = false; // answered: collapsed like every other step
      details.dataset.asked = 'answered';
    }
  }

  // --- rendering -----------------------------------------------------------

  _renderUser(node, item) {
    node.dataset.state = item.state;
    if (item.clientId) node.dataset.clientId = item.clientId;
    if (item.messageId) node.dataset.messageId = item.messageId;
    const bubble = node.querySelector('.msg-bubble');
    if (bubble.textContent !== item.text) bubble.textContent = item.text; // plain text, never HTML
    const meta = node.querySelector('.msg-meta');
    meta.replaceChildren();
    if (item.state === 'pending') {
      meta.append(el('span', 'msg-pending', this.connected() ? 'Sending…' : 'Waiting for connection…'));
    } else if (item.state === 'sent') {
      meta.append(el('span', 'msg-pending', 'Sending…'));
    } else if (item.state === 'failed') {
      const code = item.error && item.error.code;
      const text = code === 'withdrawn' ? 'Not sent.' : errorText(code, item.error && item.error.message);
      const error = el('span', 'msg-error', text);
      error.dataset.code = code || '';
      const retry = el('button', 'link-btn msg-retry', 'Retry');
      retry.type = 'button';
      meta.append(error, retry);
    }
    meta.hidden = !meta.firstChild;
  }

  _renderReplyMeta(node, item) {
    node.dataset.replyId = item.replyId || '';
    if (item.messageId) node.dataset.messageId = item.messageId;
    if (byOperator(item)) {
      node.dataset.authorKind = 'operator';
      const author = node.querySelector('.msg-author');
      const name = String(item.author.name || 'A person');
      if (author.dataset.person !== name) {
        author.dataset.person = name;
        author.replaceChildren(el('span', 'author-name', name), el('span', 'author-badge', 'Person'));
      }
    }
    node.setAttribute('aria-busy', String(!item.final));
    if (item.stopRequested && !item.final) node.dataset.stopping = 'true';
    else delete node.dataset.stopping;
    if (waitingForUser(item)) node.dataset.waiting = 'true';
    else delete node.dataset.waiting;
    if (!item.final) node.dataset.status = 'streaming';

    renderSources(node, item);

    const notices = node.querySelector('.msg-notices');
    if (notices.childElementCount !== item.notices.size) {
      notices.replaceChildren(...Array.from(item.notices.values(), (notice) => {
        const chip = el('li', 'notice-chip');
        chip.dataset.action = String(notice.action || 'notice');
        chip.append(el('span', 'notice-label', noticeLabel(notice.action)));
        if (notice.detail) chip.append(el('span', 'notice-detail', String(notice.detail)));
        chip.title = [notice.rule, notice.detail].filter(Boolean).join(': ');
        return chip;
      }));
      notices.hidden = item.notices.size === 0;
    }

    const status = node.querySelector('.msg-status');
    let label = item.final ? statusText(item.status) : item.stopRequested ? 'Stopping…' : '';
    let warn = item.final && item.status !== 'complete' && item.status !== 'cancelled';
    if (item.error && item.status !== 'cancelled') {
      label = errorText(item.error.code, item.error.message); // e.g. the provider went away
      warn = true;
      status.dataset.code = item.error.code || '';
    }
    status.textContent = label;
    status.dataset.tone = warn ? 'warn' : '';

    const usage = node.querySelector('.msg-usage');
    const formatted = item.final && !byOperator(item) ? formatUsage(item.usage) : null;
    usage.textContent = formatted ? formatted.text : '';
    usage.title = formatted ? formatted.title : '';
    node.querySelector('.msg-copy').hidden = !item.final || !item.text;
    renderFeedback(node, item);
  }

  _renderReplyText(node, item) {
    const body = node.querySelector('.msg-body');
    // No text yet: typing dots, unless the reply waits for the user (nothing is being written).
    const idle = !item.text && !item.final && waitingForUser(item);
    const cited = (item.sources || []).length;
    const shown = idle ? '\u0000waiting' : `${item.text}\u0000${cited}`;
    if (this.rendered.get(item) !== shown || (!body.firstChild && !idle)) {
      if (item.text) {
        body.replaceChildren(linkCitations(renderMarkdown(item.text), item.sources || []));
      } else if (!item.final && !idle) {
        const typing = el('span', 'typing');
        typing.setAttribute('aria-label', 'Writing a reply');
        typing.append(el('span'), el('span'), el('span'));
        body.replaceChildren(typing);
      } else {
        body.replaceChildren();
      }
      this.rendered.set(item, shown);
    }
    if (item.seq !== null && item.seq !== undefined) node.dataset.seq = String(item.seq);
    else if (!node.dataset.seq) node.dataset.seq = '0';
    if (item.final) node.dataset.status = item.status;
  }

  _schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame((now) => {
      this.frame = 0;
      // Long replies: if rendering got slow, render less often (never every frame).
      if (now - this.lastRenderAt < this.minGapMs) {
        this._schedule();
        return;
      }
      const started = performance.now();
      for (const item of this.dirty) {
        const node = this.elements.get(item);
        if (node) this._renderReplyText(node, item);
      }
      this.dirty.clear();
      const took = performance.now() - started;
      this.lastRenderAt = now;
      this.minGapMs = took > 12 ? Math.min(took * 3, 500) : 0;
      this._keepPinned();
    });
  }
}

// -- knowledge sources ---------------------------------------------------------------

function sourceLink(source, label) {
  const link = el('a', 'citation', label);
  link.href = source.uri; // a same-origin plain-text page (checked by sourcesOf)
  link.target = '_blank';
  link.rel = 'noopener noreferrer';
  link.title = source.title;
  return link;
}

/** The numbered list of a reply's sources, under its text. */
function renderSources(node, item) {
  const list = node.querySelector('.msg-sources');
  const sources = item.sources || [];
  if (list.dataset.count === String(sources.length)) return;
  list.dataset.count = String(sources.length);
  list.replaceChildren(...sources.map((source) => {
    const entry = el('li', 'source');
    entry.value = source.n;
    entry.append(sourceLink(source, source.title || `Source ${source.n}`));
    if (source.snippet) entry.append(el('span', 'source-snippet', source.snippet));
    return entry;
  }));
  list.hidden = sources.length === 0;
}

const CITATION = /\[(\d{1,2})\]/g;

/** `[n]` in the reply's text, for a source n it has, as a link to that source.
 * Built from text nodes (never HTML), skipping code and existing links. */
function linkCitations(fragment, sources) {
  if (!sources.length) return fragment;
  const byNumber = new Map(sources.map((source) => [source.n, source]));
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    if (text.parentElement && text.parentElement.closest('a, code, pre')) continue;
    if (CITATION.test(text.data)) found.push(text);
    CITATION.lastIndex = 0;
  }
  for (const text of found) {
    const parts = [];
    let last = 0;
    for (const match of text.data.matchAll(CITATION)) {
      const source = byNumber.get(Number(match[1]));
      if (!source) continue;
      parts.push(document.createTextNode(text.data.slice(last, match.index)));
      parts.push(sourceLink(source, match[0]));
      last = match.index + match[0].length;
    }
    if (!parts.length) continue;
    parts.push(document.createTextNode(text.data.slice(last)));
    text.replaceWith(...parts);
  }
  return fragment;
}
