// Parley's widget loader, served as /widget.js. A host page includes it once:
//
//   <script src="https://parley.example/widget.js" data-agent="agent_gamma"></script>
//
// It adds a chat button; opening it frames Parley's widget page
// (/widget?agent=…), where the chat runs on Parley's origin under Parley's CSP.
// The host page's CSP only has to allow Parley's origin in script-src and
// frame-src: this script injects no markup strings, no <style> and no style
// attributes (styles are set through the CSSOM, which CSP does not govern),
// and it works under `require-trusted-types-for 'script'`.
//
// Optional attributes: data-label (the button's text), data-open="true"
// (open at once). Test hooks: the host element [data-parley-widget] carries
// data-state (closed|open).
(() => {
  'use strict';

  const script = document.currentScript;
  if (!script || !script.src) return;
  const agent = script.dataset.agent;
  if (!agent || !/^[a-z][a-z0-9_-]{0,63}$/.test(agent)) {
    console.error('Parley widget: data-agent must name an agent');
    return;
  }
  const parley = new URL(script.src).origin;
  const label = script.dataset.label || 'Chat with us';
  const openKey = `parley.widget.${agent}.open`;
  const memoryKey = `parley.widget.${agent}`;

  const ACCENT = '#3557d6';
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

  function styled(tag, style) {
    const element = document.createElement(tag);
    Object.assign(element.style, style);
    return element;
  }

  // A shadow root keeps the host page's CSS off the widget and the widget's off the page.
  const host = styled('div', { position: 'fixed', right: '20px', bottom: '20px', zIndex: '2147483000' });
  host.dataset.parleyWidget = agent;
  host.dataset.state = 'closed';
  const root = host.attachShadow({ mode: 'open' });

  const panel = styled('div', {
    display: 'none',
    position: 'absolute',
    right: '0',
    bottom: '64px',
    width: 'min(380px, calc(100vw - 40px))',
    height: 'min(600px, calc(100vh - 100px))',
    borderRadius: '16px',
    overflow: 'hidden',
    background: '#fff',
    boxShadow: '0 8px 32px rgba(20, 23, 31, 0.22)',
  });
  panel.className = 'parley-panel';

  const button = styled('button', {
    display: 'flex',
    alignItems: 'center',
    gap: '8px',
    height: '52px',
    padding: '0 20px',
    border: '0',
    borderRadius: '26px',
    background: ACCENT,
    color: '#fff',
    font: `600 15px/1 ${FONT}`,
    cursor: 'pointer',
    boxShadow: '0 4px 16px rgba(20, 23, 31, 0.25)',
  });
  button.type = 'button';
  button.className = 'parley-launcher';
  button.textContent = label;
  button.setAttribute('aria-expanded', 'false');
  button.setAttribute('aria-haspopup', 'dialog');

  let frame = null;

  function ensureFrame() {
    if (frame) return;
    const url = new URL('/widget', parley);
    url.searchParams.set('agent', agent);
    frame = styled('iframe', { width: '100%', height: '100%', border: '0', display: 'block' });
    frame.className = 'parley-frame';
    frame.title = label;
    frame.src = url.href;
    frame.setAttribute('allow', '');
    frame.setAttribute('referrerpolicy', 'strict-origin'); // the page tells the chat its site
    panel.append(frame);
  }

  function setOpen(open) {
    if (open) ensureFrame();
    panel.style.display = open ? 'block' : 'none';
    host.dataset.state = open ? 'open' : 'closed';
    button.setAttribute('aria-expanded', String(open));
    button.textContent = open ? 'Close chat' : label;
    try {
      sessionStorage.setItem(openKey, open ? '1' : '0');
    } catch {
      // storage may be off; the widget just starts closed next time
    }
    if (open) frame.focus();
  }

  button.addEventListener('click', () => setOpen(host.dataset.state !== 'open'));

  // What the chat keeps across visits (the guest id and the conversation id):
  // browsers partition or refuse a framed page's storage, so this page keeps it.
  function recalled() {
    try {
      const values = JSON.parse(localStorage.getItem(memoryKey) || '{}');
      return values && typeof values === 'object' ? values : {};
    } catch {
      return {};
    }
  }

  function remember(values) {
    const kept = {};
    for (const name of ['guest_id', 'conversation_id']) {
      const value = values && values[name];
      if (typeof value === 'string' && value.length <= 200) kept[name] = value;
    }
    try {
      localStorage.setItem(memoryKey, JSON.stringify(kept));
    } catch {
      // storage off: the chat starts afresh next visit
    }
  }

  // Only Parley's frame is listened to, and answered on Parley's origin only.
  window.addEventListener('message', (event) => {
    if (!frame || event.source !== frame.contentWindow || event.origin !== parley) return;
    const message = event.data || {};
    if (message.type === 'parley:hello') {
      frame.contentWindow.postMessage({ type: 'parley:memory', values: recalled() }, parley);
    } else if (message.type === 'parley:remember') {
      remember(message.values);
    } else if (message.type === 'parley:close') {
      setOpen(false);
      button.focus();
    }
  });

  root.append(panel, button);
  if (document.body) document.body.append(host);
  else document.addEventListener('DOMContentLoaded', () => document.body.append(host));

  let reopen = script.dataset.open === 'true';
  try {
    reopen = reopen || sessionStorage.getItem(openKey) === '1';
  } catch {
    // no storage: closed
  }
  if (reopen) setOpen(true);
})();
