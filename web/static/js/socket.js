// A WebSocket that keeps itself connected.
//
// - Reconnects with exponential backoff and jitter (250 ms ... 30 s) after any drop.
// - Detects dead connections: after a quiet spell it sends {"type":"ping"} and,
//   if nothing at all comes back in time, drops the socket and reconnects
//   (a half-open TCP connection never fires `close` on its own).
// - Reconnects at once when the browser says it is back online or the tab
//   becomes visible again, and probes the socket in those moments.
// - Frames from a superseded socket are ignored (each connection has a generation).
//
// It does not queue frames: after a reconnect the protocol needs a fresh
// `start` first, so replaying is the chat controller's job.

const DEFAULTS = {
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  connectTimeoutMs: 10_000,
  idlePingMs: 20_000,
  pongTimeoutMs: 10_000,
  tickMs: 1_000,
};

export class ReconnectingSocket {
  /**
   * @param {() => string} url
   * @param {{onOpen?: Function, onFrame?: Function, onClose?: Function, onState?: Function}} handlers
   *   onClose({code, reason, wasOpen}) may return false to stay closed until reconnectNow().
   */
  constructor(url, handlers = {}, options = {}) {
    this.url = url;
    this.handlers = handlers;
    this.options = { ...DEFAULTS, ...options };
    this.enabled = false;
    this.ws = null;
    this.gen = 0;
    this.attempt = 0;
    this.state = 'closed';
    this.retryAt = 0;
    this.retryTimer = null;
    this.connectTimer = null;
    this.tickTimer = null;
    this.lastRx = 0;
    this.pingAt = 0;
    this.failedOpens = 0;
    this._onOnline = () => this._wake();
    this._onVisible = () => { if (document.visibilityState === 'visible') this._wake(); };
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    if (this.enabled) return;
    this.enabled = true;
    window.addEventListener('online', this._onOnline);
    window.addEventListener('offline', this._onOnline);
    document.addEventListener('visibilitychange', this._onVisible);
    this.tickTimer = setInterval(() => this._tick(), this.options.tickMs);
    this.attempt = 0;
    this._connect();
  }

  stop() {
    this.enabled = false;
    window.removeEventListener('online', this._onOnline);
    window.removeEventListener('offline', this._onOnline);
    document.removeEventListener('visibilitychange', this._onVisible);
    clearInterval(this.tickTimer);
    this.tickTimer = null;
    this._clearRetry();
    this._discard();
    this._setState('closed');
  }

  /** Replace the connection with a fresh one now (e.g. to bind another session). */
  restart() {
    if (!this.enabled) return;
    this._discard();
    this.attempt = 0;
    this._connect();
  }

  /** Skip the remaining backoff delay. */
  reconnectNow() {
    if (!this.enabled || this.ws) return;
    this.attempt = 0;
    this._connect();
  }

  send(frame) {
    if (!this.isOpen) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  // --- internals -----------------------------------------------------------

  _connect() {
    this._clearRetry();
    const gen = ++this.gen;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this._closed(gen, 1006, 'could not create socket', false);
      return;
    }
    this.ws = ws;
    this.pingAt = 0;
    this._setState('connecting');
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (gen === this.gen && ws.readyState === WebSocket.CONNECTING) this._drop(gen, 4001, 'connect timeout');
    }, this.options.connectTimeoutMs);

    ws.onopen = () => {
      if (gen !== this.gen) return;
      clearTimeout(this.connectTimer);
      this.lastRx = Date.now();
      this.pingAt = 0;
      this.failedOpens = 0;
      this._setState('open');
      this.handlers.onOpen?.(gen);
    };
    ws.onmessage = (event) => {
      if (gen !== this.gen) return;
      this.lastRx = Date.now();
      this.pingAt = 0;
      this.attempt = 0; // the server answered: this connection works
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
      if (frame.type === 'pong') return;
      this.handlers.onFrame?.(frame, gen);
    };
    ws.onclose = (event) => {
      if (gen !== this.gen) return;
      this._closed(gen, event.code, event.reason, this.state === 'open');
    };
    ws.onerror = () => {}; // always followed by close
  }

  _closed(gen, code, reason, wasOpen) {
    if (gen !== this.gen) return;
    this.ws = null;
    this._afterClose(code, reason, wasOpen);
  }

  _afterClose(code, reason, wasOpen) {
    clearTimeout(this.connectTimer);
    if (!wasOpen) this.failedOpens += 1;
    this._setState('closed');
    const again = this.handlers.onClose?.({ code, reason, wasOpen, failedOpens: this.failedOpens }) !== false;
    if (this.enabled && again && !this.ws) this._scheduleRetry();
  }

  // Forget the current socket without waiting for its close handshake (which
  // may never complete on a dead network), then report it closed.
  _drop(gen, code, reason) {
    if (gen !== this.gen) return;
    const wasOpen = this.state === 'open';
    this._discard();
    this._afterClose(code, reason, wasOpen);
  }

  _discard() {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.connectTimer);
    if (!ws) return;
    this.gen += 1; // late events from the old socket are ignored
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000);
    } catch {
      /* already closing */
    }
  }

  _scheduleRetry() {
    this._clearRetry();
    const ceiling = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2)); // "equal jitter"
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryAt = 0;
      if (this.enabled && !this.ws) this._connect();
    }, delay);
    this._setState('closed');
  }

  _clearRetry() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
  }

  _wake() {
    if (!this.enabled) return;
    if (!this.ws) {
      this.attempt = 0;
      this._connect();
    } else if (this.isOpen) {
      this._ping();
    }
  }

  _ping() {
    if (this.pingAt) return;
    if (this.send({ type: 'ping' })) this.pingAt = Date.now();
  }

  _tick() {
    if (!this.isOpen) {
      if (this.retryAt) this._setState('closed'); // refresh the countdown
      return;
    }
    const now = Date.now();
    if (this.pingAt && now - this.pingAt > this.options.pongTimeoutMs) {
      this._drop(this.gen, 4002, 'heartbeat timeout');
    } else if (!this.pingAt && now - this.lastRx > this.options.idlePingMs) {
      this._ping();
    }
  }

  _setState(state) {
    this.state = state;
    this.handlers.onState?.({
      state,
      retryAt: state === 'closed' ? this.retryAt : 0,
      enabled: this.enabled,
      online: navigator.onLine !== false,
    });
  }
}
