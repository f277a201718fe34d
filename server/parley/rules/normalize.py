"""The normalised view of a text: what every rule matches against.

Text that renders the same must match the same, however it is spelled in
code points. The view folds each character (:func:`parley.rules.fold.fold_char`:
invisible characters and accents dropped, NFKC, digits of every script as
ASCII, TR39 confusable prototypes), and on top of that:

* a run of whitespace is one space (a space, a tab, NBSP, a newline...);
* Markdown emphasis is ignored: ``*`` and backticks anywhere, and ``_`` or
  ``~`` where they open or close a word (``**guaranteed** returns``,
  ``~~risk~~-free``). Inside a word (``snake_case``) they are kept, as
  Markdown keeps them;
* HTML character references are decoded (``&#103;`` and ``&nbsp;`` render as
  ``g`` and a space, so they match as ``g`` and a space).

Every view character remembers the span of original characters it came
from, so a match found in the view rewrites the original text: a redaction
replaces the whole original span, including any invisible characters inside
it. A run of whitespace maps its view space to the run's first character;
the rest of the run, like every dropped character, belongs to no view
character and is kept as written unless a match covers it.

:class:`Normalizer` builds the view a chunk at a time and its result never
depends on where chunks are cut: it holds back only a pending ``_``/``~``
run (at most three characters, whose fate depends on the next character)
and a character reference still being read (at most 32 characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.entities import html5

from parley.rules.fold import fold_char

MAX_REFERENCE = 32  # "&CounterClockwiseContourIntegral;" is the longest named reference
_PLAIN = re.compile(r"[!-%'-)+-^a-}]+")  # printable ASCII that is its own view (not *_`~&)
# A typical streamed token (" the", "ing.", " 2024"): words of that ASCII and single spaces.
_IDENTITY = re.compile(r" ?(?:[!-%'-)+-^a-}]+(?: [!-%'-)+-^a-}]+)* ?)?")
_KEPT_RUN = {"_": 3, "~": 1}  # longer runs are never kept: they are markup, not text
_DECIMAL = re.compile(r"#([0-9]{1,7})")
_HEX = re.compile(r"#[xX]([0-9a-fA-F]{1,6})")


@dataclass
class View:
    """Normalised text; ``starts[i]:ends[i]`` is the original span of ``text[i]``."""

    text: str = ""
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.text)

    def source(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the view characters ``[start, end)`` (``end > start``)."""
        return self.starts[start], self.ends[end - 1]

    def extend(self, more: View) -> None:
        self.text += more.text
        self.starts += more.starts
        self.ends += more.ends

    def drop_before(self, index: int) -> None:
        """Forget the first ``index`` characters (the streaming filter's settled past)."""
        if index:
            self.text = self.text[index:]
            del self.starts[:index]
            del self.ends[:index]


def normalize(text: str) -> View:
    """The whole view of ``text`` at once."""
    normalizer = Normalizer()
    view = normalizer.feed(text)
    view.extend(normalizer.finish())
    return view


def decode_reference(body: str) -> str | None:
    """The text of the character reference ``&body;`` (CommonMark rules), or None."""
    if not body.startswith("#"):
        return html5.get(body + ";")
    decimal, hexadecimal = _DECIMAL.fullmatch(body), _HEX.fullmatch(body)
    if decimal is not None:
        value = int(decimal.group(1))
    elif hexadecimal is not None:
        value = int(hexadecimal.group(1), 16)
    else:
        return None
    if value == 0 or 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
        return "\ufffd"
    return chr(value)


class Normalizer:
    """Builds a :class:`View` a chunk at a time; offsets count from the first chunk."""

    def __init__(self) -> None:
        self._offset = 0  # original offset of the next character fed
        self._parts: list[str] = []  # view text produced since feed() last returned
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._last = ""  # the last view character produced
        self._run: list[tuple[str, int, int]] = []  # an undecided "_" or "~" run
        self._run_char = ""  # the marker of the current run; "" when there is none
        self._reference = ""  # a character reference being read, from its "&"
        self._reference_start = 0

    @property
    def committed(self) -> int:
        """Original offset before which every character has its final place in the view."""
        if self._run:
            return self._run[0][1]
        return self._reference_start if self._reference else self._offset

    def feed_into(self, view: View, chunk: str) -> None:
        """``feed``, appending to ``view`` (the streaming filter's hot path: no copies)."""
        if not self._maps_to_itself(chunk):
            view.extend(self.feed(chunk))
            return
        at = self._offset
        view.text += chunk
        view.starts.extend(range(at, at + len(chunk)))
        view.ends.extend(range(at + 1, at + len(chunk) + 1))
        self._offset += len(chunk)
        self._last = chunk[-1]

    def feed(self, chunk: str) -> View:
        """The view characters that ``chunk`` settles (it may also settle earlier ones)."""
        base, index = self._offset, 0
        while index < len(chunk):
            plain = None if self._reference else _PLAIN.match(chunk, index)
            if plain is None:
                self._char(chunk[index], base + index)
                index += 1
                continue
            run = plain.group()
            self._settle(run[0])
            self._emit_run(run, base + index)
            index = plain.end()
        self._offset += len(chunk)
        return self._take()

    def _maps_to_itself(self, chunk: str) -> bool:
        """Whether ``chunk`` is its own view, with nothing pending before it (the hot path)."""
        if not chunk or self._run_char or self._reference:
            return False
        if chunk[0] == " " and self._last == " ":
            return False
        return _IDENTITY.fullmatch(chunk) is not None

    def finish(self) -> View:
        """Everything still pending: an unfinished reference is plain text after all."""
        self._replay_reference()
        self._settle("")
        return self._take()

    def _take(self) -> View:
        out = View("".join(self._parts), self._starts, self._ends)
        self._parts, self._starts, self._ends = [], [], []
        return out

    def _char(self, char: str, at: int) -> None:
        if self._reference and self._read_reference(char, at):
            return
        if char == "&":
            self._reference, self._reference_start = "&", at
            return
        for folded in fold_char(char):
            self._unit(folded, at, at + 1)

    def _read_reference(self, char: str, at: int) -> bool:
        """Whether ``char`` was consumed as part of the reference being read."""
        if char == ";":
            decoded = decode_reference(self._reference[1:])
            if decoded is not None:
                start, self._reference = self._reference_start, ""
                for folded in "".join(fold_char(c) for c in decoded):
                    self._unit(folded, start, at + 1)
                return True
        elif len(self._reference) < MAX_REFERENCE and (
            (char.isascii() and char.isalnum()) or char == "#"
        ):
            self._reference += char
            return True
        self._replay_reference()
        return False

    def _replay_reference(self) -> None:
        """Not a reference after all: its characters are plain text."""
        raw, start, self._reference = self._reference, self._reference_start, ""
        for index, char in enumerate(raw):
            for folded in fold_char(char):
                self._unit(folded, start + index, start + index + 1)

    def _unit(self, char: str, start: int, end: int) -> None:
        """Place one folded character: emit it, merge it, drop it or wait."""
        if char in "*`":
            return  # emphasis and code-span markers never matter to a rule
        if char in _KEPT_RUN:
            self._marker(char, start, end)
            return
        self._settle(char)
        if char != " " or self._last != " ":
            self._emit(char, start, end)

    def _marker(self, char: str, start: int, end: int) -> None:
        if char != self._run_char:
            self._settle(char)
            self._run_char = char
        elif not self._run:
            return  # a run already too long to be kept
        self._run.append((char, start, end))
        if len(self._run) > _KEPT_RUN[char]:
            self._run = []  # too long: dropped, as is the rest of it

    def _settle(self, following: str) -> None:
        """Decide the pending run now that the character after it is known."""
        if not self._run_char:
            return
        run, self._run, self._run_char = self._run, [], ""
        if run and self._keeps(run[0][0], len(run), following):
            for char, start, end in run:
                self._emit(char, start, end)

    def _keeps(self, marker: str, length: int, following: str) -> bool:
        before, after = self._last.isalnum(), following.isalnum()
        if marker == "_":
            return before and after  # inside a word: snake_case, not emphasis
        # A lone "~" touching a word on one side only is a strikethrough delimiter.
        return length == 1 and before == after

    def _emit(self, char: str, start: int, end: int) -> None:
        self._parts.append(char)
        self._starts.append(start)
        self._ends.append(end)
        self._last = char

    def _emit_run(self, run: str, at: int) -> None:
        self._parts.append(run)
        self._starts.extend(range(at, at + len(run)))
        self._ends.extend(range(at + 1, at + len(run) + 1))
        self._last = run[-1]
