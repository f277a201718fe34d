// The agent picker on the new-conversation screen: cards from GET /v1/agents in a
// radio group; the last choice is remembered (localStorage, a UI preference).

import { $, el, KEYS, stored } from './dom.js';
import { errorText, initials } from './format.js';
import { currentView } from './state.js';

export function createAgents(app) {
  const { state, api } = app;

  async function load() {
    const picker = $('agent-picker');
    const status = $('agent-picker-status');
    status.textContent = 'Loading agents…';
    try {
      const data = await api.agents();
      state.agents = Array.isArray(data && data.agents) ? data.agents : [];
      state.agentsById = new Map(state.agents.map((a) => [a.id, a]));
      render();
    } catch (e) {
      if (e.code === 'unauthorized') {
        app.auth.sessionExpired();
        return;
      }
      const retry = el('button', 'link-btn', 'Try again');
      retry.type = 'button';
      retry.addEventListener('click', load);
      status.replaceChildren(el('span', '', `Couldn't load agents. ${errorText(e.code)} `), retry);
      picker.replaceChildren(picker.querySelector('legend'), status);
    }
  }

  function selectedId() {
    const checked = document.querySelector('#agent-picker input[name="agent"]:checked');
    return checked ? checked.value : stored('localStorage', KEYS.agent);
  }

  function card(agent, index, selected) {
    const label = el('label', 'agent-card');
    const input = el('input', 'agent-radio');
    input.type = 'radio';
    input.name = 'agent';
    input.value = agent.id;
    input.id = `agent-option-${index}`;
    input.checked = agent.id === selected;
    const text = el('span', 'agent-text');
    const top = el('span', 'agent-top');
    top.append(el('span', 'agent-avatar', initials(agent.name)), el('span', 'agent-name', agent.name || agent.id));
    text.append(top);
    const personality = agent.personality || {};
    const meta = [personality.name, personality.tone].filter(Boolean).join(' · ');
    if (meta) text.append(el('span', 'agent-personality', meta));
    if (agent.domain && agent.domain.name) text.append(el('span', 'agent-domain', agent.domain.name));
    if (agent.description) text.append(el('span', 'agent-desc', agent.description));
    label.append(input, text);
    return label;
  }

  function render() {
    const picker = $('agent-picker');
    const legend = picker.querySelector('legend');
    const status = $('agent-picker-status');
    if (!state.agents.length) {
      status.textContent = 'No agents are available.';
      picker.replaceChildren(legend, status);
      return;
    }
    const view = currentView(state);
    const preferred = (view && view.agentId) || stored('localStorage', KEYS.agent);
    const selected = state.agentsById.has(preferred) ? preferred : state.agents[0].id;
    status.textContent = '';
    picker.replaceChildren(legend, ...state.agents.map((agent, index) => card(agent, index, selected)));
    if (state.controller) state.controller.setAgent(selected);
    app.header.update();
  }

  return { load, selectedId };
}
