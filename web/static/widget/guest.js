// The visitor as a guest: tokens from POST /v1/guest, and what is kept of them.
//
// The signed guest id and the conversation id must outlive a reload. A framed
// page's own storage is partitioned or refused outright by browsers (it is
// third-party storage), so the host page keeps them: the loader (/widget.js,
// running on the host page) answers this page's `parley:hello` with
// `parley:memory` and stores what `parley:remember` sends, in the host site's
// localStorage. Messages are taken from the parent window only, and only when
// it is one of the agent's sites (the page's frame-ancestors) or this server.
// Tokens live only in memory and are renewed shortly before they expire.

const RENEW_BEFORE_MS = 60_000;
const PARENT_WAIT_MS = 3000; // a parent that is not the loader never answers
const KEPT = ['guest_id', 'conversation_id'];

/** A refusal from POST /v1/guest (`code` as in docs/protocol.md, or `network`). */
export class GuestRefused extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'GuestRefused';
    this.code = code;
  }
}

/** What is kept across visits: two short strings, and where they are written back. */
class Memory {
  constructor(values, persist) {
    this.values = {};
    for (const name of KEPT) {
      const value = values && values[name];
      if (typeof value === 'string' && value.length <= 200) this.values[name] = value;
    }
    this.persist = persist;
  }

  get(name) {
    return this.values[name] || null;
  }

  set(name, value) {
    if (value) this.values[name] = value;
    else delete this.values[name];
    this.persist({ ...this.values });
  }
}

function ownMemory(key) {
  let values = {};
  try {
    values = JSON.parse(window.localStorage.getItem(key) || '{}');
  } catch {
    values = {}; // storage off or unreadable: this visit only
  }
  return new Memory(values, (kept) => {
    try {
      window.localStorage.setItem(key, JSON.stringify(kept));
    } catch {
      // kept for this visit only
    }
  });
}

/**
 * The memory of this visitor, and the origin of the site that frames this page
 * (null when it is not framed, or framed by this server's own page).
 * @param {string} agent
 * @param {string[]} sites the origins allowed to frame this page
 */
export function visitorMemory(agent, sites) {
  const key = `parley.widget.${agent}`;
  if (window.parent === window) return Promise.resolve({ memory: ownMemory(key), site: null });
  const own = window.location.origin;
  return new Promise((resolve) => {
    const done = (result) => {
      clearTimeout(timer);
      window.removeEventListener('message', onMessage);
      resolve(result);
    };
    const timer = setTimeout(() => done({ memory: ownMemory(key), site: null }), PARENT_WAIT_MS);
    function onMessage(event) {
      if (event.source !== window.parent) return;
      if (event.origin !== own && !sites.includes(event.origin)) return;
      if (!event.data || event.data.type !== 'parley:memory') return;
      const parent = event.origin;
      const memory = new Memory(event.data.values, (values) => {
        window.parent.postMessage({ type: 'parley:remember', values }, parent);
      });
      done({ memory, site: parent === own ? null : parent });
    }
    window.addEventListener('message', onMessage);
    window.parent.postMessage({ type: 'parley:hello' }, '*'); // carries nothing
  });
}

export class Guest {
  #agent;
  #site;
  #memory;
  #token = null;
  #expiresAt = 0;
  #asking = null;

  constructor(agent, site, memory) {
    this.#agent = agent;
    this.#site = site;
    this.#memory = memory;
  }

  get conversationId() {
    return this.#memory.get('conversation_id');
  }

  set conversationId(value) {
    this.#memory.set('conversation_id', value);
  }

  /** A token that is valid for a while yet (one request at a time). */
  token() {
    if (this.#token && Date.now() < this.#expiresAt - RENEW_BEFORE_MS) return Promise.resolve(this.#token);
    this.#asking ??= this.#ask().finally(() => {
      this.#asking = null;
    });
    return this.#asking;
  }

  async #ask() {
    let answer = await this.#request(this.#memory.get('guest_id'));
    if (!answer.ok && answer.status === 400 && this.#memory.get('guest_id')) {
      // An id this server no longer accepts (its secret changed): become a new guest.
      this.#memory.set('guest_id', null);
      this.conversationId = null;
      answer = await this.#request(null);
    }
    let data = null;
    try {
      data = await answer.json();
    } catch {
      data = null;
    }
    if (!answer.ok || !data || typeof data.token !== 'string') {
      const error = (data && data.error) || {};
      throw new GuestRefused(error.code || 'internal', error.message || `HTTP ${answer.status}`);
    }
    this.#memory.set('guest_id', data.guest_id);
    this.#token = data.token;
    this.#expiresAt = Date.now() + Number(data.expires_in) * 1000; // this browser's clock
    return this.#token;
  }

  async #request(guestId) {
    const body = { agent: this.#agent };
    if (guestId) body.guest_id = guestId;
    if (this.#site) body.site = this.#site;
    try {
      return await fetch('/v1/guest', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch {
      throw new GuestRefused('network', '');
    }
  }
}
