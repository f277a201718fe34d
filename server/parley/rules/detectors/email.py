"""E-mail addresses, including internationalised and spelled-out ones.

Accepted (in the normalised view, so a fullwidth at sign is already ``@``):

* ``name@example.com``, ``josé@exämple.com``, ``用户@例子.广告`` (Unicode local
  parts and internationalised domains, validated by ``email-validator``);
* spaces around the signs: ``name @ example . com``;
* bracketed words: ``name [at] example [dot] com``, ``name(at)example(dot)com``;
* bare words: ``name at example dot com``. These are ordinary English too
  ("look at this dot product"), so the address is only accepted when its
  top-level domain is one people actually spell out (``com``, ``org``,
  ``uk``...; see ``SPELLED_TLDS``).

The top-level domain needs two or more characters and at least one letter.
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from parley.rules.detectors.base import Detector

_OPEN, _CLOSE = r"[\[({<]", r"[\])}>]"
_LOCAL = r"[\w%+\-][\w.%+\-]{0,63}"
# Written so that each alternative starts with a different character: no backtracking.
_AT = rf"(?:@[ ]?|[ ](?:@[ ]?|at[ ]|{_OPEN}[ ]?at[ ]?{_CLOSE}[ ]?)|{_OPEN}[ ]?at[ ]?{_CLOSE}[ ]?)"
_DOT = rf"(?:\.|[ ](?:\.[ ]|dot[ ]|{_OPEN}[ ]?dot[ ]?{_CLOSE}[ ]?)|{_OPEN}[ ]?dot[ ]?{_CLOSE}[ ]?)"
_LABEL = r"[\w\-]{1,63}"
# Every label but the last is followed by a dot, so none of them can backtrack.
CANDIDATE = rf"(?<![\w%+\-]){_LOCAL}{_AT}(?:{_LABEL}{_DOT}){{1,4}}[\w\-]{{2,63}}(?![\w\-])"

_PARTS = re.compile(rf"({_LOCAL})({_AT})", re.IGNORECASE)
_DOTS = re.compile(_DOT, re.IGNORECASE)
_SPELLED = re.compile(r"[ ](?:at|dot)[ ]", re.IGNORECASE)
SPELLED_TLDS = frozenset(
    {"com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "co", "ai", "app"}
    | {"dev", "uk", "de", "fr", "es", "nl", "ca", "au", "ch", "jp", "cn", "ru", "br", "mx"}
    | {"se", "pl", "cz", "dk", "fi", "pt", "ie", "nz", "za", "kr", "tw", "hk", "sg"}
)


def validate(text: str, start: int, end: int) -> int | None:
    """The longest address from ``start``, trying fewer domain labels if needed."""
    parts = _PARTS.match(text, start, end)
    if parts is None:
        return None
    local, at = parts.group(1), parts.group(2)
    labels = _labels(text, parts.end(), end)
    for count in range(len(labels), 1, -1):
        stop, names = labels[count - 1][0], [name for _, name in labels[:count]]
        spelled = bool(_SPELLED.fullmatch(at)) or bool(_SPELLED.search(text, parts.end(), stop))
        if _acceptable(local, names, spelled):
            return stop
    return None


def _labels(text: str, start: int, end: int) -> list[tuple[int, str]]:
    """``(end, label)`` for each domain label between ``start`` and ``end``."""
    found: list[tuple[int, str]] = []
    position = start
    for dot in _DOTS.finditer(text, start, end):
        found.append((dot.start(), text[position : dot.start()]))
        position = dot.end()
    found.append((end, text[position:end]))
    return found


def _acceptable(local: str, labels: list[str], spelled: bool) -> bool:
    tld = labels[-1].lower()
    if len(tld) < 2 or tld.isdigit() or (spelled and tld not in SPELLED_TLDS):
        return False
    try:
        validate_email(
            f"{local}@{'.'.join(labels)}",
            check_deliverability=False,
            allow_smtputf8=True,
            globally_deliverable=False,
        )
    except EmailNotValidError:
        return False
    return True


DETECTOR = Detector("email_address", CANDIDATE, validate, ignore_case=True)
