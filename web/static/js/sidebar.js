// The sidebar: the user's conversations (open, rename, delete after confirming),
// "New conversation", and the drawer it becomes below 768 px.
//
// Test hooks: #conversation-list li.conv-item[data-conversation-id] with
// .conv-open (aria-current="page" when on screen), .conv-rename, .conv-delete;
// body[data-sidebar=open|closed].

import { $, el, icon, ICONS, KEYS, store } from './dom.js';
import { errorText, longDate, plainTitle, shortDate } from './format.js';
import { startRename } from './rename.js';
import { currentView } from './state.js';

export function createSidebar(app) {
  const { state, api, shell, narrow, body } = app;
  let listTimer = null;
  let pendingDelete = null;

  const titleOf = (conversation) => plainTitle(conversation && conversation.title) || '';

  async function refresh() {
    try {
      const data = await api.conversations();
      if (!state.controller) return;
      state.conversations = Array.isArray(data && data.conversations) ? data.conversations : [];
      // Keep an optimistic entry for the conversation on screen until the server lists it.
      const view = currentView(state);
      if (view && view.conversationId && !state.conversations.some((c) => c.id === view.conversationId) && view.items.length) {
        state.conversations.unshift({ id: view.conversationId, title: view.title, agent_id: view.agentId, updated_at: new Date().toISOString() });
      }
      $('conversation-list').setAttribute('aria-busy', 'false');
      render();
      app.header.update();
    } catch (e) {
      if (e.code === 'unauthorized') app.auth.sessionExpired();
    }
  }

  function scheduleRefresh() {
    clearTimeout(listTimer);
    listTimer = setTimeout(refresh, 500);
  }

  function cancelRefresh() {
    clearTimeout(listTimer);
  }

  function upsert(conversation, { front = false } = {}) {
    const index = state.conversations.findIndex((c) => c.id === conversation.id);
    if (index === -1) {
      if (front) state.conversations.unshift(conversation);
      else state.conversations.push(conversation);
    } else {
      state.conversations[index] = { ...state.conversations[index], ...conversation };
    }
    render();
  }

  function remove(id) {
    state.conversations = state.conversations.filter((c) => c.id !== id);
    render();
  }

  function entry(conversation, view) {
    const title = titleOf(conversation) || 'New conversation';
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
    rename.append(icon(ICONS.pencil));
    const trash = el('button', 'icon-btn conv-delete');
    trash.type = 'button';
    trash.setAttribute('aria-label', `Delete conversation “${title}”`);
    trash.title = 'Delete';
    trash.append(icon(ICONS.trash));
    li.append(open, rename, trash);
    return li;
  }

  function render() {
    const list = $('conversation-list');
    // Not under a title being renamed: rename.js renders the list when it is done.
    if (list.querySelector('.conv-rename-input')) return;
    const view = currentView(state);
    const items = state.conversations.map((conversation) => entry(conversation, view));
    list.replaceChildren(...items);
    $('conversation-empty').hidden = items.length > 0 || list.getAttribute('aria-busy') === 'true';
  }

  /** Mark the conversation on screen in the list. */
  function markCurrent(conversationId) {
    for (const button of document.querySelectorAll('#conversation-list .conv-open')) {
      if (button.closest('li').dataset.conversationId === conversationId) button.setAttribute('aria-current', 'page');
      else button.removeAttribute('aria-current');
    }
  }

  function open(id) {
    const controller = state.controller;
    if (!controller) return;
    setOpen(false);
    if (controller.view.conversationId === id) return;
    shell.hideBanner();
    store('sessionStorage', KEYS.conversation, id);
    controller.openConversation(id);
    app.header.update();
    app.composer.focus();
  }

  function startNew({ focus = true } = {}) {
    const controller = state.controller;
    if (!controller) return;
    store('sessionStorage', KEYS.conversation, null);
    controller.openNew(app.agents.selectedId());
    setOpen(false);
    app.header.update();
    if (focus) app.composer.focus();
  }

  async function saveTitle(id, title) {
    try {
      const data = await api.renameConversation(id, title);
      upsert(data.conversation);
      const view = currentView(state);
      if (view && view.conversationId === id) view.title = data.conversation.title;
      app.header.update();
      return true;
    } catch (e) {
      if (e.code === 'unauthorized') app.auth.sessionExpired();
      else shell.showBanner(errorText(e.code, e.message));
      return false;
    }
  }

  function confirmDelete(id) {
    const title = titleOf(state.conversations.find((c) => c.id === id)) || 'This conversation';
    const dialog = $('confirm-dialog');
    $('confirm-text').textContent = `“${title}” and all its messages will be deleted. This can't be undone.`;
    pendingDelete = id;
    dialog.returnValue = '';
    dialog.showModal();
  }

  async function onConfirmClose() {
    const dialog = $('confirm-dialog');
    const id = pendingDelete;
    pendingDelete = null;
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
      if (e.code === 'unauthorized') {
        app.auth.sessionExpired();
        return;
      }
      if (e.code !== 'not_found') {
        shell.showBanner(errorText(e.code, e.message));
        return;
      }
    }
    remove(id);
    if (currentView(state)?.conversationId === id) startNew({ focus: false });
    const target = next && document.querySelector(`#conversation-list li[data-conversation-id="${CSS.escape(next.dataset.conversationId)}"] .conv-open`);
    (target || $('new-chat')).focus();
  }

  /** The drawer (below 768 px): open or closed. */
  function setOpen(wanted) {
    const isOpen = body.dataset.sidebar === 'open';
    body.dataset.sidebar = wanted ? 'open' : 'closed';
    $('sidebar-toggle').setAttribute('aria-expanded', String(wanted));
    $('sidebar-backdrop').hidden = !wanted;
    $('chat').inert = wanted && narrow.matches;
    if (wanted && !isOpen) $('new-chat').focus();
    if (!wanted && isOpen && narrow.matches && $('sidebar').contains(document.activeElement)) $('sidebar-toggle').focus();
  }

  function wire() {
    $('new-chat').addEventListener('click', () => startNew());
    $('sidebar-toggle').addEventListener('click', () => setOpen(body.dataset.sidebar !== 'open'));
    $('sidebar-close').addEventListener('click', () => setOpen(false));
    $('sidebar-backdrop').addEventListener('click', () => setOpen(false));
    narrow.addEventListener('change', () => setOpen(false));
    $('confirm-dialog').addEventListener('close', onConfirmClose);
    $('conversation-list').addEventListener('click', (event) => {
      const li = event.target.closest('li.conv-item');
      if (!li) return;
      const id = li.dataset.conversationId;
      if (event.target.closest('.conv-delete')) confirmDelete(id);
      else if (event.target.closest('.conv-rename')) {
        const title = titleOf(state.conversations.find((c) => c.id === id));
        startRename(li, title, (wanted) => saveTitle(id, wanted), render);
      } else if (event.target.closest('.conv-open')) open(id);
    });
  }

  return {
    wire, refresh, scheduleRefresh, cancelRefresh, upsert, remove, render, markCurrent, open, startNew,
    setOpen, titleOf,
  };
}
