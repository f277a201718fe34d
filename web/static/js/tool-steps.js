// A reply's tool steps: one collapsed line each above its text, open (with
// Approve / Decline) only while a step waits for the user. Updated in place so a
// step the reader opened stays open; arguments and results are text, never HTML.

import { toolStatusText } from './format.js';
import { el } from './dom.js';

const UNSETTLED_STEPS = new Set(['awaiting_confirmation', 'running']);

/** The status a step is shown with: a finished reply has no step still going. */
function shownStatus(step, item) {
  return item.final && UNSETTLED_STEPS.has(step.status) ? 'interrupted' : step.status;
}

/** A tool step of this reply waits for the user's answer. */
export function waitingForUser(item) {
  if (item.final || !item.tools) return false;
  for (const step of item.tools.values()) if (step.status === 'awaiting_confirmation') return true;
  return false;
}

/** Show a reply's steps in its .msg-tools box. */
export function renderTools(node, item, announce, agentName) {
  const box = node.querySelector('.msg-tools');
  const steps = item.tools ? Array.from(item.tools.values()) : [];
  box.hidden = steps.length === 0;
  const existing = new Map(Array.from(box.children, (child) => [child.dataset.callId, child]));
  const wanted = steps.map((step) => {
    const details = existing.get(step.callId) || buildToolStep(step);
    fillToolStep(details, step, item, announce, agentName);
    return details;
  });
  const same = wanted.length === box.children.length && wanted.every((n, i) => box.children[i] === n);
  if (!same) box.replaceChildren(...wanted);
}

function buildToolStep(step) {
  const details = el('details', 'tool-step');
  details.dataset.callId = step.callId;
  const summary = el('summary', 'tool-head');
  summary.append(el('span', 'tool-name'), el('span', 'tool-status'));
  const args = el('pre', 'tool-args');
  const result = el('p', 'tool-summary');
  const confirm = el('div', 'tool-confirm');
  const question = el('p', 'tool-question');
  const approve = el('button', 'btn btn-primary tool-approve', 'Approve');
  const decline = el('button', 'btn btn-quiet tool-decline', 'Decline');
  approve.type = decline.type = 'button';
  confirm.append(question, approve, decline);
  details.append(summary, confirm, args, result);
  return details;
}

function fillToolStep(details, step, item, announce, agentName) {
  const waiting = step.status === 'awaiting_confirmation' && !item.final;
  const status = shownStatus(step, item);
  details.dataset.tool = step.tool;
  details.dataset.status = status;
  details.querySelector('.tool-name').textContent = step.tool;
  details.querySelector('.tool-status').textContent = toolStatusText(status);
  const args = JSON.stringify(step.arguments ?? {}, null, 2);
  const pre = details.querySelector('.tool-args');
  if (pre.textContent !== args) pre.textContent = args;
  const result = details.querySelector('.tool-summary');
  result.textContent = step.summary || '';
  result.hidden = !step.summary;
  const confirm = details.querySelector('.tool-confirm');
  confirm.hidden = !waiting;
  details.querySelector('.tool-question').textContent = `Allow ${step.tool} to run with these arguments?`;
  for (const button of confirm.querySelectorAll('button')) button.disabled = !!step.answering;
  if (waiting && details.dataset.asked !== 'true') {
    details.open = true; // a question must be seen; the reader may close it again
    details.dataset.asked = 'true';
    // The reply is aria-busy while it runs, so its contents are not read out.
    announce(`${agentName()} asks to run ${step.tool}. Approve or decline it.`);
  } else if (!waiting && details.dataset.asked === 'true') {
    details.open = false; // answered: collapsed like every other step
    details.dataset.asked = 'answered';
  }
}
