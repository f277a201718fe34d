// The page's frame: which screen shows (loading, sign-in, app), the error banner
// and the connection indicator in the header.
//
// Test hooks: body[data-screen], body[data-connection], #connection-status[data-state].

import { $ } from './dom.js';

export function createShell({ body, onConnection }) {
  let bannerTimer = null;
  let lastConnectionText = '';

  function showScreen(name) {
    body.dataset.screen = name;
    $('loading-screen').hidden = name !== 'loading';
    $('signin-screen').hidden = name !== 'signin';
    $('app-screen').hidden = name !== 'app';
  }

  function hideBanner() {
    clearTimeout(bannerTimer);
    $('banner').hidden = true;
  }

  function showBanner(text) {
    $('banner-text').textContent = text;
    $('banner').hidden = false;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(hideBanner, 12_000);
  }

  /** The socket's state ({state, retryAt, enabled, online}) in the header. */
  function renderConnection({ state: socketState, retryAt, enabled, online }, signedIn) {
    const shown = socketState === 'open' ? 'open' : socketState === 'connecting' ? 'connecting' : 'closed';
    body.dataset.connection = shown;
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
    $('connection-status').dataset.state = shown;
    if (text !== lastConnectionText) {
      $('connection-text').textContent = text; // role=status: announced only when it changes
      lastConnectionText = text;
    }
    $('connection-countdown').textContent = countdown;
    $('reconnect-now').hidden = !(socketState === 'closed' && enabled && signedIn);
    onConnection();
  }

  return { showScreen, showBanner, hideBanner, renderConnection };
}
