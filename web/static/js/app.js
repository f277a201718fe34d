// Parley chat UI: screens, sidebar, agent picker, composer and wiring between
// the REST client, the reconnecting socket and the chat controller.
//
// Test hooks on <body>: data-screen (loading|signin|app), data-connection
// (open|connecting|closed), data-session (none|pending|ready), data-busy
// (true|false). #chat carries data-view (new|conversation) and
// data-conversation-id. See docs/ui.md for the full list.

import { api } from './api.js';
import { ReconnectingSocket } from './socket.js';
import { ChatController } from './chat.js';
import { MessageView } from './view.js';
import { charCount, errorText, initials, longDate, shortDate } from './format.js';
import { handoffAnnouncement, renderHandoff } from './handoff.js';
import { startRename } from './rename.js';

const $ = (id) => document.getElementById(id);
const body = document.body;
const config = {
  devLogin: body.dataset.devLogin === 'true',
  maxChars: Number.parseInt(body.dataset.maxMessageChars || '0', 10) || 0,
};
const KEYS = { conversation: 'parley.conversation', agent: 'parley.agent' };
const narrow = window.matchMedia('(max-width: 767px)');

const state = {
  user: null,
  agents: [],
  agentsById: new Map(),
  conversations: [],
  socket: null,
  controller: null,
  listTimer: null,
  bannerTimer: null,
  bootAttempt: 0,
  shownViewKey: null,
  announcedFailures: new WeakSet(),
  pendingDelete: null,
  wasOpen: false,
};

// --- storage (UI prefs only; never tokens or message text) ------------------

function stored(area, key) {
  try {
    return window[area].getItem(key);
  } catch {
    return null;
  }
}

function store(area, key, value) {
  try {
    if (value === null || value === undefined) window[area].removeItem(key);
    else window[area].setItem(key, value);
  } catch {
    /* storage disabled: fine */
  }
}

// --- small DOM helpers ----------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function icon(d, size = 16) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '2');
  path.setAttribute('stroke-linecap', 'round');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}

const TRASH = 'M4 7h16M10 11v6M14 11v6M6 7l1 12a2 2 0 0 0 2 2h6a2 2 0 0 0 2-2l1-12M9 7V4h6v3';
const PENCIL = 'M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4';

function showScreen(name) {
  body.dataset.screen = name;
  $('loading-screen').hidden = name !== 'loading';
  $('signin-screen').hidden = name !== 'signin';
  $('app-screen').hidden = name !== 'app';
}

function showBanner(text) {
  $('banner-text').textContent = text;
  $('banner').hidden = false;
  clearTimeout(state.bannerTimer);
  state.bannerTimer = setTimeout(hideBanner, 12_000);
}

function hideBanner() {
  clearTimeout(state.bannerTimer);
  $('banner').hidden = true;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el('textarea', 'visually-hidden');
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

function flash(button, text) {
  const before = button.textContent;
  button.textContent = text;
  setTimeout(() => { button.textContent = before; }, 1500);
}

// --- message view & controller ----------------------------------------------

const messageView = new MessageView({
  list: $('messages'),
  scroller: $('scroller'),
  jumpButton: $('jump-latest'),
  live: $('reply-live'),
  agentName: () => currentAgent()?.name || 'Assistant',
  connected: () => body.dataset.connection === 'open',
});

const ui = {
  setItems(view, items) {
    if (!state.controller || view !== state.controller.view) return;
    if (state.shownViewKey !== view.key) {
      state.shownViewKey = view.key;
      messageView.clear();
    }
    messageView.setItems(items);
    updateChrome();
  },
  update(item, what) {
    messageView.update(item, what);
    if (item.kind === 'user' && item.state === 'failed' && !state.announcedFailures.has(item)) {
      state.announcedFailures.add(item);
      const code = item.error?.code;
      messageView.announce(code === 'withdrawn' ? 'Message not sent.' : `Message not sent. ${errorText(code, item.error?.message)}`);
    }
  },
  busyChanged() {
    updateComposer();
  },
  sessionState(view) {
    if (!state.controller || view !== state.controller.view) return;
    body.dataset.session = view.attached ? 'ready' : view.starting ? 'pending' : 'none';
    updateChrome();
  },
  session(view, { created }) {
    store('sessionStorage', KEYS.conversation, view.conversationId);
    if (view.agent && view.agent.id && !view.agentId) view.agentId = view.agent.id;
    if (created || !state.conversations.some((c) => c.id === view.conversationId)) {
      const now = new Date().toISOString();
      upsertConversation({
        id: view.conversationId,
        title: view.title || 'New conversation',
        agent_id: view.agentId,
        created_at: now,
        updated_at: now,
        message_count: view.items.length,
      }, { front: true });
    }
    updateChrome();
  },
  conversationInfo(view, conversation) {
    if (conversation.title) view.title = conversation.title;
    if (conversation.agent_id && !view.agentId) view.agentId = conversation.agent_id;
    if (state.conversations.some((c) => c.id === conversation.id)) upsertConversation(conversation);
    updateChrome();
  },
  conversationGone(view) {
    store('sessionStorage', KEYS.conversation, null);
    state.conversations = state.conversations.filter((c) => c.id !== view.conversationId);
    renderConversations();
    showBanner(errorText('not_found'));
    startNewConversation({ focus: false });
  },
  replyDone(view, item) {
    const node = document.querySelector(`article.msg-assistant[data-reply-id="${CSS.escape(item.replyId || '')}"] .msg-body`);
    const text = node ? node.textContent.trim() : item.text;
    const note = item.status === 'complete' ? '' : ` (${item.status === 'cancelled' ? 'stopped' : item.status})`;
    messageView.announce(`${currentAgent()?.name || 'Assistant'} replied${note}: ${text.slice(0, 4000)}`);
    scheduleConversationRefresh();
  },
  error(code, message) {
    showBanner(code ? errorText(code, message) : String(message || ''));
  },
  handoff(view) {
    if (!state.controller || view !== state.controller.view) return;
    updateHandoff();
    const said = handoffAnnouncement(view.handoff, agentLabel());
    if (said) messageView.announce(said);
  },
  authExpired() {
    sessionExpired();
  },
};

function currentView() {
  return state.controller ? state.controller.view : null;
}

function agentLabel() {
  return currentAgent()?.name || 'the assistant';
}

function updateHandoff() {
  const parts = { strip: $('handoff-status'), text: $('handoff-text'), button: $('handoff-button'), input: $('message-input') };
  renderHandoff(parts, currentView(), agentLabel());
}

function currentAgent() {
  const view = currentView();
  if (!view) return null;
  const id = (view.agent && view.agent.id) || view.agentId
    || state.conversations.find((c) => c.id === view.conversationId)?.agent_id;
  return state.agentsById.get(id) || (view.agent && view.agent.name ? view.agent : null);
}

// --- chrome: header, loading, composer ----------------------------------------

function updateChrome() {
  const view = currentView();
  const chat = $('chat');
  if (!view) return;
  const isNew = !view.conversationId && view.items.length === 0;
  chat.dataset.view = isNew ? 'new' : 'conversation';
  if (view.conversationId) chat.dataset.conversationId = view.conversationId;
  else delete chat.dataset.conversationId;
  $('welcome').hidden = !isNew;
  $('messages-loading').hidden = !(view.conversationId && view.items.length === 0 && !view.attached);

  const listed = state.conversations.find((c) => c.id === view.conversationId);
  const title = (listed && listed.title) || view.title || (view.conversationId ? 'Conversation' : 'New conversation');
  $('chat-title').textContent = title;
  document.title = `${title} · Parley`;

  const agent = currentAgent();
  const parts = [];
  if (agent) {
    parts.push(agent.name);
    const personality = agent.personality;
    if (personality && typeof personality === 'object') {
      parts.push([personality.name, personality.tone].filter(Boolean).join(', '));
    }
    if (agent.domain && agent.domain.name) parts.push(agent.domain.name);
  }
  $('chat-agent').textContent = parts.filter(Boolean).join(' · ');
  messageView.refreshAuthors();
  updateHandoff();

  for (const button of document.querySelectorAll('#conversation-list .conv-open')) {
    const current = button.closest('li').dataset.conversationId === view.conversationId;
    if (current) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  updateComposer();
}

function updateComposer() {
  const controller = state.controller;
  if (!controller) return;
  const input = $('message-input');
  const busy = controller.isBusy();
  const view = controller.view;
  body.dataset.busy = String(busy);
  const count = charCount(input.value);
  const tooLong = config.maxChars > 0 && count > config.maxChars;
  const haveAgent = !!(view.conversationId || view.sessionId || view.agentId);
  $('send-button').disabled = busy || tooLong || !input.value.trim() || !haveAgent;
  $('send-button').hidden = busy;
  $('stop-button').hidden = !busy;
  const counter = $('composer-count');
  if (config.maxChars > 0 && count > config.maxChars * 0.8) {
    counter.hidden = false;
    counter.textContent = `${count.toLocaleString()} / ${config.maxChars.toLocaleString()}`;
    counter.dataset.over = String(tooLong);
  } else {
    counter.hidden = true;
  }
}

const fieldSizing = window.CSS && CSS.supports && CSS.supports('field-sizing', 'content');

function autosize() {
  if (fieldSizing) return;
  const input = $('message-input');
  input.style.height = 'auto'; // CSSOM, not a style attribute: allowed by the CSP
  input.style.height = `${Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
}

function focusComposer() {
  if (!narrow.matches) $('message-input').focus({ preventScroll: true });
}

function submitMessage() {
  const controller = state.controller;
  const input = $('message-input');
  if (!controller || controller.isBusy()) return;
  const text = input.value.replace(/^\s*\n/, '').trimEnd();
  if (!text.trim()) return;
  if (config.maxChars > 0 && charCount(text) > config.maxChars) {
    showBanner(errorText('too_large', `The limit is ${config.maxChars.toLocaleString()} characters.`));
    return;
  }
  if (!controller.send(text)) {
    if (!controller.view.agentId && !controller.view.conversationId) showBanner('Pick an agent first.');
    return;
  }
  input.value = '';
  autosize();
  updateComposer();
  messageView.scrollToBottom();
}

// --- connection indicator ---------------------------------------------------

let lastConnectionText = '';

function renderConnection({ state: socketState, retryAt, enabled, online }) {
  body.dataset.connection = socketState === 'open' ? 'open' : socketState === 'connecting' ? 'connecting' : 'closed';
  const box = $('connection-status');
  let text;
  let countdown = '';
  if (socketState === 'open') text = 'Connected';
  else if (socketState === 'connecting') text = 'Connecting…';
  else if (!enabled) text = 'Disconnected';
  else if (!online) text = 'Offline';
  else if (retryAt) {
    text = 'Reconnecting';
    countdown = `in ${Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))}s`;
  } else text = 'Disconnected';
  box.dataset.state = socketState === 'open' ? 'open' : socketState === 'connecting' ? 'connecting' : 'closed';
  if (text !== lastConnectionText) {
    $('connection-text').textContent = text; // role=status: announced only when it changes
    lastConnectionText = text;
  }
  $('connection-countdown').textContent = countdown;
  messageView.refreshPending();
  $('reconnect-now').hidden = !(socketState === 'closed' && enabled && state.user);
}

// --- sign-in / sign-out -----------------------------------------------------

function showSignin(message) {
  showScreen('signin');
  body.dataset.connection = 'closed';
  const error = $('signin-error');
  error.textContent = message || '';
  error.hidden = !message;
  const field = $('signin-name') || $('signin-token');
  if (field) field.focus();
}

async function onSigninSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = $('signin-submit');
  const error = $('signin-error');
  error.hidden = true;
  let data;
  button.disabled = true;
  try {
    if (form.dataset.mode === 'dev') {
      const name = $('signin-name').value.trim();
      if (!name) {
        error.textContent = 'Enter a name to continue.';
        error.hidden = false;
        $('signin-name').focus();
        return;
      }
      data = await api.devLogin(name);
    } else {
      const field = $('signin-token');
      const token = field.value.trim().replace(/^Bearer\s+/i, '');
      if (!token) {
        error.textContent = 'Paste an access token to continue.';
        error.hidden = false;
        field.focus();
        return;
      }
      data = await api.tokenLogin(token);
      field.value = '';
    }
    const user = (data && data.user) || (await api.me()).user;
    enterApp(user);
  } catch (e) {
    error.textContent = e.code === 'unauthorized'
      ? (form.dataset.mode === 'dev' ? 'Sign-in was refused.' : 'That token was not accepted. Check that it is current and meant for this server.')
      : errorText(e.code, e.message);
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function sessionExpired() {
  if (body.dataset.screen === 'signin') return;
  if (state.socket) state.socket.stop();
  // The socket is gone: un-acknowledged messages go back to the outbox and are
  // re-sent (same client_id) after signing in again as the same user.
  if (state.controller) state.controller.onClose({ code: 1000 });
  showSignin('Your session has expired. Please sign in again.');
}

async function signOut() {
  teardown();
  store('sessionStorage', KEYS.conversation, null);
  state.user = null;
  showSignin('');
  $('signin-error').hidden = true;
  try {
    await api.signOut();
  } catch {
    /* the cookie may already be gone */
  }
}

function teardown() {
  if (state.socket) state.socket.stop(); // closes the WebSocket
  state.socket = null;
  state.controller = null;
  state.shownViewKey = null;
  clearTimeout(state.listTimer);
  messageView.clear();
  state.conversations = [];
  state.wasOpen = false;
  $('conversation-list').setAttribute('aria-busy', 'true');
  renderConversations();
  hideBanner();
  body.dataset.session = 'none';
  body.dataset.busy = 'false';
  body.dataset.connection = 'closed';
}

function enterApp(user) {
  const sameUser = state.user && user && state.user.id === user.id && state.controller;
  state.user = user;
  $('console-link').hidden = !(user && user.admin);
  $('user-name').textContent = user ? user.name : '';
  $('user-avatar').textContent = initials(user && user.name);
  showScreen('app');
  if (sameUser) {
    // Signed in again after the session expired: keep everything on screen,
    // including messages that were waiting to be sent.
    state.socket.start();
    refreshConversations();
    return;
  }
  teardown();
  state.user = user;
  const controller = new ChatController({ api, ui });
  state.controller = controller;
  const socket = new ReconnectingSocket(
    () => `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws`,
    {
      onOpen: (gen) => {
        if (state.wasOpen) scheduleConversationRefresh();
        state.wasOpen = true;
        controller.onOpen(gen);
      },
      onFrame: (frame) => controller.onFrame(frame),
      onClose: (info) => {
        controller.onClose(info);
        if (info.code === 1008 || (info.failedOpens > 0 && info.failedOpens % 3 === 0)) checkAuth(info.code);
        return true;
      },
      onState: renderConnection,
    },
  );
  state.socket = socket;
  controller.attachSocket(socket);
  loadAgents();
  refreshConversations();
  const saved = stored('sessionStorage', KEYS.conversation);
  if (saved) controller.openConversation(saved);
  else controller.openNew(stored('localStorage', KEYS.agent));
  socket.start();
  updateChrome();
  focusComposer();
}

async function checkAuth(code) {
  try {
    await api.me();
    if (code === 1008) showBanner('The server refused the live connection. Retrying…');
  } catch (e) {
    if (e.code === 'unauthorized') sessionExpired();
  }
}

// --- agents -----------------------------------------------------------------

async function loadAgents() {
  const picker = $('agent-picker');
  const status = $('agent-picker-status');
  status.textContent = 'Loading agents…';
  try {
    const data = await api.agents();
    state.agents = Array.isArray(data && data.agents) ? data.agents : [];
    state.agentsById = new Map(state.agents.map((a) => [a.id, a]));
    renderAgents();
  } catch (e) {
    if (e.code === 'unauthorized') return sessionExpired();
    const retry = el('button', 'link-btn', 'Try again');
    retry.type = 'button';
    retry.addEventListener('click', loadAgents);
    status.replaceChildren(el('span', '', `Couldn't load agents. ${errorText(e.code)} `), retry);
    picker.replaceChildren(picker.querySelector('legend'), status);
  }
  return undefined;
}

function selectedAgentId() {
  const checked = document.querySelector('#agent-picker input[name="agent"]:checked');
  return checked ? checked.value : stored('localStorage', KEYS.agent);
}

function renderAgents() {
  const picker = $('agent-picker');
  const legend = picker.querySelector('legend');
  const status = $('agent-picker-status');
  if (!state.agents.length) {
    status.textContent = 'No agents are available.';
    picker.replaceChildren(legend, status);
    return;
  }
  const view = currentView();
  const preferred = (view && view.agentId) || stored('localStorage', KEYS.agent);
  const selected = state.agentsById.has(preferred) ? preferred : state.agents[0].id;
  const cards = state.agents.map((agent, index) => {
    const label = el('label', 'agent-card');
    const input = el('input', 'agent-radio');
    input.type = 'radio';
    input.name = 'agent';
    input.value = agent.id;
    input.id = `agent-option-${index}`;
    input.checked = agent.id === selected;
    const text = el('span', 'agent-text');
    const top = el('span', 'agent-top');
    top.append(el('span', 'agent-avatar', initials(agent.name)), el('span', 'agent-name', agent.name || agent.id));
    text.append(top);
    const personality = agent.personality || {};
    const meta = [personality.name, personality.tone].filter(Boolean).join(' · ');
    if (meta) text.append(el('span', 'agent-personality', meta));
    if (agent.domain && agent.domain.name) text.append(el('span', 'agent-domain', agent.domain.name));
    if (agent.description) text.append(el('span', 'agent-desc', agent.description));
    label.append(input, text);
    return label;
  });
  status.textContent = '';
  picker.replaceChildren(legend, ...cards);
  if (state.controller) state.controller.setAgent(selected);
  updateChrome();
}

// --- conversations ----------------------------------------------------------

async function refreshConversations() {
  try {
    const data = await api.conversations();
    if (!state.controller) return;
    state.conversations = Array.isArray(data && data.conversations) ? data.conversations : [];
    // Keep an optimistic entry for the conversation on screen until the server lists it.
    const view = currentView();
    if (view && view.conversationId && !state.conversations.some((c) => c.id === view.conversationId) && view.items.length) {
      state.conversations.unshift({ id: view.conversationId, title: view.title, agent_id: view.agentId, updated_at: new Date().toISOString() });
    }
    $('conversation-list').setAttribute('aria-busy', 'false');
    renderConversations();
    updateChrome();
  } catch (e) {
    if (e.code === 'unauthorized') sessionExpired();
  }
}

function scheduleConversationRefresh() {
  clearTimeout(state.listTimer);
  state.listTimer = setTimeout(refreshConversations, 500);
}

function upsertConversation(conversation, { front = false } = {}) {
  const index = state.conversations.findIndex((c) => c.id === conversation.id);
  if (index === -1) {
    if (front) state.conversations.unshift(conversation);
    else state.conversations.push(conversation);
  } else {
    state.conversations[index] = { ...state.conversations[index], ...conversation };
  }
  renderConversations();
}

function renderConversations() {
  const list = $('conversation-list');
  const view = currentView();
  const items = state.conversations.map((conversation) => {
    const title = conversation.title || 'New conversation';
    const li = el('li', 'conv-item');
    li.dataset.conversationId = conversation.id;
    const open = el('button', 'conv-open');
    open.type = 'button';
    if (view && view.conversationId === conversation.id) open.setAttribute('aria-current', 'page');
    const when = conversation.updated_at || conversation.created_at;
    const time = el('time', 'conv-date', shortDate(when));
    if (when) {
      time.dateTime = when;
      time.title = longDate(when);
    }
    open.append(el('span', 'conv-title', title), time);
    const rename = el('button', 'icon-btn conv-rename');
    rename.type = 'button';
    rename.setAttribute('aria-label', `Rename conversation “${title}”`);
    rename.title = 'Rename';
    rename.append(icon(PENCIL));
    const remove = el('button', 'icon-btn conv-delete');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Delete conversation “${title}”`);
    remove.title = 'Delete';
    remove.append(icon(TRASH));
    li.append(open, rename, remove);
    return li;
  });
  list.replaceChildren(...items);
  $('conversation-empty').hidden = items.length > 0 || list.getAttribute('aria-busy') === 'true';
}

function openConversation(id) {
  const controller = state.controller;
  if (!controller) return;
  setSidebar(false);
  if (controller.view.conversationId === id) return;
  hideBanner();
  store('sessionStorage', KEYS.conversation, id);
  controller.openConversation(id);
  updateChrome();
  focusComposer();
}

function startNewConversation({ focus = true } = {}) {
  const controller = state.controller;
  if (!controller) return;
  store('sessionStorage', KEYS.conversation, null);
  controller.openNew(selectedAgentId());
  setSidebar(false);
  updateChrome();
  if (focus) focusComposer();
}

async function saveTitle(id, title) {
  try {
    const data = await api.renameConversation(id, title);
    upsertConversation(data.conversation);
    const view = currentView();
    if (view && view.conversationId === id) view.title = data.conversation.title;
    updateChrome();
    return true;
  } catch (e) {
    if (e.code === 'unauthorized') sessionExpired();
    else showBanner(errorText(e.code, e.message));
    return false;
  }
}

/** Rate a reply (REST); true once stored. A new rating replaces the old one, comment included. */
async function giveFeedback(item, rating, comment) {
  if (!item.messageId || item.feedbackPending) return false;
  item.feedbackPending = true;
  messageView.update(item, 'meta');
  try {
    const data = await api.feedback(item.messageId, rating, comment);
    item.feedbackPending = false;
    state.controller?.setFeedback(item.messageId, data.feedback);
    return true;
  } catch (e) {
    item.feedbackPending = false;
    messageView.update(item, 'meta');
    if (e.code === 'unauthorized') sessionExpired();
    else showBanner(errorText(e.code, e.message));
    return false;
  }
}

function confirmDelete(id) {
  const conversation = state.conversations.find((c) => c.id === id);
  const title = (conversation && conversation.title) || 'This conversation';
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = `“${title}” and all its messages will be deleted. This can't be undone.`;
  state.pendingDelete = id;
  dialog.returnValue = '';
  dialog.showModal();
}

async function onConfirmClose() {
  const dialog = $('confirm-dialog');
  const id = state.pendingDelete;
  state.pendingDelete = null;
  if (!id) return;
  const li = document.querySelector(`#conversation-list li[data-conversation-id="${CSS.escape(id)}"]`);
  const next = li && (li.nextElementSibling || li.previousElementSibling);
  if (dialog.returnValue !== 'ok') {
    li?.querySelector('.conv-delete')?.focus();
    return;
  }
  try {
    await api.deleteConversation(id);
  } catch (e) {
    if (e.code === 'unauthorized') return sessionExpired();
    if (e.code !== 'not_found') {
      showBanner(errorText(e.code, e.message));
      return;
    }
  }
  state.conversations = state.conversations.filter((c) => c.id !== id);
  renderConversations();
  if (currentView() && currentView().conversationId === id) startNewConversation({ focus: false });
  const target = next && document.querySelector(`#conversation-list li[data-conversation-id="${CSS.escape(next.dataset.conversationId)}"] .conv-open`);
  (target || $('new-chat')).focus();
  return undefined;
}

// --- sidebar (drawer below 768px) ---------------------------------------------

function setSidebar(open) {
  const isOpen = body.dataset.sidebar === 'open';
  body.dataset.sidebar = open ? 'open' : 'closed';
  $('sidebar-toggle').setAttribute('aria-expanded', String(open));
  $('sidebar-backdrop').hidden = !open;
  $('chat').inert = open && narrow.matches;
  if (open && !isOpen) $('new-chat').focus();
  if (!open && isOpen && narrow.matches && $('sidebar').contains(document.activeElement)) $('sidebar-toggle').focus();
}

// --- wiring -----------------------------------------------------------------

function wire() {
  $('signin-form')?.addEventListener('submit', onSigninSubmit);
  $('signout').addEventListener('click', signOut);
  $('new-chat').addEventListener('click', () => startNewConversation());
  $('sidebar-toggle').addEventListener('click', () => setSidebar(body.dataset.sidebar !== 'open'));
  $('sidebar-close').addEventListener('click', () => setSidebar(false));
  $('sidebar-backdrop').addEventListener('click', () => setSidebar(false));
  narrow.addEventListener('change', () => setSidebar(false));
  $('banner-close').addEventListener('click', hideBanner);
  $('reconnect-now').addEventListener('click', () => state.socket && (state.socket.enabled ? state.socket.reconnectNow() : state.socket.start()));
  $('confirm-dialog').addEventListener('close', onConfirmClose);

  $('conversation-list').addEventListener('click', (event) => {
    const li = event.target.closest('li.conv-item');
    if (!li) return;
    if (event.target.closest('.conv-delete')) confirmDelete(li.dataset.conversationId);
    else if (event.target.closest('.conv-rename')) {
      const id = li.dataset.conversationId;
      const title = state.conversations.find((c) => c.id === id)?.title || '';
      startRename(li, title, (wanted) => saveTitle(id, wanted), renderConversations);
    } else if (event.target.closest('.conv-open')) openConversation(li.dataset.conversationId);
  });

  $('agent-picker').addEventListener('change', (event) => {
    if (event.target.name !== 'agent') return;
    store('localStorage', KEYS.agent, event.target.value);
    state.controller?.setAgent(event.target.value);
    updateChrome();
  });

  const input = $('message-input');
  input.addEventListener('input', () => {
    autosize();
    updateComposer();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.shiftKey || event.altKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    submitMessage();
  });
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    submitMessage();
  });
  $('stop-button').addEventListener('click', () => {
    state.controller?.stop();
    input.focus({ preventScroll: true });
  });

  $('messages').addEventListener('click', async (event) => {
    const target = event.target;
    const codeCopy = target.closest('.code-copy');
    if (codeCopy) {
      const pre = codeCopy.closest('.code-block')?.querySelector('pre');
      if (pre) flash(codeCopy, (await copyText(pre.textContent)) ? 'Copied' : 'Copy failed');
      return;
    }
    const item = messageView.itemFor(target);
    if (!item) return;
    if (target.closest('.msg-copy')) {
      flash(target.closest('.msg-copy'), (await copyText(item.text)) ? 'Copied' : 'Copy failed');
    } else if (target.closest('.msg-retry') && item.clientId) {
      state.controller?.retry(item.clientId);
    } else if (target.closest('.feedback-up, .feedback-down')) {
      const rating = target.closest('.feedback-up') ? 'up' : 'down';
      if (item.feedback?.rating !== rating) await giveFeedback(item, rating, null);
      if (rating === 'down') messageView.openComment(item); // what went wrong is worth asking
    } else if (target.closest('.feedback-comment-toggle')) {
      messageView.openComment(item);
    } else if (target.closest('.tool-approve, .tool-decline')) {
      const step = target.closest('.tool-step');
      const approve = !!target.closest('.tool-approve');
      if (step) state.controller?.confirm(item.replyId, step.dataset.callId, approve);
    }
  });

  $('messages').addEventListener('submit', async (event) => {
    const form = event.target.closest('.feedback-form');
    const item = form && messageView.itemFor(form);
    if (!item) return;
    event.preventDefault();
    const comment = form.querySelector('.feedback-comment').value.trim();
    if (await giveFeedback(item, item.feedback?.rating || 'down', comment || null)) {
      form.hidden = true;
      messageView.update(item, 'meta');
    }
  });

  $('handoff-button').addEventListener('click', () => {
    if (!state.controller?.requestHuman()) showBanner('Open a conversation first, then ask for a person.');
  });

  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || event.defaultPrevented) return;
    if ($('confirm-dialog').open || body.dataset.screen !== 'app') return;
    if (body.dataset.sidebar === 'open' && narrow.matches) {
      setSidebar(false);
      return;
    }
    if (state.controller && state.controller.isBusy()) {
      event.preventDefault();
      state.controller.stop();
    }
  });
}

async function boot() {
  try {
    const data = await api.me();
    enterApp(data.user);
  } catch (e) {
    if (e.code === 'unauthorized' || e.status === 401) {
      showSignin('');
      return;
    }
    if (e.code === 'network' || e.status >= 500) {
      // Flaky network at load time: keep trying, gently.
      state.bootAttempt += 1;
      const delay = Math.min(15_000, 500 * 2 ** state.bootAttempt) * (0.5 + Math.random() / 2);
      $('loading-screen').lastElementChild.textContent = "Can't reach Parley. Retrying…";
      setTimeout(boot, delay);
      return;
    }
    showSignin(errorText(e.code, e.message));
  }
}

wire();
showScreen('loading');
boot();
