// A reply's knowledge sources: the numbered list under its text, and `[n]` in
// the text linked to source n (same-origin plain-text pages only, see items.js).

import { el } from './dom.js';

function sourceLink(source, label) {
  const link = el('a', 'citation', label);
  link.href = source.uri; // a same-origin plain-text page (checked by sourcesOf)
  link.target = '_blank';
  link.rel = 'noopener noreferrer';
  link.title = source.title;
  return link;
}

/** The numbered list of a reply's sources, under its text. */
export function renderSources(node, item) {
  const list = node.querySelector('.msg-sources');
  const sources = item.sources || [];
  if (list.dataset.count === String(sources.length)) return;
  list.dataset.count = String(sources.length);
  list.replaceChildren(...sources.map((source) => {
    const entry = el('li', 'source');
    entry.value = source.n;
    entry.append(sourceLink(source, source.title || `Source ${source.n}`));
    if (source.snippet) entry.append(el('span', 'source-snippet', source.snippet));
    return entry;
  }));
  list.hidden = sources.length === 0;
}

const CITATION = /\[(\d{1,2})\]/g;

/** `[n]` in the reply's text, for a source n it has, as a link to that source.
 * Built from text nodes (never HTML), skipping code and existing links. */
export function linkCitations(fragment, sources) {
  if (!sources.length) return fragment;
  const byNumber = new Map(sources.map((source) => [source.n, source]));
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    if (text.parentElement && text.parentElement.closest('a, code, pre')) continue;
    if (CITATION.test(text.data)) found.push(text);
    CITATION.lastIndex = 0;
  }
  for (const text of found) {
    const parts = [];
    let last = 0;
    for (const match of text.data.matchAll(CITATION)) {
      const source = byNumber.get(Number(match[1]));
      if (!source) continue;
      parts.push(document.createTextNode(text.data.slice(last, match.index)));
      parts.push(sourceLink(source, match[0]));
      last = match.index + match[0].length;
    }
    if (!parts.length) continue;
    parts.push(document.createTextNode(text.data.slice(last)));
    text.replaceWith(...parts);
  }
  return fragment;
}
