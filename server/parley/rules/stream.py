"""Output rules applied to a reply while it streams.

The filter must give exactly the result of rewriting the whole reply at
once, however the model happens to chunk it, so a forbidden phrase split
across chunks never slips through. It keeps the unreleased tail of the
reply and releases text as soon as its fate is settled:

* a match attempt at position ``p`` only ever looks at characters in
  ``[p - behind, p + reach)`` (measured from the patterns at load), so once
  all of those have arrived the attempt is final. Matches found at such
  positions are rewritten and released;
* beyond that, text is held from the first position where a match attempt
  succeeds or runs into the end of the text received so far (a partial
  match, which more text could complete; see
  :func:`parley.rules.regex_tree.partial_source`). Where every attempt
  already fails, no continuation can start a match there, so the text up to
  that first position is released without waiting for the ``reach`` window.

So the hold-back is under ``reach`` characters (the longest match plus a
character of look-ahead for a trailing ``\b``), and in ordinary text it is
just the tail that still looks like the start of a match: ``"078-05-1"``
(a possible SSN), not ``"2024-11-21 the"``.
"""

from __future__ import annotations

from parley.rules.events import RuleEvent
from parley.rules.matcher import PatternSet


class OutputFilter:
    """Stateful filter for one reply: ``feed`` every chunk, then ``finish`` once."""

    def __init__(self, patterns: PatternSet, disclaimer: str | None = None) -> None:
        self._patterns = patterns
        self._disclaimer = disclaimer
        self._buffer = ""  # original text: look-behind context, then unreleased text
        self._start = 0  # index in _buffer where unreleased text begins
        self._finished = False

    @property
    def held(self) -> int:
        """Characters received but not yet released."""
        return len(self._buffer) - self._start

    def feed(self, chunk: str) -> tuple[str, list[RuleEvent]]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._buffer += chunk
        return self._drain(final=False)

    def finish(self) -> tuple[str, list[RuleEvent]]:
        if self._finished:
            raise RuntimeError("finish() called twice")
        text, events = self._drain(final=True)
        self._finished = True
        if self._disclaimer:
            text += "\n\n" + self._disclaimer
            events.append(RuleEvent(rule="disclaimer", action="disclaimer", detail="appended"))
        return text, events

    def _drain(self, *, final: bool) -> tuple[str, list[RuleEvent]]:
        buffer, position = self._buffer, self._start
        regex = self._patterns.regex
        if regex is None:
            self._buffer, self._start = "", 0
            return buffer[position:], []
        # An attempt at p reads at most buffer[p : p + reach]; when all of that has
        # arrived, more text cannot change its outcome.
        settled = len(buffer) if final else len(buffer) - self._patterns.reach + 1
        out: list[str] = []
        events: list[RuleEvent] = []
        while position < settled:
            match = regex.search(buffer, position)
            if match is None or match.start() >= settled:
                break
            replacement, event = self._patterns.resolve(match)
            out += (buffer[position : match.start()], replacement)
            if event is not None:
                events.append(event)
            position = match.end()
        release = len(buffer) if final else self._release_point(buffer, max(position, settled))
        out.append(buffer[position:release])
        # Keep only the context a look-behind or \b at the next position may read.
        cut = max(0, release - self._patterns.behind)
        self._buffer, self._start = buffer[cut:], release - cut
        return "".join(out), events

    def _release_point(self, buffer: str, unsettled: int) -> int:
        """The first unsettled position where a match or a partial match begins."""
        viable = self._patterns.viable
        found = viable.search(buffer, unsettled) if viable is not None else None
        return found.start() if found is not None else len(buffer)
