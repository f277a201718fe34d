// The operator console: the queue of conversations waiting for a person, review
// with filters and export, and one conversation at a time to take over, answer
// and hand back.
//
// Live updates come from GET /v1/admin/events (Server-Sent Events). They are
// hints: each one makes the console read the queue and the open conversation
// again from REST, which is the truth; after any reconnect (the `ready` event)
// everything is read afresh, so a missed event costs nothing.
//
// Test hooks: body[data-screen="loading"|"signin"|"forbidden"|"console"],
// body[data-events="open"|"connecting"|"closed"], #detail[data-conversation-id]
// [data-state="none"|"waiting"|"taken"][data-taken-by-me="true"|"false"],
// #take-over, #release, #operator-input, #operator-send; see console-view.js.

import { adminApi, api } from './api.js';
import { errorText, uuid4 } from './format.js';
import { describeState, describeTrigger, renderQueue, renderReviewList, renderTranscript } from './console-view.js';

const $ = (id) => document.getElementById(id);
const body = document.body;
const EVENT_KINDS = ['handoff', 'message', 'reply', 'title', 'resync'];
const REFRESH_DELAY_MS = 150; // events come in bursts (take over = handoff + cancelled reply)
const REOPEN_DELAY_MS = 5000;

const state = {
  me: null,
  agents: new Map(),
  queue: [],
  selected: null, // conversation id
  detail: null, // GET /v1/admin/conversations/{id}
  events: null,
  queueTimer: null,
  detailTimer: null,
  sending: false,
  review: { filters: {}, cursor: null },
};

function showScreen(name) {
  body.dataset.screen = name;
  $('loading-screen').hidden = name !== 'loading';
  $('signin-screen').hidden = name !== 'signin' && name !== 'forbidden';
  $('console-screen').hidden = name !== 'console';
}

function announce(text) {
  $('console-live').textContent = '';
  setTimeout(() => { $('console-live').textContent = text; }, 60);
}

function showError(error) {
  const box = $('detail-error');
  box.textContent = error ? errorText(error.code, error.message) : '';
  box.hidden = !error;
}

// --- live events --------------------------------------------------------------

function setEventsState(value) {
  body.dataset.events = value;
  $('events-status').dataset.state = value === 'open' ? 'open' : value === 'connecting' ? 'connecting' : 'closed';
  $('events-text').textContent = value === 'open' ? 'Live' : value === 'connecting' ? 'Connecting…' : 'Offline';
}

function connectEvents() {
  setEventsState('connecting');
  const source = new EventSource('/v1/admin/events');
  state.events = source;
  source.addEventListener('ready', () => {
    setEventsState('open');
    refreshQueue();
    if (state.selected) refreshDetail();
  });
  for (const kind of EVENT_KINDS) {
    source.addEventListener(kind, (event) => {
      let data = {};
      try {
        data = JSON.parse(event.data);
      } catch {
        /* a hint without details: read everything */
      }
      scheduleQueue();
      if (!data.conversation_id || data.conversation_id === state.selected) scheduleDetail();
    });
  }
  source.addEventListener('error', () => {
    if (source.readyState !== EventSource.CLOSED) {
      setEventsState('connecting'); // the browser reconnects by itself
      return;
    }
    // Refused (signed out, or no longer an admin): check, then try again later.
    setEventsState('closed');
    checkAuth().then((ok) => ok && setTimeout(connectEvents, REOPEN_DELAY_MS));
  });
}

function scheduleQueue() {
  clearTimeout(state.queueTimer);
  state.queueTimer = setTimeout(refreshQueue, REFRESH_DELAY_MS);
}

function scheduleDetail() {
  clearTimeout(state.detailTimer);
  state.detailTimer = setTimeout(refreshDetail, REFRESH_DELAY_MS);
}

// --- the queue and review lists --------------------------------------------------

async function refreshQueue() {
  try {
    const data = await adminApi.queue();
    state.queue = data.queue || [];
  } catch (error) {
    if (error.code === 'unauthorized' || error.code === 'forbidden') checkAuth();
    return;
  }
  renderQueue($('queue'), state.queue, state.selected);
  $('queue').setAttribute('aria-busy', 'false');
  $('queue-empty').hidden = state.queue.length > 0;
  const waiting = state.queue.filter((item) => item.handoff && item.handoff.state === 'waiting').length;
  $('queue-count').textContent = waiting ? String(waiting) : '';
}

function reviewFilters() {
  const form = new FormData($('review-filters'));
  const filters = {};
  for (const [name, value] of form.entries()) if (String(value).trim()) filters[name] = String(value).trim();
  return filters;
}

async function loadReview({ more = false } = {}) {
  const filters = more ? { ...state.review.filters, before: state.review.cursor } : reviewFilters();
  if (!more) state.review.filters = filters;
  try {
    const data = await adminApi.conversations({ ...filters, limit: '50' });
    state.review.cursor = data.next_before;
    renderReviewList($('review-list'), data.conversations || [], state.selected, { append: more });
    $('review-empty').hidden = !!(more || (data.conversations || []).length);
    $('review-more').hidden = !data.next_before;
  } catch (error) {
    showError(error);
  }
  $('export-link').href = `/v1/admin/export.jsonl?${new URLSearchParams(state.review.filters)}`;
}

function selectTab(name) {
  for (const [tab, panel] of [['tab-queue', 'queue-panel'], ['tab-review', 'review-panel']]) {
    const on = tab === `tab-${name}`;
    $(tab).setAttribute('aria-selected', String(on));
    $(tab).tabIndex = on ? 0 : -1;
    $(panel).hidden = !on;
  }
  if (name === 'review') loadReview();
}

// --- one conversation --------------------------------------------------------------

function select(id) {
  if (!id || id === state.selected) return;
  state.selected = id;
  state.detail = null;
  history.replaceState(null, '', `#conversation=${encodeURIComponent(id)}`);
  $('detail').dataset.conversationId = id;
  $('operator-input').value = '';
  showError(null);
  for (const button of document.querySelectorAll('.queue-open')) {
    if (button.closest('li').dataset.conversationId === id) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }
  refreshDetail();
}

async function refreshDetail() {
  const id = state.selected;
  if (!id) return;
  try {
    const data = await adminApi.conversation(id);
    if (id !== state.selected) return;
    state.detail = data;
  } catch (error) {
    if (id !== state.selected) return;
    if (error.code === 'not_found') state.detail = null;
    showError(error);
  }
  renderDetail();
}

function renderDetail() {
  const detail = state.detail;
  $('detail-empty').hidden = !!detail;
  $('detail-content').hidden = !detail;
  if (!detail) return;
  const conversation = detail.conversation;
  const handoff = conversation.handoff || { state: 'none' };
  const mine = handoff.state === 'taken' && conversation.taken_by_id === state.me.id;
  const box = $('detail');
  box.dataset.state = handoff.state;
  box.dataset.takenByMe = String(mine);
  $('detail-title').textContent = conversation.title || 'Untitled conversation';
  const agent = state.agents.get(conversation.agent_id);
  const owner = conversation.owner ? `${conversation.owner.name || ''} (${conversation.owner.id})` : '';
  $('detail-meta').textContent = [owner, agent ? agent.name : conversation.agent_id].filter(Boolean).join(' · ');
  const request = detail.handoffs.length ? detail.handoffs[detail.handoffs.length - 1] : null;
  const why = request ? describeTrigger(request.trigger, request.rule, request.reason) : '';
  $('detail-state').textContent = [describeState({ ...handoff, takenByMe: mine }), why].filter(Boolean).join(' — ');
  $('take-over').hidden = mine;
  $('take-over').disabled = handoff.state === 'taken';
  $('take-over').textContent = handoff.state === 'taken' ? `Taken by ${handoff.by?.name || 'someone'}` : 'Take over';
  $('release').hidden = handoff.state === 'none';
  $('release').textContent = handoff.state === 'waiting' ? 'Dismiss: leave it to the agent' : 'Hand back to the agent';
  $('operator-input').disabled = !mine;
  $('operator-input').placeholder = mine ? `Write to ${conversation.owner?.name || 'the user'}…` : 'Take the conversation over to write to the user';
  $('operator-send').disabled = !mine || state.sending;
  renderTranscript($('transcript'), detail.messages, agent ? agent.name : 'Agent');
}

async function act(call, said) {
  const id = state.selected;
  if (!id) return;
  showError(null);
  try {
    await call(id);
    announce(said);
  } catch (error) {
    showError(error);
  }
  await refreshDetail();
  scheduleQueue();
}

async function send(event) {
  event.preventDefault();
  const input = $('operator-input');
  const text = input.value.trim();
  if (!text || state.sending || !state.selected) return;
  state.sending = true;
  $('operator-send').disabled = true;
  showError(null);
  try {
    await adminApi.say(state.selected, text, uuid4());
    input.value = '';
  } catch (error) {
    showError(error);
  } finally {
    state.sending = false;
  }
  await refreshDetail();
  input.focus();
}

// --- start ---------------------------------------------------------------------

async function checkAuth() {
  try {
    const { user } = await api.session(); // 200 signed in or not: no failed request logged
    if (!user) throw new Error('signed out');
    if (!user.admin) {
      showScreen('forbidden');
      $('signin-text').textContent = `${user.name} is signed in, but the console needs the admin role.`;
      return false;
    }
    return true;
  } catch {
    showScreen('signin');
    return false;
  }
}

function selectedFromHash() {
  const match = /^#conversation=(.+)$/.exec(window.location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function wire() {
  $('tab-queue').addEventListener('click', () => selectTab('queue'));
  $('tab-review').addEventListener('click', () => selectTab('review'));
  for (const list of [$('queue'), $('review-list')]) {
    list.addEventListener('click', (event) => {
      const li = event.target.closest('.queue-open') && event.target.closest('li');
      if (li) select(li.dataset.conversationId);
    });
  }
  $('review-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    loadReview();
  });
  $('review-more').addEventListener('click', () => loadReview({ more: true }));
  $('take-over').addEventListener('click', () => act(adminApi.takeOver, 'You took the conversation over.'));
  $('release').addEventListener('click', () => act(adminApi.release, 'The conversation is back with the agent.'));
  $('operator-form').addEventListener('submit', send);
  $('operator-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) send(event);
  });
  window.addEventListener('hashchange', () => select(selectedFromHash()));
}

async function boot() {
  wire();
  try {
    state.me = (await api.session()).user;
    if (!state.me) throw new Error('signed out');
  } catch {
    showScreen('signin');
    return;
  }
  if (!(await checkAuth())) return;
  $('operator-name').textContent = state.me.name;
  showScreen('console');
  try {
    const { agents } = await adminApi.agents();
    state.agents = new Map(agents.map((agent) => [agent.id, agent]));
    const picker = $('filter-agent');
    for (const agent of agents) {
      const option = document.createElement('option');
      option.value = agent.id;
      option.textContent = agent.name;
      picker.append(option);
    }
  } catch {
    /* names only: ids are shown instead */
  }
  connectEvents();
  const wanted = selectedFromHash();
  if (wanted) select(wanted);
}

boot();
