// What the message list is made of: a view (the conversation on screen) and its
// items (user messages and agent replies), built from live frames or stored history.
// Plain data and pure functions; nothing here touches the DOM or the socket.

import { uuid4 } from './format.js';

export const FINAL_STATUSES = new Set(['complete', 'cancelled', 'failed', 'blocked', 'interrupted']);

export function newView({ conversationId = null, agentId = null } = {}) {
  return {
    key: Symbol('view'), // identity: the message list is cleared when the key changes
    conversationId,
    agentId,
    sessionId: null,
    agent: null,
    title: null,
    attached: false,
    starting: null, // 'session' | 'conversation' | 'agent' while a start is in flight
    startRetryTimer: null,
    items: [],
    byClient: new Map(),
    byReply: new Map(),
    restHistory: null,
    sessionHistory: null,
    handoff: { state: 'none', by: null }, // none | waiting | taken | released
  };
}

export function userItem(text) {
  return {
    kind: 'user', clientId: uuid4(), messageId: null, text, state: 'pending', sendCount: 0, error: null,
    redacted: false,
  };
}

export function replyItem(replyId) {
  return {
    kind: 'assistant', replyId, messageId: null, text: '', seq: 0, status: 'streaming', final: false,
    notices: new Map(), usage: null, stopRequested: false, awaitingResume: false,
    error: null, tools: new Map(), author: null, feedback: null, sources: [], prompt: null,
  };
}

/** The key a notice is known by: the server repeats notices after a resume. */
export function noticeKey(notice) {
  return JSON.stringify([notice.rule ?? '', notice.action ?? '']);
}

/**
 * The notices shown under a reply. A redaction of the user's own message is shown
 * under that message (its `redacted` flag), not again under the reply.
 */
export function replyNotices(item) {
  const prompt = item.prompt;
  return Array.from(item.notices.values()).filter((notice) => !(
    notice.action === 'redacted' && prompt && prompt.redacted
    && typeof notice.detail === 'string' && notice.detail && prompt.text.includes(notice.detail)
  ));
}

// Same-origin source viewer addresses only: anything else in a frame is ignored.
const SOURCE_URI = /^\/v1\/conversations\/[A-Za-z0-9-]{1,64}\/sources\/\d{1,18}$/;

/** A reply's knowledge sources, from a `sources` frame or a stored message. */
export function sourcesOf(list) {
  const sources = [];
  for (const source of Array.isArray(list) ? list : []) {
    if (!source || !Number.isInteger(source.n) || typeof source.uri !== 'string') continue;
    if (!SOURCE_URI.test(source.uri)) continue;
    sources.push({
      n: source.n, title: String(source.title ?? ''), uri: source.uri,
      snippet: String(source.snippet ?? ''),
    });
  }
  return sources;
}

/** A reply's tool steps by call id, from a stored message's `tool_calls`. */
export function toolSteps(calls) {
  const steps = new Map();
  for (const call of Array.isArray(calls) ? calls : []) {
    if (!call || typeof call.call_id !== 'string') continue;
    steps.set(call.call_id, {
      callId: call.call_id, tool: String(call.tool ?? ''), arguments: call.arguments ?? {},
      status: String(call.status ?? ''), summary: String(call.summary ?? ''), answering: false,
    });
  }
  return steps;
}

export function historyItem(message) {
  if (message.role === 'user') {
    return {
      kind: 'user', clientId: null, messageId: message.id, text: String(message.content ?? ''),
      state: 'accepted', sendCount: 0, error: null, fromHistory: true, createdAt: message.created_at,
      redacted: message.redacted === true,
    };
  }
  // A reply still being written: shown live and resumed from the start once
  // the session is attached (its position in the stream is unknown: seq null).
  const live = !FINAL_STATUSES.has(message.status) && !!message.reply_id;
  return {
    kind: 'assistant', replyId: message.reply_id || null, messageId: message.id,
    text: String(message.content ?? ''), seq: null,
    status: live ? 'streaming' : message.status || 'complete', final: !live,
    notices: new Map((message.notices || []).map((n) => [noticeKey(n), n])),
    usage: message.usage || null, stopRequested: false, awaitingResume: false,
    error: null, fromHistory: true, createdAt: message.created_at, tools: toolSteps(message.tool_calls),
    author: message.author || null, feedback: message.feedback || null,
    sources: sourcesOf(message.sources), prompt: null,
  };
}

/** REST history (possibly longer) overlaid with the session's (possibly fresher) copy. */
export function mergeHistory(base, overlay) {
  if (!base) return overlay || [];
  if (!overlay) return base;
  const out = base.slice();
  const index = new Map(out.map((m, i) => [m.id, i]));
  for (const m of overlay) {
    if (index.has(m.id)) {
      const i = index.get(m.id);
      out[i] = { ...out[i], ...m, usage: m.usage ?? out[i].usage };
    } else {
      index.set(m.id, out.length);
      out.push(m);
    }
  }
  return out;
}

/** Every reply points at the user message it answers (the one before it). */
export function linkPrompts(items) {
  let prompt = null;
  for (const item of items) {
    if (item.kind === 'user') prompt = item;
    else if (!item.prompt) item.prompt = prompt;
  }
}
