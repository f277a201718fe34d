// Rebuilding a view's items from stored history (REST and/or the session
// frame) plus whatever only exists locally (unaccepted messages, running
// replies, replies newer than the history). Item objects are reused so their
// DOM survives. Pure data: the controller renders and resumes afterwards.

import { FINAL_STATUSES, historyItem, linkPrompts, mergeHistory, sourcesOf, toolSteps } from './items.js';

/** Rebuild `view.items` in place; returns the reused items whose content changed. */
export function rebuildItems(view) {
  const merged = mergeHistory(view.restHistory, view.sessionHistory);
  const hasLive = view.items.some((i) => i.kind === 'assistant' && !i.final);
  const byMessage = new Map();
  const byReply = new Map();
  for (const item of view.items) {
    if (item.messageId) byMessage.set(item.messageId, item);
    if (item.replyId) byReply.set(item.replyId, item);
  }
  // For histories without reply ids: live replies by the id of the user
  // message they answer. The history's copy of such a reply (partial, or
  // finished while we were away) is shown by the live bubble, which resumes
  // and finishes it.
  const liveByPrompt = new Map();
  let prompt = null;
  for (const item of view.items) {
    if (item.kind === 'user') prompt = item.messageId;
    else if (!item.final && item.replyId && prompt) liveByPrompt.set(prompt, item);
  }
  const historyItems = [];
  const seen = new Set();
  const changed = [];
  let lastUserId = null;
  for (const message of merged) {
    if (!message || (message.role !== 'user' && message.role !== 'assistant') || seen.has(message.id)) continue;
    if (message.role === 'user') {
      lastUserId = message.id;
    } else if (!message.reply_id) {
      if (lastUserId && liveByPrompt.has(lastUserId)) {
        liveByPrompt.delete(lastUserId);
        continue;
      }
      if (!FINAL_STATUSES.has(message.status) && hasLive) continue; // partial copy of a live reply
    }
    let item = byMessage.get(message.id) || (message.reply_id && byReply.get(message.reply_id));
    if (item) {
      if (item.kind === 'assistant') {
        if (!item.messageId) item.messageId = message.id;
        if (!item.replyId && message.reply_id) item.replyId = message.reply_id;
        const text = String(message.content ?? '');
        // A live bubble is authoritative until its `done`; a finished one
        // takes the stored text and status (rules may have rewritten it).
        if (item.final && FINAL_STATUSES.has(message.status)
            && (item.text !== text || item.status !== message.status)) {
          item.text = text;
          item.status = message.status;
          changed.push(item);
        }
        if (message.usage && !item.usage) {
          item.usage = message.usage;
          changed.push(item);
        }
        if (item.final && Array.isArray(message.sources) && !item.sources.length) {
          item.sources = sourcesOf(message.sources);
          if (item.sources.length) changed.push(item);
        }
        if (item.final && Array.isArray(message.tool_calls) && message.tool_calls.length && !item.tools.size) {
          item.tools = toolSteps(message.tool_calls);
          changed.push(item);
        }
        if ((message.author && !item.author) || (message.feedback && !item.feedback)) {
          item.author = item.author || message.author;
          item.feedback = item.feedback || message.feedback;
          changed.push(item);
        }
      } else if (message.redacted === true && !item.redacted) {
        // Shown as typed until now: the stored copy has the redactions.
        item.text = String(message.content ?? item.text);
        item.redacted = true;
        changed.push(item);
      }
      item.fromHistory = true;
    } else {
      item = historyItem(message);
    }
    seen.add(message.id);
    historyItems.push(item);
  }
  const kept = new Set(historyItems);
  const local = view.items.filter((i) => !kept.has(i) && !i.fromHistory && !(i.messageId && seen.has(i.messageId)));
  view.items = [...historyItems, ...local];
  view.byClient = new Map();
  view.byReply = new Map();
  for (const item of view.items) {
    if (item.clientId) view.byClient.set(item.clientId, item);
    if (item.replyId) view.byReply.set(item.replyId, item);
  }
  linkPrompts(view.items);
  return [...new Set(changed)];
}
