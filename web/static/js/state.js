// The page's state, in one object every module is handed (no module keeps its own):
// who is signed in, the agents and conversations listed, and the chat controller
// of the conversation on screen (which owns the ParleyClient and its socket).

import { agentLimit } from './chat.js';

export function createState(body) {
  return {
    config: {
      devLogin: body.dataset.devLogin === 'true',
      // The server's limit for any message; an agent's own (often lower) wins once known.
      maxChars: Number.parseInt(body.dataset.maxMessageChars || '0', 10) || 0,
    },
    user: null,
    agents: [],
    agentsById: new Map(),
    conversations: [],
    controller: null,
    wasOpen: false, // the socket has been open before (a reopen refreshes the list)
  };
}

/** The conversation on screen (chat.js's view), or null before signing in. */
export function currentView(state) {
  return state.controller ? state.controller.view : null;
}

/** The agent of the conversation on screen: from the agent list, else the session. */
export function currentAgent(state) {
  const view = currentView(state);
  if (!view) return null;
  const id = (view.agent && view.agent.id) || view.agentId
    || state.conversations.find((c) => c.id === view.conversationId)?.agent_id;
  return state.agentsById.get(id) || (view.agent && view.agent.name ? view.agent : null);
}

export function agentLabel(state) {
  return currentAgent(state)?.name || 'the assistant';
}

/** The longest message the current agent accepts (the session's word first), 0 when unlimited. */
export function messageLimit(state) {
  const view = currentView(state);
  return agentLimit(view && view.agent) || agentLimit(currentAgent(state)) || state.config.maxChars;
}
