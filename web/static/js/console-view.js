// DOM for the operator console: queue and review entries, and a conversation's
// transcript. Everything users, models and operators wrote is untrusted: user
// text is set with textContent, replies go through the same sanitising Markdown
// pipeline as in the chat (markdown.js), names and reasons are text.
//
// Test hooks:
//   #queue li.queue-item[data-conversation-id][data-state="waiting"|"taken"], opened by .queue-open
//   #review-list li.review-item[data-conversation-id][data-state], opened by .queue-open
//   #transcript article.console-msg[data-role="user"|"assistant"][data-author-kind="agent"|"operator"|"user"]
//     [data-message-id][data-status]; text in .console-msg-body

import { renderMarkdown } from './markdown.js';
import { longDate, noticeLabel, shortDate } from './format.js';

const TRIGGERS = {
  rule: 'Escalation rule',
  tool: 'The agent asked for a person',
  user: 'The user asked for a person',
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function time(value) {
  const node = el('time', 'console-time', shortDate(value));
  if (value) {
    node.dateTime = value;
    node.title = longDate(value);
  }
  return node;
}

/** "Escalation rule security_incident: possible security incident" */
export function describeTrigger(trigger, rule, reason) {
  const what = TRIGGERS[trigger] || 'Asked for a person';
  const which = trigger === 'rule' && rule ? ` ${rule}` : '';
  const said = String(reason || '').trim();
  const same = said.toLowerCase() === what.toLowerCase(); // the default reason says nothing more
  return said && !same ? `${what}${which}: ${said}` : `${what}${which}`;
}

/** Who holds the conversation, in words. */
export function describeState(handoff) {
  if (!handoff || handoff.state === 'none') return 'With the agent';
  if (handoff.state === 'waiting') return 'Waiting for a person';
  const name = (handoff.by && handoff.by.name) || 'an operator';
  return handoff.takenByMe ? 'You are replying' : `Taken over by ${name}`;
}

function entry(conversation, { className, selected, lines }) {
  const li = el('li', className);
  li.dataset.conversationId = conversation.id;
  li.dataset.state = conversation.handoff ? conversation.handoff.state : 'none';
  const open = el('button', 'queue-open');
  open.type = 'button';
  if (selected) open.setAttribute('aria-current', 'true');
  const top = el('span', 'queue-top');
  top.append(el('span', 'queue-title', conversation.title || 'Untitled conversation'), time(conversation.requested_at || conversation.updated_at));
  open.append(top);
  for (const [name, text] of lines) if (text) open.append(el('span', name, text));
  li.append(open);
  return li;
}

export function renderQueue(list, items, selectedId) {
  list.replaceChildren(...items.map((item) => {
    const owner = item.owner ? item.owner.name || item.owner.id : '';
    return entry(item, {
      className: 'queue-item',
      selected: item.id === selectedId,
      lines: [
        ['queue-meta', [owner, item.agent_id, describeState(item.handoff)].filter(Boolean).join(' · ')],
        ['queue-reason', item.trigger ? describeTrigger(item.trigger, item.rule, item.reason) : ''],
        ['queue-last', item.last_user_message ? `“${item.last_user_message}”` : ''],
      ],
    });
  }));
}

export function renderReviewList(list, items, selectedId, { append = false } = {}) {
  const nodes = items.map((item) => {
    const votes = item.feedback ? `${item.feedback.up} up · ${item.feedback.down} down` : '';
    const owner = item.owner ? item.owner.name || item.owner.id : '';
    return entry(item, {
      className: 'review-item',
      selected: item.id === selectedId,
      lines: [
        ['queue-meta', [owner, item.agent_id, describeState(item.handoff)].filter(Boolean).join(' · ')],
        ['queue-reason', `${item.message_count} messages · ${votes}`],
      ],
    });
  });
  if (append) list.append(...nodes);
  else list.replaceChildren(...nodes);
}

function messageNode(message, agentName) {
  const role = message.role === 'user' ? 'user' : 'assistant';
  const operator = message.author && message.author.kind === 'operator';
  const node = el('article', `console-msg console-msg-${role}`);
  node.dataset.role = role;
  node.dataset.authorKind = role === 'user' ? 'user' : operator ? 'operator' : 'agent';
  node.dataset.messageId = message.id;
  node.dataset.status = message.status || '';
  const head = el('div', 'console-msg-head');
  const who = role === 'user' ? 'User' : operator ? `${message.author.name} (operator)` : agentName;
  head.append(el('span', 'console-msg-author', who), time(message.created_at));
  if (message.status && !['complete', 'accepted'].includes(message.status)) {
    head.append(el('span', 'console-msg-status', message.status));
  }
  const body = el('div', 'console-msg-body');
  if (role === 'user') body.textContent = String(message.content ?? '');
  else body.append(renderMarkdown(String(message.content ?? '')));
  node.append(head, body);
  for (const call of message.tool_calls || []) {
    node.append(el('p', 'console-msg-tool', `Tool ${call.tool}: ${call.status}${call.summary ? ` · ${call.summary}` : ''}`));
  }
  if (Array.isArray(message.notices) && message.notices.length) {
    const chips = el('ul', 'msg-notices');
    for (const notice of message.notices) {
      const chip = el('li', 'notice-chip');
      chip.dataset.action = String(notice.action || 'notice');
      chip.append(el('span', 'notice-label', noticeLabel(notice.action)));
      if (notice.detail) chip.append(el('span', 'notice-detail', String(notice.detail)));
      chips.append(chip);
    }
    node.append(chips);
  }
  if (message.feedback) {
    const rating = message.feedback.rating === 'up' ? 'helpful' : 'not helpful';
    const comment = message.feedback.comment ? ` — “${message.feedback.comment}”` : '';
    const line = el('p', 'console-msg-feedback', `User feedback: ${rating}${comment}`);
    line.dataset.rating = message.feedback.rating;
    node.append(line);
  }
  return node;
}

/** The transcript, rebuilt; keeps the reader's scroll position unless they were at the end. */
export function renderTranscript(box, messages, agentName) {
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  box.replaceChildren(...messages.map((message) => messageNode(message, agentName)));
  if (atEnd) box.scrollTop = box.scrollHeight;
}
