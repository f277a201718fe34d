"""Output rules applied to a reply while it streams.

The filter must give exactly the result of rewriting the whole reply at
once, however the model happens to chunk it, so a forbidden phrase split
across chunks never slips through. Rules match the normalised view
(:mod:`parley.rules.normalize`), which the filter builds incrementally: each
chunk is normalised once, as it arrives, and the view never depends on the
chunking. The filter keeps the unreleased tail of the reply, in the view and
in the original, and releases text as soon as its fate is settled:

* a match attempt at view position ``p`` only ever looks at view characters
  in ``[p - behind, p + reach)`` (measured from the patterns at load), so
  once all of those have arrived the attempt is final. Matches found at such
  positions are rewritten (in the original text, through the view's map)
  and released;
* beyond that, text is held from the first position where a match attempt
  succeeds or runs into the end of the view so far (a partial match, which
  more text could complete; see :func:`parley.rules.regex_tree.partial_source`).
  Where every attempt already fails, no continuation can start a match
  there, so the text up to that first position is released without waiting
  for the ``reach`` window.

So the hold-back is under ``reach`` view characters, and in ordinary text it
is just the tail that still looks like the start of a match: ``"078-05-1"``
(a possible SSN), not ``"2024-11-21 the"``. The normaliser itself holds at
most a Markdown ``_``/``~`` run or an HTML character reference it is still
reading.
"""

from __future__ import annotations

from parley.rules.closing import append_text
from parley.rules.events import RuleEvent
from parley.rules.matcher import PatternSet
from parley.rules.normalize import Normalizer, View


class OutputFilter:
    """Stateful filter for one reply: ``feed`` every chunk, then ``finish`` once."""

    def __init__(self, patterns: PatternSet, disclaimer: str | None = None) -> None:
        self._patterns = patterns
        self._disclaimer = disclaimer
        self._normalizer = Normalizer()
        self._view = View()  # look-behind context, then unreleased view characters
        self._start = 0  # index in _view where unreleased characters begin
        self._text = ""  # the original text not yet released
        self._base = 0  # original offset of _text[0]: everything before it is released
        self._released: list[str] = []  # what the reply says so far, for finish()
        self._finished = False

    @property
    def held(self) -> int:
        """Characters of the reply received but not yet released."""
        return len(self._text)

    @property
    def held_view(self) -> int:
        """Of those, the characters already in the view: always fewer than ``reach``."""
        return len(self._view) - self._start

    def feed(self, chunk: str) -> tuple[str, list[RuleEvent]]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._text += chunk
        if self._patterns:
            self._normalizer.feed_into(self._view, chunk)
        return self._release(*self._drain(final=False))

    def finish(self) -> tuple[str, list[RuleEvent]]:
        if self._finished:
            raise RuntimeError("finish() called twice")
        if self._patterns:
            self._view.extend(self._normalizer.finish())
        text, events = self._release(*self._drain(final=True))
        self._finished = True
        if self._disclaimer:
            suffix, event = append_text("".join(self._released), self._disclaimer)
            text += suffix
            events.append(event)
        return text, events

    def _release(self, text: str, events: list[RuleEvent]) -> tuple[str, list[RuleEvent]]:
        if text and self._disclaimer:
            self._released.append(text)
        return text, events

    def _drain(self, *, final: bool) -> tuple[str, list[RuleEvent]]:
        if not self._patterns:
            text, self._text, self._base = self._text, "", self._base + len(self._text)
            return text, []
        view, released = self._view, self._base
        # An attempt at p reads at most view[p : p + reach]; when all of that has
        # arrived, more text cannot change its outcome.
        settled = len(view) if final else len(view) - self._patterns.reach + 1
        position = self._start
        out: list[str] = []
        events: list[RuleEvent] = []
        while (hit := self._patterns.next_hit(view.text, position, settled)) is not None:
            start, end = view.source(hit.start, hit.end)
            start = max(start, released)  # one character may fold to several: "ﬁ" to "fi"
            out += (
                self._original(released, start),
                hit.rule.substitute(self._original(start, end)),
            )
            events.append(hit.rule.event())
            released, position = end, hit.end
        unsettled = self._release_point(max(position, settled)) if not final else len(view)
        until = max(released, self._release_offset(unsettled, final))
        out.append(self._original(released, until))
        self._forget(unsettled, until)
        return "".join(out), events

    def _original(self, start: int, end: int) -> str:
        return self._text[start - self._base : end - self._base]

    def _release_point(self, unsettled: int) -> int:
        """The first unsettled view position where a match or a partial match begins."""
        viable = self._patterns.viable
        found = viable.search(self._view.text, unsettled) if viable is not None else None
        return found.start() if found is not None else len(self._view)

    def _release_offset(self, unsettled: int, final: bool) -> int:
        """The original offset up to which text may go out."""
        if final:
            return self._base + len(self._text)
        if unsettled < len(self._view):
            return self._view.starts[unsettled]
        return self._normalizer.committed  # past the view: what the normaliser still decides

    def _forget(self, unsettled: int, until: int) -> None:
        """Drop what is released, keeping the view context a look-behind may read."""
        cut = max(0, unsettled - self._patterns.behind)
        self._view.drop_before(cut)
        self._start = unsettled - cut
        self._text = self._text[until - self._base :]
        self._base = until
