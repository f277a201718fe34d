"""URL templates: arguments fill path segments and can never move the request elsewhere."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from parley.tools.env import Environment
from parley.tools.urls import UrlTemplate

ENV = Environment({"CRM_URL": "https://crm.example.com:8443", "EMPTY": ""})
TEMPLATE = UrlTemplate.parse("${env:CRM_URL}/v1/orders/{order_id}/lines/x-{line}?v=2", ENV)

# Anything a model could send: printable text, separators, encodings, dots, unicode.
nasty = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(
        [
            "../admin",
            "..",
            "%2e%2e",
            "a/b",
            "?x=1",
            "#frag",
            "@evil.com",
            "evil.com:80",
            "//evil.com/x",
            "http://evil.com",
            "\\\\evil.com",
            "%2F..%2F",
            "\r\nHost: evil.com",
            " ",
            "😀",
        ]
    ),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


def _filled(order_id: object, line: object) -> str | None:
    try:
        return TEMPLATE.fill({"order_id": order_id, "line": line})
    except ValueError:
        return None  # refused ("", ".", ".."): refusing is always safe


@settings(max_examples=400)
@given(order_id=nasty, line=nasty)
def test_arguments_never_change_scheme_host_or_port(order_id: object, line: object) -> None:
    url = _filled(order_id, line)
    if url is None:
        return
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("https", "crm.example.com", 8443)
    assert (parts.query, parts.fragment) == ("v=2", "")
    parsed = URL(url, encoded=True)  # what aiohttp sends
    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "crm.example.com", 8443)


@settings(max_examples=400)
@given(order_id=nasty, line=nasty)
def test_each_argument_stays_in_its_own_path_segment(order_id: object, line: object) -> None:
    url = _filled(order_id, line)
    if url is None:
        return
    segments = urlsplit(url).path.split("/")
    assert segments[:4] == ["", "v1", "orders", segments[3]]
    assert len(segments) == 6 and segments[4] == "lines"
    assert segments[3] not in {".", ".."}
    assert unquote(segments[3]) == _text(order_id)
    assert unquote(segments[5]) == "x-" + _text(line)


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_dot_segments_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="order_id"):
        TEMPLATE.fill({"order_id": value, "line": "1"})


def test_objects_and_missing_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="order_id: must be a string"):
        TEMPLATE.fill({"order_id": {"a": 1}, "line": "1"})
    with pytest.raises(ValueError, match="line: missing"):
        TEMPLATE.fill({"order_id": "1"})


def test_query_arguments_are_encoded_after_the_static_query() -> None:
    url = TEMPLATE.fill({"order_id": "1", "line": "2"}, [("q", "a&b=c d"), ("q", "#")])
    assert urlsplit(url).query == "v=2&q=a%26b%3Dc%20d&q=%23"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("http://{host}/orders", "only appear in the path"),
        ("http://crm.example.com:{port}/orders", "only appear in the path"),
        ("http://crm.example.com/orders?id={id}", "only appear in the path"),
        ("{base}/orders", "absolute http"),
        ("ftp://crm.example.com/x", "absolute http"),
        ("/orders/{id}", "absolute http"),
        ("http://user:pw@crm.example.com/x", "credentials"),
        ("http://crm.example.com/x#top", "fragment"),
        ("http://crm.example.com:99999/x", "invalid port"),
        ("http://crm.example.com/{id}/{id}", "only once"),
        ("http://crm.example.com/{1id}", "not a valid placeholder"),
        ("http://crm.example.com/a b", "spaces"),
        ("${env:MISSING}/orders", "MISSING is not set"),
        ("${env:EMPTY}/orders", "EMPTY is not set"),
        ("${python}/orders", "unknown reference"),
    ],
)
def test_bad_templates_are_refused(template: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        UrlTemplate.parse(template, ENV)


def test_a_resolved_host_is_never_quoted_in_a_reason() -> None:
    env = Environment({"BASE": "https://secret-token@crm.example.com"})
    with pytest.raises(ValueError) as raised:
        UrlTemplate.parse("${env:BASE}/orders", env)
    assert "secret-token" not in str(raised.value)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
