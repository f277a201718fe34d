// Markdown -> sanitised DOM for model output.
//
// Pipeline: marked (GFM) turns the accumulated reply text into an HTML string in
// which every piece of raw HTML the model wrote is escaped (comments dropped),
// then DOMPurify, with a small allow-list, turns that string into a
// DocumentFragment. Nothing untrusted ever reaches innerHTML: the only HTML
// parsing happens inside DOMPurify (under its Trusted Types policy when the
// browser enforces the page's `require-trusted-types-for 'script'`).

import { Marked } from '../vendor/marked/marked.esm.js';
import DOMPurify from '../vendor/dompurify/purify.es.js';

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// A URL that resolves to this page's own origin over http(s). Used for images:
// remote images are a tracking vector and are blocked by the CSP anyway.
export function isSameOriginUrl(value) {
  try {
    const url = new URL(value, window.location.href);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === window.location.origin;
  } catch {
    return false;
  }
}

const IMAGE_LINK = 'image-link';
const COMMENT = /<!--[\s\S]*?(?:-->|$)/g;
const LINE_BREAK_TAG = /^<br\s*\/?>$/i;

const marked = new Marked({ gfm: true, breaks: false, async: false, silent: true });

marked.use({
  renderer: {
    // Raw HTML written by the model is shown as text, never interpreted.
    // HTML comments are removed entirely (they would otherwise hide text).
    html({ text, block }) {
      const stripped = String(text).replace(COMMENT, '');
      if (!stripped.trim()) return '';
      if (!block && LINE_BREAK_TAG.test(stripped.trim())) return '<br>';
      const escaped = escapeHtml(block ? stripped.replace(/\n+$/, '') : stripped);
      return block ? `<p>${escaped.replace(/\n/g, '<br>')}</p>\n` : escaped;
    },
    // Same-origin images render; anything else becomes a plain link to it, marked
    // as an image by a CSS icon (app.css: a.image-link), not an emoji a font may lack.
    image(token) {
      if (isSameOriginUrl(token.href)) return false; // default renderer
      const alt = token.tokens
        ? this.parser.parseInline(token.tokens, this.parser.textRenderer)
        : token.text;
      return `<a class="${IMAGE_LINK}" href="${escapeHtml(token.href)}">${escapeHtml(alt || 'image')}</a>`;
    },
    // Task-list items: a glyph instead of a (form) checkbox.
    checkbox({ checked }) {
      return checked ? '☑ ' : '☐ ';
    },
  },
});

const ALLOWED_TAGS = [
  'a', 'b', 'blockquote', 'br', 'code', 'del', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6',
  'hr', 'i', 'img', 'kbd', 'li', 'ol', 'p', 'pre', 's', 'strong', 'sub', 'sup',
  'table', 'tbody', 'td', 'th', 'thead', 'tr', 'ul',
];
const ALLOWED_ATTR = ['href', 'title', 'alt', 'src', 'align', 'class', 'start'];

// http(s), mailto, and scheme-less (relative) URLs. No javascript:, data:, vbscript:, blob:...
const ALLOWED_URI_REGEXP = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;

DOMPurify.setConfig({
  ALLOWED_TAGS,
  ALLOWED_ATTR,
  ALLOWED_URI_REGEXP,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  ALLOW_SELF_CLOSE_IN_ATTR: false,
  SAFE_FOR_XML: true,
  KEEP_CONTENT: true,
  FORBID_TAGS: ['style', 'script', 'svg', 'math', 'iframe', 'frame', 'object', 'embed', 'form',
    'input', 'button', 'textarea', 'select', 'option', 'link', 'meta', 'base', 'template', 'noscript'],
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction', 'xlink:href'],
  RETURN_DOM_FRAGMENT: true,
});

const LANGUAGE_CLASS = /^language-[A-Za-z0-9_+#.-]{1,40}$/;
const ALIGN = /^(?:left|center|right)$/;

DOMPurify.addHook('uponSanitizeAttribute', (node, data) => {
  const name = data.attrName;
  const tag = node.nodeName;
  if (name === 'class') {
    // Raw HTML is escaped before this, so these classes come from the renderer only.
    data.keepAttr = (tag === 'CODE' && LANGUAGE_CLASS.test(data.attrValue))
      || (tag === 'A' && data.attrValue === IMAGE_LINK);
  } else if (name === 'src') {
    data.keepAttr = tag === 'IMG' && isSameOriginUrl(data.attrValue);
  } else if (name === 'align') {
    data.keepAttr = (tag === 'TD' || tag === 'TH') && ALIGN.test(data.attrValue);
  } else if (name === 'start') {
    data.keepAttr = tag === 'OL' && /^\d{1,9}$/.test(data.attrValue);
  }
});

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.nodeName === 'A') {
    if (node.hasAttribute('href')) {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer');
    }
  } else if (node.nodeName === 'IMG') {
    node.setAttribute('loading', 'lazy');
    node.setAttribute('decoding', 'async');
    node.setAttribute('referrerpolicy', 'no-referrer');
  }
});

function plainText(text) {
  const fragment = document.createDocumentFragment();
  const p = document.createElement('p');
  p.textContent = text;
  fragment.append(p);
  return fragment;
}

// Trusted UI chrome added after sanitising: a toolbar with the language and a
// copy button on code blocks, a scroll wrapper around tables.
function decorate(fragment) {
  for (const img of fragment.querySelectorAll('img:not([src])')) img.remove();
  for (const pre of fragment.querySelectorAll('pre')) {
    const wrapper = document.createElement('div');
    wrapper.className = 'code-block';
    const bar = document.createElement('div');
    bar.className = 'code-bar';
    const lang = document.createElement('span');
    lang.className = 'code-lang';
    const code = pre.querySelector('code');
    const match = code && /(?:^|\s)language-(\S+)/.exec(code.className);
    lang.textContent = match ? match[1] : '';
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'code-copy';
    copy.textContent = 'Copy';
    copy.setAttribute('aria-label', 'Copy code');
    bar.append(lang, copy);
    pre.replaceWith(wrapper);
    wrapper.append(bar, pre);
  }
  for (const table of fragment.querySelectorAll('table')) {
    const wrapper = document.createElement('div');
    wrapper.className = 'table-wrap';
    table.replaceWith(wrapper);
    wrapper.append(table);
  }
  return fragment;
}

/** Render untrusted Markdown as a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  const source = String(text ?? '');
  let html;
  try {
    html = marked.parse(source);
  } catch {
    return plainText(source);
  }
  const sanitised = DOMPurify.isSupported ? DOMPurify.sanitize(html) : null;
  // Without DOMPurify support sanitize() would hand back the input string.
  if (!(sanitised instanceof Node)) return plainText(source);
  return decorate(sanitised);
}
