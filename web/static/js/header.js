// The chat column's chrome for the conversation on screen: the header (title,
// agent, "Talk to a person"), the handoff strip, the welcome screen and the
// loading line. Titles are plain text (Markdown in them is dropped).
//
// Test hooks: #chat[data-view=new|conversation][data-conversation-id], #chat-title.

import { $ } from './dom.js';
import { plainTitle } from './format.js';
import { renderHandoff } from './handoff.js';
import { agentLabel, currentAgent, currentView } from './state.js';

export function createHeader(app) {
  const { state } = app;

  function title(view) {
    const listed = state.conversations.find((c) => c.id === view.conversationId);
    return plainTitle((listed && listed.title) || view.title)
      || (view.conversationId ? 'Conversation' : 'New conversation');
  }

  function agentLine() {
    const agent = currentAgent(state);
    if (!agent) return '';
    const parts = [agent.name];
    const personality = agent.personality;
    if (personality && typeof personality === 'object') {
      parts.push([personality.name, personality.tone].filter(Boolean).join(', '));
    }
    if (agent.domain && agent.domain.name) parts.push(agent.domain.name);
    return parts.filter(Boolean).join(' · ');
  }

  function updateHandoff() {
    const parts = { strip: $('handoff-status'), text: $('handoff-text'), button: $('handoff-button'), input: $('message-input') };
    renderHandoff(parts, currentView(state), agentLabel(state));
  }

  function update() {
    const view = currentView(state);
    if (!view) return;
    const chat = $('chat');
    const isNew = !view.conversationId && view.items.length === 0;
    chat.dataset.view = isNew ? 'new' : 'conversation';
    if (view.conversationId) chat.dataset.conversationId = view.conversationId;
    else delete chat.dataset.conversationId;
    $('welcome').hidden = !isNew;
    $('messages-loading').hidden = !(view.conversationId && view.items.length === 0 && !view.attached);

    const shown = title(view);
    $('chat-title').textContent = shown;
    document.title = `${shown} · Parley`;
    $('chat-agent').textContent = agentLine();
    app.messageView.refreshAuthors();
    updateHandoff();
    app.sidebar.markCurrent(view.conversationId);
    app.composer.update();
  }

  return { update, updateHandoff };
}
