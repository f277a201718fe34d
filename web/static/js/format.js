// Small pure helpers: ids, dates, usage, readable errors.

/** A random UUID v4; works outside secure contexts (crypto.randomUUID does not). */
export function uuid4() {
  if (typeof crypto.randomUUID === 'function' && window.isSecureContext) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Length in code points, as the server counts it. */
export function charCount(text) {
  let n = 0;
  for (const _ of text) n += 1; // eslint-disable-line no-unused-vars
  return n;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekdayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullDayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const longFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

export function parseDate(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "14:05" today, "Yesterday", "Tue" this week, "12 Mar", "12 Mar 2024". */
export function shortDate(value, now = new Date()) {
  const date = parseDate(value);
  if (!date) return '';
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const day = 86_400_000;
  const t = date.getTime();
  if (t >= startOfToday) return timeFormat.format(date);
  if (t >= startOfToday - day) return 'Yesterday';
  if (t >= startOfToday - 6 * day) return weekdayFormat.format(date);
  if (date.getFullYear() === now.getFullYear()) return dayFormat.format(date);
  return fullDayFormat.format(date);
}

export function longDate(value) {
  const date = parseDate(value);
  return date ? longFormat.format(date) : '';
}

function formatCost(cost) {
  if (cost === 0) return '$0';
  if (cost < 0.0001) return '<$0.0001';
  if (cost < 1) return `$${Number(cost.toPrecision(2))}`;
  return `$${cost.toFixed(2)}`;
}

/**
 * "412 tokens · $0.0003"; "~412 tokens · ~$0.0003" when estimated.
 * Returns { text, title } or null when there is nothing to show.
 */
export function formatUsage(usage) {
  if (!usage || typeof usage !== 'object') return null;
  const total = Number.isFinite(usage.total_tokens)
    ? usage.total_tokens
    : (Number(usage.prompt_tokens) || 0) + (Number(usage.completion_tokens) || 0);
  if (!total && usage.cost_usd == null) return null;
  const approx = usage.estimated ? '~' : '';
  const parts = [`${approx}${total.toLocaleString()} token${total === 1 ? '' : 's'}`];
  if (Number.isFinite(usage.cost_usd)) parts.push(`${approx}${formatCost(usage.cost_usd)}`);
  const title = [
    Number.isFinite(usage.prompt_tokens) ? `Prompt: ${usage.prompt_tokens.toLocaleString()} tokens` : null,
    Number.isFinite(usage.completion_tokens) ? `Reply: ${usage.completion_tokens.toLocaleString()} tokens` : null,
    Number.isFinite(usage.cost_usd) ? `Cost: $${usage.cost_usd}` : null,
    usage.estimated ? 'Estimated (the provider did not report usage)' : null,
  ].filter(Boolean).join('\n');
  return { text: parts.join(' · '), title };
}

const ERROR_TEXT = {
  bad_request: 'The server could not understand that request.',
  unauthorized: 'Your session has expired. Please sign in again.',
  forbidden: "You don't have access to that.",
  not_found: 'That conversation no longer exists.',
  too_large: 'That message is too long to send.',
  rate_limited: "You're sending messages too quickly. Wait a moment and try again.",
  unknown_agent: 'That agent is no longer available. Pick another one.',
  busy: 'A reply is still being written. Wait for it to finish, or stop it first.',
  budget_exceeded: "You've reached your usage budget, so no new replies can start for now.",
  upstream_unavailable: 'The model provider is unavailable right now. Try again in a moment.',
  conflict: 'That conflicts with the current state. Reload and try again.',
  internal: 'Something went wrong on the server.',
  network: "Can't reach the server. Check your connection.",
};

// Codes whose sentence says all a user can act on: the server's own message for
// them repeats it in other words ("The language model is unavailable; try again shortly.").
const SELF_EXPLANATORY = new Set([
  'unauthorized', 'not_found', 'rate_limited', 'busy', 'budget_exceeded', 'upstream_unavailable',
  'internal', 'network',
]);

/** A readable sentence for an error code, plus the server's own message when it adds something. */
export function errorText(code, message) {
  const base = ERROR_TEXT[code] || 'Something went wrong.';
  const extra = typeof message === 'string' ? message.trim() : '';
  if (!extra || extra === base || SELF_EXPLANATORY.has(code) || extra.length > 300) return base;
  return `${base} (${extra})`;
}

const CONFIRM_ERROR_TEXT = {
  conflict: 'That step was already answered, or it stopped waiting.',
  not_found: 'That reply is no longer running.',
};

/** A readable sentence for an error answering a tool call's confirmation. */
export function confirmErrorText(code, message) {
  return CONFIRM_ERROR_TEXT[code] || errorText(code, message);
}

const STATUS_TEXT = {
  cancelled: 'Stopped',
  failed: 'The reply failed before it finished.',
  blocked: 'This reply was blocked by a content rule.',
  interrupted: 'The reply was interrupted.',
};

export function statusText(status) {
  return STATUS_TEXT[status] || '';
}

const NOTICE_LABEL = {
  redacted: 'Redacted',
  blocked: 'Blocked',
  replaced: 'Replaced',
  disclaimer: 'Disclaimer',
  handoff: 'Handed to a person',
  escalated: 'Escalated',
  flagged: 'Flagged',
  truncated: 'Shortened',
};

const TOOL_STATUS = {
  awaiting_confirmation: 'Waiting for your approval',
  running: 'Running…',
  ok: 'Done',
  error: 'Failed',
  refused: 'Not allowed',
  declined: 'Declined',
  interrupted: 'Interrupted',
};

export function toolStatusText(status) {
  return TOOL_STATUS[status] || String(status || '');
}

// What a notice means, in plain words, where the server's detail is rule jargon
// ("ended the turn with its reply"); other notices show the server's detail.
const NOTICE_EXPLAINED = {
  blocked: "The assistant doesn't help with this topic.",
  replaced: 'Reworded to follow this service’s guidelines.',
  escalated: 'Flagged for a person to look at.',
  flagged: 'Flagged for review.',
  truncated: 'Cut short at the length limit.',
};

/** The words shown after a notice's label (never a rule's id). */
export function noticeDetail(notice) {
  return NOTICE_EXPLAINED[notice.action] || String(notice.detail || '');
}

// Under a reply in the chat, for its user: what happened, not what the rule did.
const USER_NOTICE_LABEL = { blocked: 'Standard answer' };

/** A notice's label in the chat (the operator console keeps the rules' terms: noticeLabel). */
export function userNoticeLabel(action) {
  return USER_NOTICE_LABEL[action] || noticeLabel(action);
}

export function noticeLabel(action) {
  if (NOTICE_LABEL[action]) return NOTICE_LABEL[action];
  const text = String(action || 'notice').replace(/[_-]+/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => Array.from(w)[0] || '');
  return (letters.join('') || '?').toUpperCase();
}

/**
 * A title as plain text: Markdown a model (or a person) wrote in it is dropped,
 * e.g. "## **Router** `reset`" -> "Router reset". Never HTML: shown with textContent.
 */
export function plainTitle(text) {
  return String(text ?? '')
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1') // images: their alt text
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // links: their text
    .replace(/^\s{0,3}(?:#{1,6}\s+|>\s*|[-*+]\s+|\d{1,9}[.)]\s+)/gm, '') // headings, quotes, lists
    .replace(/\s+#+\s*$/gm, '') // closing hashes of a heading
    .replace(/(\*\*|\*|~~|`+)(\S(?:.*?\S)?)\1/g, '$2') // emphasis, strike, code
    .replace(/(^|[^\w])(__|_)(\S(?:.*?\S)?)\2(?=[^\w]|$)/g, '$1$3') // _emphasis_, not snake_case
    .replace(/(?:^|\s)(?:\*\*|__|~~|`+)(?=\s|$)/g, ' ') // stray markers
    .replace(/\s+/g, ' ')
    .trim();
}

/** First line of a message, trimmed, as a provisional conversation title. */
export function provisionalTitle(text) {
  const line = plainTitle(String(text || '').trim().split('\n')[0]);
  const chars = Array.from(line);
  return chars.length > 60 ? `${chars.slice(0, 57).join('')}…` : line || 'New conversation';
}
