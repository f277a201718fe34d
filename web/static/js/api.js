// Same-origin REST calls with the httpOnly session cookie. Errors are ApiError
// with the server's {"error": {"code", "message"}} code, or "network".

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const TIMEOUT_MS = 20_000;

async function request(method, path, { body, headers = {}, timeout = TIMEOUT_MS } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json', ...headers },
    signal: controller.signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', "Can't reach the server.");
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    const code = error.code || (response.status === 401 ? 'unauthorized' : response.status === 404 ? 'not_found' : 'internal');
    throw new ApiError(response.status, code, error.message || response.statusText);
  }
  return data;
}

export const api = {
  me: () => request('GET', '/auth/me'),
  // Always 200 ({signed_in, user}): asking while signed out logs no failed request.
  session: () => request('GET', '/auth/session'),
  devLogin: (name) => request('POST', '/auth/dev-login', { body: { name } }),
  // The token goes straight into one request header and is not kept anywhere.
  tokenLogin: (token) => request('POST', '/auth/session', { headers: { Authorization: `Bearer ${token}` } }),
  signOut: () => request('DELETE', '/auth/session'),
  agents: () => request('GET', '/v1/agents'),
  conversations: () => request('GET', '/v1/conversations'),
  conversation: (id) => request('GET', `/v1/conversations/${encodeURIComponent(id)}`),
  deleteConversation: (id) => request('DELETE', `/v1/conversations/${encodeURIComponent(id)}`),
  renameConversation: (id, title) => request('PATCH', `/v1/conversations/${encodeURIComponent(id)}`, { body: { title } }),
  askForPerson: (id) => request('POST', `/v1/conversations/${encodeURIComponent(id)}/handoff`, { body: {} }),
  feedback: (messageId, rating, comment) => request('POST', `/v1/messages/${encodeURIComponent(messageId)}/feedback`, {
    body: comment ? { rating, comment } : { rating },
  }),
};

const conversationPath = (id) => `/v1/admin/conversations/${encodeURIComponent(id)}`;

/** The operator console's calls (admin role). */
export const adminApi = {
  queue: () => request('GET', '/v1/admin/queue'),
  agents: () => request('GET', '/v1/agents'),
  conversation: (id) => request('GET', conversationPath(id)),
  conversations: (filters) => request('GET', `/v1/admin/conversations?${new URLSearchParams(filters)}`),
  takeOver: (id) => request('POST', `${conversationPath(id)}/takeover`),
  release: (id) => request('POST', `${conversationPath(id)}/release`),
  say: (id, text, clientId) => request('POST', `${conversationPath(id)}/messages`, { body: { text, client_id: clientId } }),
};
