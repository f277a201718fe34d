// Parley chat UI: the root that builds the page's parts and wires them together.
//
//   state.js     the page's state, handed to every part (no module keeps its own)
//   shell.js     screens, banner, connection indicator     auth.js     sign-in / out
//   sidebar.js   conversations and the drawer              agents.js   the agent picker
//   header.js    title, agent, handoff strip                composer.js the message box
//   view.js      the message list's DOM                     actions.js  its buttons
//   chat.js      the conversation's controller (items.js, history.js, replies.js, errors.js),
//                a consumer of ParleyClient (/static/client/parley-client.js: the
//                protocol, reconnects and resumes; the widget uses it too)
//   api.js       REST
//
// Test hooks on <body>: data-screen (loading|signin|app), data-connection
// (open|connecting|closed), data-session (none|pending|ready), data-busy
// (true|false). #chat carries data-view (new|conversation) and
// data-conversation-id. See docs/ui.md for the full list.

import { api } from './api.js';
import { ParleyClient } from '../client/parley-client.js';
import { ChatController } from './chat.js';
import { MessageView } from './view.js';
import { $, KEYS, store, stored } from './dom.js';
import { errorText, initials } from './format.js';
import { handoffAnnouncement } from './handoff.js';
import { agentLabel, createState, currentAgent } from './state.js';
import { createShell } from './shell.js';
import { createAuth } from './auth.js';
import { createSidebar } from './sidebar.js';
import { createAgents } from './agents.js';
import { createHeader } from './header.js';
import { createComposer } from './composer.js';
import { createMessageActions } from './actions.js';

const body = document.body;
const state = createState(body);

// Every part gets this one object; parts call each other through it.
const app = {
  body,
  state,
  api,
  narrow: window.matchMedia('(max-width: 767px)'),
  enter: enterApp,
  teardown,
};
app.messageView = new MessageView({
  list: $('messages'),
  scroller: $('scroller'),
  jumpButton: $('jump-latest'),
  live: $('reply-live'),
  agentName: () => currentAgent(state)?.name || 'Assistant',
  connected: () => body.dataset.connection === 'open',
});
app.shell = createShell({ body, onConnection: () => app.messageView.refreshPending() });
app.auth = createAuth(app);
app.sidebar = createSidebar(app);
app.agents = createAgents(app);
app.header = createHeader(app);
app.composer = createComposer(app);
app.actions = createMessageActions(app);

// --- what the chat controller reports ---------------------------------------------

function isShown(view) {
  return !!state.controller && view === state.controller.view;
}

const ui = {
  setItems(view, items) {
    if (!isShown(view)) return;
    app.messageView.setItems(items, view.key);
    app.header.update();
  },
  update(item, what) {
    app.messageView.update(item, what);
    if (item.kind === 'user' && item.state === 'failed' && !item.announced) {
      item.announced = true;
      const code = item.error?.code;
      app.messageView.announce(code === 'withdrawn' ? 'Message not sent.' : `Message not sent. ${errorText(code, item.error?.message)}`);
    }
  },
  busyChanged() {
    app.composer.update();
  },
  sessionState(view) {
    if (!isShown(view)) return;
    body.dataset.session = view.attached ? 'ready' : view.starting ? 'pending' : 'none';
    app.header.update();
  },
  session(view, { created }) {
    store('sessionStorage', KEYS.conversation, view.conversationId);
    if (view.agent && view.agent.id && !view.agentId) view.agentId = view.agent.id;
    if (created || !state.conversations.some((c) => c.id === view.conversationId)) {
      const now = new Date().toISOString();
      app.sidebar.upsert({
        id: view.conversationId,
        title: view.title || 'New conversation',
        agent_id: view.agentId,
        created_at: now,
        updated_at: now,
        message_count: view.items.length,
      }, { front: true });
    }
    app.header.update();
  },
  conversationInfo(view, conversation) {
    if (conversation.title) view.title = conversation.title;
    if (conversation.agent_id && !view.agentId) view.agentId = conversation.agent_id;
    if (state.conversations.some((c) => c.id === conversation.id)) app.sidebar.upsert(conversation);
    app.header.update();
  },
  conversationGone(view) {
    store('sessionStorage', KEYS.conversation, null);
    app.sidebar.remove(view.conversationId);
    app.shell.showBanner(errorText('not_found'));
    app.sidebar.startNew({ focus: false });
  },
  replyDone(view, item) {
    const node = document.querySelector(`article.msg-assistant[data-reply-id="${CSS.escape(item.replyId || '')}"] .msg-body`);
    const text = node ? node.textContent.trim() : item.text;
    const note = item.status === 'complete' ? '' : ` (${item.status === 'cancelled' ? 'stopped' : item.status})`;
    app.messageView.announce(`${currentAgent(state)?.name || 'Assistant'} replied${note}: ${text.slice(0, 4000)}`);
    app.sidebar.scheduleRefresh();
  },
  messageTooLong(text, message) {
    app.composer.giveBack(text, message);
  },
  error(code, message) {
    app.shell.showBanner(code ? errorText(code, message) : String(message || ''));
  },
  handoff(view) {
    if (!isShown(view)) return;
    app.header.updateHandoff();
    const said = handoffAnnouncement(view.handoff, agentLabel(state));
    if (said) app.messageView.announce(said);
  },
  authExpired() {
    app.auth.sessionExpired();
  },
  connection(detail) {
    showConnection(detail);
    // Failing to connect again and again may mean the sign-in ended.
    if (detail.state === 'reconnecting' && detail.retryAt && detail.attempt % 3 === 0) app.auth.check();
  },
  opened() {
    if (state.wasOpen) app.sidebar.scheduleRefresh();
    state.wasOpen = true;
  },
  async unauthorized() {
    // The server refused the socket (1008): the client waits until told to go on.
    const controller = state.controller;
    if (!(await app.auth.check(1008))) return;
    setTimeout(() => {
      if (state.controller === controller) controller.reconnectNow();
    }, 2000 + Math.random() * 3000);
  },
};

// The header's connection indicator, its countdown redrawn each second while a retry waits.
let countdown = null;
function showConnection({ state: clientState, retryAt }) {
  clearInterval(countdown);
  countdown = null;
  const trying = clientState === 'connecting' || (clientState === 'reconnecting' && !retryAt);
  const shown = {
    state: clientState === 'open' ? 'open' : trying ? 'connecting' : 'closed',
    retryAt,
    enabled: true,
    online: navigator.onLine !== false,
  };
  const draw = () => app.shell.renderConnection(shown, !!state.user);
  draw();
  if (retryAt) countdown = setInterval(draw, 1000);
}

// --- signing in starts a controller and a socket; signing out ends them -------------

function teardown() {
  state.controller?.close(); // closes the WebSocket
  state.controller = null;
  clearInterval(countdown);
  app.sidebar.cancelRefresh();
  app.messageView.clear();
  state.conversations = [];
  state.wasOpen = false;
  $('conversation-list').setAttribute('aria-busy', 'true');
  app.sidebar.render();
  app.shell.hideBanner();
  body.dataset.session = 'none';
  body.dataset.busy = 'false';
  body.dataset.connection = 'closed';
}

function socketUrl() {
  return `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws`;
}

function enterApp(user) {
  const sameUser = state.user && user && state.user.id === user.id && state.controller;
  state.user = user;
  $('console-link').hidden = !(user && user.admin);
  $('user-name').textContent = user ? user.name : '';
  $('user-avatar').textContent = initials(user && user.name);
  app.shell.showScreen('app');
  if (sameUser) {
    // Signed in again after the session expired: keep everything on screen,
    // including messages that were waiting to be sent.
    state.controller.connect();
    app.sidebar.refresh();
    return;
  }
  teardown();
  state.user = user;
  // The socket opens now, before any conversation (and is kept open while signed in).
  const controller = new ChatController({ api, ui, newClient: () => new ParleyClient({ url: socketUrl }) });
  state.controller = controller;
  controller.connect();
  app.agents.load();
  app.sidebar.refresh();
  const saved = stored('sessionStorage', KEYS.conversation);
  if (saved) controller.openConversation(saved);
  else controller.openNew(stored('localStorage', KEYS.agent));
  app.header.update();
  app.composer.focus();
}

// --- the rest of the page's controls ----------------------------------------------

function wire() {
  app.auth.wire();
  app.sidebar.wire();
  app.composer.wire();
  app.actions.wire();
  $('banner-close').addEventListener('click', app.shell.hideBanner);
  $('reconnect-now').addEventListener('click', () => state.controller?.reconnectNow());
  $('agent-picker').addEventListener('change', (event) => {
    if (event.target.name !== 'agent') return;
    store('localStorage', KEYS.agent, event.target.value);
    state.controller?.setAgent(event.target.value);
    app.header.update();
  });
  $('handoff-button').addEventListener('click', () => {
    if (!state.controller?.requestHuman()) app.shell.showBanner('Open a conversation first, then ask for a person.');
  });
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || event.defaultPrevented) return;
    if ($('confirm-dialog').open || body.dataset.screen !== 'app') return;
    if (body.dataset.sidebar === 'open' && app.narrow.matches) {
      app.sidebar.setOpen(false);
      return;
    }
    if (state.controller && state.controller.isBusy()) {
      event.preventDefault();
      state.controller.stop();
    }
  });
}

wire();
app.shell.showScreen('loading');
app.auth.boot();
