// The widget's chat page (/widget?agent=…), framed by a host page through /widget.js.
//
// The visitor is a guest (guest.js): the page asks POST /v1/guest for a token,
// then talks the chat protocol through the shared client module, which
// reconnects, re-attaches the session and resumes replies by itself. A page
// without a conversation yet connects on the first message; one with a kept
// conversation re-opens it at once (history, and the reply still running).

import { ParleyClient } from '../client/parley-client.js';
import { Guest, GuestRefused, visitorMemory } from './guest.js';
import { HANDOFF_TEXT, Transcript, guestErrorText } from './transcript.js';

const body = document.body;
const agent = body.dataset.agent;
const agentName = document.querySelector('.w-title').textContent;
const input = document.getElementById('w-input');
const sendButton = document.getElementById('w-send');
const stopButton = document.getElementById('w-stop');
const banner = document.getElementById('w-banner');
const handoff = document.getElementById('w-handoff');
const status = document.getElementById('w-status');
const statusText = document.getElementById('w-status-text');

const STATUS_TEXT = { connecting: 'Connecting…', open: 'Online', reconnecting: 'Reconnecting…', closed: 'Offline' };

const sites = (body.dataset.sites || '').split(' ').filter(Boolean);
let guest = null; // once the host page has said what it keeps
const transcript = new Transcript(document.getElementById('w-log'), {
  agentName,
  onConfirm: (replyId, callId, approve) => client.confirm(replyId, callId, approve),
});
const wsUrl = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws`;
const client = new ParleyClient({ url: wsUrl, token: () => guest.token() });
let session = null; // the promise of the first `session`

function say(text) {
  banner.textContent = text || '';
  banner.hidden = !text;
}

function refresh() {
  const running = transcript.running;
  const busy = running !== null || body.dataset.busy === 'sending';
  body.dataset.busy = busy ? 'true' : 'false';
  stopButton.hidden = running === null;
  sendButton.hidden = running !== null;
  sendButton.disabled = body.dataset.state !== 'ready' || !input.value.trim();
}

function fail(error, state = 'failed') {
  body.dataset.state = state;
  input.disabled = true;
  say(guestErrorText(error && error.code, error && error.message));
  refresh();
}

client.addEventListener('state', (event) => {
  const { state } = event.detail;
  body.dataset.connection = state;
  status.dataset.state = state;
  statusText.textContent = STATUS_TEXT[state] || state;
});

client.addEventListener('frame', (event) => {
  const frame = event.detail;
  if (frame.type === 'handoff') {
    const text = frame.state === 'taken'
      ? `${(frame.by && frame.by.name) || 'A person'} has joined the conversation.`
      : HANDOFF_TEXT[frame.state] || '';
    handoff.textContent = text;
    handoff.hidden = !text;
  } else if (frame.type === 'error' && !frame.reply_id && !frame.client_id) {
    if (frame.call_id) say(guestErrorText(frame.code, frame.message));
  } else {
    transcript.apply(frame);
  }
  refresh();
});

/** The first session: the kept conversation if it is still there, else a new one. */
async function open() {
  const kept = guest.conversationId;
  let frame;
  try {
    frame = await client.start(kept ? { conversation_id: kept } : { agent });
  } catch (error) {
    if (!kept || !['not_found', 'forbidden', 'unknown_agent'].includes(error.code)) throw error;
    guest.conversationId = null;
    frame = await client.start({ agent });
  }
  guest.conversationId = frame.conversation_id;
  body.dataset.conversationId = frame.conversation_id;
  return frame;
}

function ensureSession() {
  session ??= open().catch((error) => {
    session = null;
    throw error;
  });
  return session;
}

async function send(text) {
  const clientId = crypto.randomUUID ? crypto.randomUUID() : String(Date.now() + Math.random());
  transcript.addUser(clientId, text);
  body.dataset.busy = 'sending';
  refresh();
  try {
    await ensureSession();
    const reply = client.send(text, { clientId });
    await reply.done;
  } catch (error) {
    transcript.failUser(clientId, error.code, error.message);
    if (error.code === 'unauthorized' || error instanceof GuestRefused) fail(error);
  } finally {
    if (body.dataset.busy === 'sending') body.dataset.busy = 'false';
    refresh();
  }
}

document.getElementById('w-composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || body.dataset.state !== 'ready' || transcript.running !== null) return;
  input.value = '';
  say('');
  send(text);
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    document.getElementById('w-composer').requestSubmit();
  } else if (event.key === 'Escape') {
    window.parent.postMessage({ type: 'parley:close' }, '*'); // carries nothing; the loader checks the source
  }
});
input.addEventListener('input', refresh);

stopButton.addEventListener('click', () => {
  const running = transcript.running;
  if (running) client.cancel(running);
});

async function main() {
  const { memory, site } = await visitorMemory(agent, sites);
  guest = new Guest(agent, site, memory);
  try {
    await guest.token(); // a site that may not embed this agent is told so now
    if (guest.conversationId) {
      const frame = await ensureSession();
      const live = frame.active_reply && frame.active_reply.reply_id;
      transcript.showHistory(frame.history, live);
      if (live) {
        transcript.apply({ type: 'accepted', reply_id: live }); // its bubble, filled from seq 1
        client.follow(live);
      }
    }
  } catch (error) {
    fail(error, error.code === 'forbidden' ? 'refused' : 'failed');
    return;
  }
  body.dataset.state = 'ready';
  input.disabled = false;
  input.focus();
  refresh();
}

main();
