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
//   article.msg-user[data-redacted="true"] with li.notice-chip[data-action="redacted"] under
//     the bubble: the message was stored with redactions (the bubble shows what was stored)
//   button.reply-retry under a failed or interrupted reply (asks its question again)
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
import { el } from './dom.js';
import { errorText, formatUsage, noticeDetail, statusText, userNoticeLabel } from './format.js';
import { renderTools, waitingForUser } from './tool-steps.js';
import { linkCitations, renderSources } from './sources.js';
import { replyNotices } from './items.js';
import { buildCommentBox, buildFeedback, openComment, renderFeedback } from './feedback.js';

const NEAR_BOTTOM_PX = 96;

const RETRYABLE = new Set(['failed', 'interrupted']);

/** A notice as a chip: a plain-words label and detail (a rule's id is never shown). */
function noticeChip(notice) {
  const chip = el('li', 'notice-chip');
  chip.dataset.action = String(notice.action || 'notice');
  chip.append(el('span', 'notice-label', userNoticeLabel(notice.action)));
  const detail = noticeDetail(notice);
  if (detail) {
    chip.append(el('span', 'notice-detail', detail));
    chip.title = detail;
  }
  return chip;
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
    this.viewKey = null; // whose items are shown (chat.js's view.key)
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

  /** Show exactly these items, in order, reusing existing elements (none of another view's). */
  setItems(items, viewKey) {
    if (viewKey !== this.viewKey) {
      this.viewKey = viewKey;
      this.clear();
    }
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
    if (what === 'tools' || what === 'all' || item.final) renderTools(node, item, (text) => this.announce(text), this.agentName);
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
    const notices = el('ul', 'msg-notices msg-user-notices');
    notices.setAttribute('aria-label', 'Notices');
    notices.hidden = true;
    const meta = el('div', 'msg-meta');
    node.append(who, bubble, notices, meta);
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
    const retry = el('button', 'link-btn reply-retry', 'Retry');
    retry.type = 'button';
    retry.setAttribute('aria-label', 'Ask again');
    retry.hidden = true;
    footer.append(status, retry, usage, copy, buildFeedback());
    node.append(who, tools, body, sources, notices, footer, ...buildCommentBox());
    return node;
  }

  /** Open the comment box under a reply (after a rating). */
  openComment(item) {
    const node = this.elements.get(item);
    if (node) openComment(node, item);
  }

  // --- rendering -----------------------------------------------------------

  _renderUser(node, item) {
    node.dataset.state = item.state;
    if (item.clientId) node.dataset.clientId = item.clientId;
    if (item.messageId) node.dataset.messageId = item.messageId;
    const bubble = node.querySelector('.msg-bubble');
    if (bubble.textContent !== item.text) bubble.textContent = item.text; // plain text, never HTML
    const notices = node.querySelector('.msg-user-notices');
    if (item.redacted) node.dataset.redacted = 'true';
    else delete node.dataset.redacted;
    if (item.redacted && !notices.firstChild) {
      notices.append(noticeChip({
        action: 'redacted',
        detail: 'Personal details were removed.',
      }));
    }
    notices.hidden = !item.redacted;
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
    const shown = replyNotices(item);
    if (notices.dataset.count !== String(shown.length)) {
      notices.dataset.count = String(shown.length);
      notices.replaceChildren(...shown.map(noticeChip));
      notices.hidden = shown.length === 0;
    }

    const status = node.querySelector('.msg-status');
    // A blocked reply's chip says what happened: no second, red line about it.
    const explained = item.status === 'blocked' && shown.some((notice) => notice.action === 'blocked');
    let label = item.final && !explained ? statusText(item.status) : item.stopRequested && !item.final ? 'Stopping…' : '';
    let warn = item.final && !explained && item.status !== 'complete' && item.status !== 'cancelled';
    if (item.error && item.status !== 'cancelled') {
      label = errorText(item.error.code, item.error.message); // e.g. the provider went away
      warn = true;
      status.dataset.code = item.error.code || '';
    }
    status.textContent = label;
    status.dataset.tone = warn ? 'warn' : '';
    // A reply that failed can be asked for again (the last one only: CSS hides the others).
    node.querySelector('.reply-retry').hidden = !(item.final && RETRYABLE.has(item.status) && item.prompt);

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
    // `final` is part of the key: a reply that ends without text loses its typing dots.
    const shown = idle ? '\u0000waiting' : `${item.text}\u0000${cited}\u0000${item.final}`;
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
