// A person in the conversation: the "Talk to a person" button, and the strip under
// the header saying a person was asked for, holds the conversation, or handed it
// back. Names come from the server and are shown as text only.
//
// Test hooks: #handoff-status[data-state="none"|"waiting"|"taken"|"released"]
// (text in #handoff-text) and #handoff-button.

function personName(handoff) {
  return (handoff.by && String(handoff.by.name || '').trim()) || 'A person';
}

/** What the strip says for a state ('' hides it). */
export function handoffText(handoff, agentName) {
  switch (handoff.state) {
    case 'waiting': return `Waiting for a person to join. ${agentName} can keep helping meanwhile.`;
    case 'taken': return `${personName(handoff)} has joined the conversation and is replying.`;
    case 'released': return `${personName(handoff)} handed the conversation back to ${agentName}.`;
    default: return '';
  }
}

/** A sentence for screen readers when the state changes (null: nothing to say). */
export function handoffAnnouncement(handoff, agentName) {
  return handoffText(handoff, agentName) || null;
}

/**
 * Show a conversation's handoff state.
 * @param {{strip: HTMLElement, text: HTMLElement, button: HTMLButtonElement, input: HTMLTextAreaElement}} parts
 */
export function renderHandoff(parts, view, agentName) {
  const handoff = view ? view.handoff : { state: 'none' };
  const text = handoffText(handoff, agentName);
  parts.strip.dataset.state = handoff.state;
  parts.strip.hidden = !text;
  if (parts.text.textContent !== text) parts.text.textContent = text;
  const asked = handoff.state === 'waiting' || handoff.state === 'taken';
  parts.button.hidden = !(view && view.conversationId);
  parts.button.disabled = asked || !(view && view.attached);
  parts.button.textContent = handoff.state === 'waiting' ? 'Person requested' : 'Talk to a person';
  parts.input.placeholder = handoff.state === 'taken' ? `Message ${personName(handoff)}…` : 'Message Parley…';
}
