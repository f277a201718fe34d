"""HTML to text, safely: the words a reader sees, sections by headings, no markup kept.

Python's own :class:`html.parser.HTMLParser` tokenises the page (it never
runs or fetches anything). Elements whose content is not prose (scripts,
styles, templates, embedded documents) are dropped with everything inside
them; block elements end paragraphs; ``h1`` to ``h6`` start sections. What
comes out is plain text, so nothing of the page can reach a browser as HTML.
"""

from __future__ import annotations

from html.parser import HTMLParser

from parley.knowledge.documents import ParsedDocument, Section, normalise

# Content never shown as text (or not text at all).
_SKIPPED = frozenset(
    {
        "script",
        "style",
        "template",
        "noscript",
        "iframe",
        "object",
        "embed",
        "svg",
        "math",
        "canvas",
        "select",
        "button",
        "textarea",
    }
)
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "aside",
        "header",
        "footer",
        "nav",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "table",
        "tr",
        "blockquote",
        "pre",
        "figure",
        "figcaption",
        "address",
        "details",
        "summary",
        "form",
        "fieldset",
        "hr",
        "br",
    }
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.title: str | None = None
        self._path: list[tuple[int, str]] = []
        self._text: list[str] = []
        self._skipping: list[str] = []  # open skipped elements, innermost last
        self._heading: tuple[int, list[str]] | None = None
        self._in_title = False
        self._title_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag == self._skipping[-1] or (tag in _SKIPPED and tag not in _VOID):
                self._skipping.append(tag)
            return
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            if tag not in _VOID:
                self._skipping.append(tag)
        elif tag in _HEADINGS:
            self._flush()
            self._heading = (_HEADINGS[tag], [])
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.pop()
            return
        if tag == "title":
            self._in_title = False
            self.title = self.title or " ".join("".join(self._title_text).split()) or None
        elif tag in _HEADINGS and self._heading is not None:
            level, words = self._heading
            heading = " ".join("".join(words).split())
            self._heading = None
            if heading:
                self._path = [(lvl, h) for lvl, h in self._path if lvl < level]
                self._path.append((level, heading))
        elif tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self._title_text.append(data)
        elif self._heading is not None:
            self._heading[1].append(data)
        else:  # a source line break inside a paragraph is a space
            self._text.append(data.replace("\n", " "))

    def close(self) -> None:
        super().close()
        self._flush()

    def _break(self) -> None:
        self._text.append("\n\n")

    def _flush(self) -> None:
        body = normalise("".join(self._text))
        if body:
            self.sections.append(Section(tuple(h for _, h in self._path), body))
        self._text = []


def read_html(text: str, fallback_title: str) -> ParsedDocument:
    reader = _Reader()
    reader.feed(text)
    reader.close()
    first_h1 = next((s.heading_path[0] for s in reader.sections if s.heading_path), None)
    title = reader.title or first_h1 or fallback_title
    return ParsedDocument(title, "html", tuple(reader.sections))
