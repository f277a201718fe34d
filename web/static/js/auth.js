// Signing in and out: the sign-in form (a name with dev login, else an access
// token), the probe on load and after suspicious socket closes (GET /auth/session,
// which answers 200 signed in or not), and the "session expired" screen.

import { $, KEYS, store } from './dom.js';
import { errorText } from './format.js';

export function createAuth(app) {
  const { state, api, shell, body } = app;
  let bootAttempt = 0;

  function showSignin(message) {
    shell.showScreen('signin');
    body.dataset.connection = 'closed';
    const error = $('signin-error');
    error.textContent = message || '';
    error.hidden = !message;
    const field = $('signin-name') || $('signin-token');
    if (field) field.focus();
  }

  function refuse(error, text, field) {
    error.textContent = text;
    error.hidden = false;
    field.focus();
  }

  async function onSubmit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const button = $('signin-submit');
    const error = $('signin-error');
    const dev = form.dataset.mode === 'dev';
    error.hidden = true;
    button.disabled = true;
    try {
      let data;
      if (dev) {
        const name = $('signin-name').value.trim();
        if (!name) return refuse(error, 'Enter a name to continue.', $('signin-name'));
        data = await api.devLogin(name);
      } else {
        const field = $('signin-token');
        const token = field.value.trim().replace(/^Bearer\s+/i, '');
        if (!token) return refuse(error, 'Paste an access token to continue.', field);
        data = await api.tokenLogin(token);
        field.value = '';
      }
      const user = (data && data.user) || (await api.session()).user;
      app.enter(user);
    } catch (e) {
      error.textContent = e.code === 'unauthorized'
        ? (dev ? 'Sign-in was refused.' : 'That token was not accepted. Check that it is current and meant for this server.')
        : errorText(e.code, e.message);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
    return undefined;
  }

  function sessionExpired() {
    if (body.dataset.screen === 'signin') return;
    // The socket closes; the client keeps un-acknowledged messages and re-sends
    // them (same client_id) after signing in again as the same user.
    state.controller?.disconnect();
    showSignin('Your session has expired. Please sign in again.');
  }

  async function signOut() {
    app.teardown();
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

  /** After a socket close that may mean the session ended (1008, repeated failures): still signed in? */
  async function check(code) {
    try {
      const data = await api.session();
      if (!data || !data.signed_in) {
        sessionExpired();
        return false;
      }
      if (code === 1008) shell.showBanner('The server refused the live connection. Retrying…');
      return true;
    } catch (e) {
      if (e.code === 'unauthorized') sessionExpired();
      return false;
    }
  }

  /** On load: signed in already (the cookie), or the sign-in screen. */
  async function boot() {
    try {
      const data = await api.session();
      if (data && data.signed_in && data.user) app.enter(data.user);
      else showSignin('');
    } catch (e) {
      if (e.code === 'unauthorized') {
        showSignin('');
        return;
      }
      if (e.code === 'network' || e.status >= 500) {
        // Flaky network at load time: keep trying, gently.
        bootAttempt += 1;
        const delay = Math.min(15_000, 500 * 2 ** bootAttempt) * (0.5 + Math.random() / 2);
        $('loading-screen').lastElementChild.textContent = "Can't reach Parley. Retrying…";
        setTimeout(boot, delay);
        return;
      }
      showSignin(errorText(e.code, e.message));
    }
  }

  function wire() {
    $('signin-form')?.addEventListener('submit', onSubmit);
    $('signout').addEventListener('click', signOut);
  }

  return { wire, boot, check, sessionExpired, signOut };
}
