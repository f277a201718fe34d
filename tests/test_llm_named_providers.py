"""Named providers (providers.yaml) against the fake vendor at the HTTP boundary.

Every kind is built the way ``parley serve`` builds it, from a catalog's
``providers.yaml`` and an environment, and talks to the real local fake:
OpenAI-compatible servers by base URL, Azure by deployment URL, Bedrock with a
SigV4 signature over the exact request, Vertex with a bearer token.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from google.oauth2.credentials import Credentials as GoogleUserCredentials

from parley.catalog.errors import CatalogError
from parley.config import Settings
from parley.llm.azure import AzureOpenAIProvider
from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ModelRef,
    Provider,
    ProviderError,
    StreamEvent,
    TextDelta,
    Usage,
)
from parley.llm.bedrock import BEDROCK_VERSION, BedrockProvider
from parley.llm.providers import PROVIDERS_FILE, load_specs, named_in_file, unknown_providers
from parley.llm.router import LLMRouter
from parley.llm.vertex import VERTEX_VERSION, VertexProvider
from support.fake_llm import BEDROCK_CHUNK, FakeLLM, RecordedRequest, Script, aws_event

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")

MESSAGES = (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"))
GROQ_KEY = "gsk_test_0123456789abcdef"
AZURE_KEY = "azure-test-key-0123456789"
ENV = {"GROQ_API_KEY": GROQ_KEY, "AZURE_OPENAI_API_KEY": AZURE_KEY, "OR_KEY": "sk-or-test-0123"}


def request(model: str) -> ChatRequest:
    return ChatRequest(model, MESSAGES, max_tokens=50)


async def events_of(provider: Provider, chat: ChatRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(chat)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def write_providers(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / PROVIDERS_FILE).write_text(text)
    return root


def settings_for(root: Path) -> Settings:
    # Only the file's providers: the environment's two are not configured here.
    return Settings(catalog=root, openai_api_key=None, openai_base_url=None, anthropic_api_key=None)


@pytest.fixture
async def routers() -> AsyncIterator[list[LLMRouter]]:
    made: list[LLMRouter] = []
    yield made
    for router in made:
        await router.aclose()


def router_from(
    root: Path, routers: list[LLMRouter], environ: Mapping[str, str] = ENV
) -> LLMRouter:
    router = LLMRouter.from_settings(settings_for(root), environ=environ)
    routers.append(router)
    return router


def provider_of(router: LLMRouter, name: str) -> Provider:
    return router._providers[name]


# -- providers.yaml -------------------------------------------------------------------


def compatible_servers(fake: FakeLLM) -> str:
    return f"""\
providers:
  groq:
    kind: openai
    base_url: {fake.base_url}
    api_key: ${{env:GROQ_API_KEY}}
  openrouter:
    kind: openai
    base_url: {fake.base_url}
    api_key: ${{env:OR_KEY}}
    headers: {{HTTP-Referer: "https://parley.example", X-Title: Parley}}
    models: {{gpt-4o: openai/gpt-4o}}
  ollama:
    kind: openai
    base_url: {fake.base_url}
"""


async def test_openai_compatible_servers_by_name(
    tmp_path: Path, fake: FakeLLM, routers: list[LLMRouter]
) -> None:
    router = router_from(write_providers(tmp_path, compatible_servers(fake)), routers)
    fake.enqueue(Script(chunks=["Hi"]), Script(chunks=["Yo"]), Script(chunks=["Hey"]))

    groq = await events_of(provider_of(router, "groq"), request("llama-3.3-70b"))
    routed = await events_of(provider_of(router, "openrouter"), request("gpt-4o"))
    local = await events_of(provider_of(router, "ollama"), request("llama3.2"))

    assert [text_of(e) for e in (groq, routed, local)] == ["Hi", "Yo", "Hey"]
    to_groq, to_openrouter, to_ollama = fake.requests
    assert {r.path for r in fake.requests} == {"/v1/chat/completions"}
    assert to_groq.headers["authorization"] == f"Bearer {GROQ_KEY}"
    assert to_groq.model == "llama-3.3-70b"
    # Mapped to the router's slug; its attribution headers sent beside the key.
    assert to_openrouter.model == "openai/gpt-4o"
    assert to_openrouter.headers["x-title"] == "Parley"
    assert to_openrouter.headers["http-referer"] == "https://parley.example"
    assert to_openrouter.headers["authorization"] == "Bearer sk-or-test-0123"
    assert to_ollama.headers["authorization"] == "Bearer not-needed"  # no key configured


async def test_named_provider_errors_never_show_the_key(
    tmp_path: Path, fake: FakeLLM, routers: list[LLMRouter]
) -> None:
    router = router_from(write_providers(tmp_path, compatible_servers(fake)), routers)
    fake.enqueue(Script(status=401, error_message=f"Incorrect API key provided: {GROQ_KEY}"))

    with pytest.raises(ProviderError) as raised:
        await events_of(provider_of(router, "groq"), request("llama-3.3-70b"))

    assert GROQ_KEY not in str(raised.value) and "[redacted]" in str(raised.value)
    # Neither the provider nor the file's spec shows it either.
    assert GROQ_KEY not in repr(provider_of(router, "groq"))
    specs = load_specs(tmp_path, ENV)
    assert "${env:GROQ_API_KEY}" in repr(specs["groq"]) and GROQ_KEY not in repr(specs)


async def test_the_environment_providers_stay_unless_the_file_replaces_them(
    tmp_path: Path, fake: FakeLLM, routers: list[LLMRouter]
) -> None:
    write_providers(
        tmp_path,
        f"providers:\n  openai:\n    kind: openai\n    base_url: {fake.base_url}\n",
    )
    settings = Settings(
        catalog=tmp_path,
        openai_api_key="sk-env-openai-0123456789",
        anthropic_api_key="sk-ant-env-0123456789",
        anthropic_base_url=fake.anthropic_base_url,
    )
    router = LLMRouter.from_settings(settings, environ={})
    routers.append(router)
    fake.enqueue(Script(chunks=["file"]))

    await events_of(provider_of(router, "openai"), request("gpt-4o-mini"))

    # The file's openai (no key) replaced the environment's; anthropic is the environment's.
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"
    assert router.has_provider("anthropic") and router.has_provider("demo")
    assert named_in_file(tmp_path) == {"openai"}
    assert settings.problems() == []


def problems_of(root: Path, text: str, environ: Mapping[str, str] = ENV) -> list[str]:
    write_providers(root, text)
    with pytest.raises(CatalogError) as raised:
        load_specs(root, environ)
    return raised.value.problems


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "providers:\n  groq:\n    kind: openai\n    api_key: gsk_literal_key\n",
            "providers.yaml: line 4: providers.groq.api_key: must be an ${env:NAME} reference;"
            " keep keys out of the file",
        ),
        (
            "providers:\n  groq:\n    kind: openai\n    api_key: ${env:NOT_SET_ANYWHERE}\n",
            "providers.yaml: line 4: providers.groq.api_key: environment variable"
            " NOT_SET_ANYWHERE is not set",
        ),
        (
            "providers:\n  x:\n    kind: cohere\n",
            "providers.yaml: line 2: providers.x: Input tag 'cohere' found using 'kind' does not"
            " match any of the expected tags: 'openai', 'anthropic', 'azure', 'bedrock', 'vertex'",
        ),
        (
            "providers:\n  groq:\n    kind: openai\n    base_url: api.groq.com\n",
            "providers.yaml: line 4: providers.groq.base_url: must be an http:// or https:// URL",
        ),
        (
            "providers:\n  groq:\n    kind: openai\n    baseurl: https://api.groq.com\n",
            "providers.yaml: line 4: providers.groq.baseurl: unknown field (check the spelling;"
            " see docs/clients.md)",
        ),
        (
            "providers:\n  azure:\n    kind: azure\n    endpoint: https://r.openai.azure.com\n",
            "providers.yaml: line 2: providers.azure: api_key is required (or set auth: entra_id)",
        ),
        (
            "providers:\n  aws:\n    kind: bedrock\n    region: us-east-1\n"
            "    access_key_id: ${env:GROQ_API_KEY}\n",
            "providers.yaml: line 2: providers.aws: access_key_id and secret_access_key go"
            " together",
        ),
        (
            "providers:\n  aws:\n    kind: bedrock\n    region: Virginia\n",
            "providers.yaml: line 4: providers.aws.region: String should match pattern"
            " '^[a-z]{2}(-[a-z]+)+-\\d+$'",
        ),
        (
            "providers:\n  demo:\n    kind: openai\n",
            "providers.yaml: line 2: providers.demo: 'demo' is reserved for the built-in"
            " offline model",
        ),
        (
            "providers:\n  Groq:\n    kind: openai\n",
            "providers.yaml: line 2: providers.Groq: String should match pattern"
            " '^[a-z][a-z0-9_-]{0,31}$'",
        ),
        (
            "providers:\n  g:\n    kind: openai\n  g:\n    kind: openai\n",
            "providers.yaml: line 4: duplicate key 'g'",
        ),
        (
            "providers: [groq]\n",
            "providers.yaml: line 1: providers: Input should be a valid dictionary",
        ),
    ],
    ids=[
        "literal-key",
        "unset-variable",
        "unknown-kind",
        "not-a-url",
        "misspelt-field",
        "azure-without-key",
        "half-a-key-pair",
        "bad-region",
        "reserved-name",
        "bad-name",
        "duplicate",
        "not-a-mapping",
    ],
)
def test_providers_file_problems_point_at_their_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    assert problems_of(tmp_path, text) == [problem]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        "providers:\n"
        "  a:\n    kind: openai\n    api_key: ${env:MISSING_A}\n"
        "  b:\n    kind: anthropic\n    api_key: ${env:MISSING_B}\n"
        "  c:\n    kind: vertex\n    project: p\n    region: us-east5\n"
        "    credentials_file: /nonexistent/sa.json\n",
    )
    assert problems == [
        "providers.yaml: line 4: providers.a.api_key: environment variable MISSING_A is not set",
        "providers.yaml: line 7: providers.b.api_key: environment variable MISSING_B is not set",
        "providers.yaml: line 12: providers.c.credentials_file: no such file: /nonexistent/sa.json",
    ]


def test_no_file_or_an_empty_one_means_no_named_providers(tmp_path: Path) -> None:
    assert load_specs(tmp_path, {}) == {}
    write_providers(tmp_path, "# nothing yet\n")
    assert load_specs(tmp_path, {}) == {}


def test_models_naming_no_provider_are_reported(tmp_path: Path, fake: FakeLLM) -> None:
    specs = load_specs(write_providers(tmp_path, compatible_servers(fake)), ENV)
    assert unknown_providers(specs, ModelRef("groq", "llama-3.3-70b"), None) == []
    assert unknown_providers(specs, ModelRef("grok", "3"), None) == [
        "PARLEY_MODEL: grok:3: no provider 'grok' (anthropic, demo, groq, ollama, openai,"
        " openrouter)"
    ]


# -- Azure OpenAI ---------------------------------------------------------------------


def azure_file(fake: FakeLLM) -> str:
    return f"""\
providers:
  azure:
    kind: azure
    endpoint: http://127.0.0.1:{fake.port}
    api_version: "2024-10-21"
    api_key: ${{env:AZURE_OPENAI_API_KEY}}
    deployments:
      gpt-4o: prod-gpt-4o
"""


async def test_azure_sends_to_the_deployment_with_the_api_key_header(
    tmp_path: Path, fake: FakeLLM, routers: list[LLMRouter]
) -> None:
    router = router_from(write_providers(tmp_path, azure_file(fake)), routers)
    fake.enqueue(Script(chunks=["Hej"], prompt_tokens=9, completion_tokens=1))

    events = await events_of(provider_of(router, "azure"), request("gpt-4o"))

    assert events == [TextDelta("Hej"), Usage(9, 1), Finish("stop")]
    [sent] = fake.requests
    assert sent.path == "/openai/deployments/prod-gpt-4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == AZURE_KEY
    assert "authorization" not in sent.headers
    # Priced, windowed and counted as OpenAI's gpt-4o.
    assert router.cost_usd(ModelRef("azure", "gpt-4o"), 1_000_000, 0) == 2.50
    assert router.context_window(ModelRef("azure", "gpt-4o")) == 128_000


class FakeEntraCredential:
    """Stands in for azure-identity's credential chain (azure.core's AsyncTokenCredential)."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.lifetime = lifetime
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"entra-token-{len(self.scopes)}", int(time.time() + self.lifetime))

    async def close(self) -> None:
        self.closed = True


async def test_azure_entra_id_sends_a_bearer_token_renewed_before_expiry(fake: FakeLLM) -> None:
    lasting, expiring = FakeEntraCredential(), FakeEntraCredential(lifetime=60)
    providers = [
        AzureOpenAIProvider("azure", f"http://127.0.0.1:{fake.port}", credential=credential)
        for credential in (lasting, expiring)
    ]
    fake.enqueue(*[Script(chunks=["ok"]) for _ in range(4)])
    try:
        for provider in providers:
            for _ in range(2):
                await events_of(provider, request("gpt-4o"))
    finally:
        for provider in providers:
            await provider.aclose()

    tokens = [r.headers["authorization"] for r in fake.requests]
    # One token for both requests; a token within five minutes of expiry is renewed.
    assert tokens == [
        "Bearer entra-token-1",
        "Bearer entra-token-1",
        "Bearer entra-token-1",
        "Bearer entra-token-2",
    ]
    assert lasting.scopes == [("https://cognitiveservices.azure.com/.default",)]
    assert "api-key" not in fake.requests[0].headers
    assert lasting.closed and expiring.closed


async def test_azure_without_a_token_fails_the_call_for_good(fake: FakeLLM) -> None:
    class Refusing(FakeEntraCredential):
        async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            raise RuntimeError("no managed identity here")

    provider = AzureOpenAIProvider("azure", fake.anthropic_base_url, credential=Refusing())
    try:
        with pytest.raises(ProviderError) as raised:
            await events_of(provider, request("gpt-4o"))
    finally:
        await provider.aclose()
    assert not raised.value.transient and "no managed identity here" in str(raised.value)
    assert fake.requests == []


# -- Bedrock --------------------------------------------------------------------------

AWS_KEY_ID = "AKIDEXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/(\d{8})/us-east-1/bedrock/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


@pytest.fixture
async def bedrock(fake: FakeLLM) -> AsyncIterator[BedrockProvider]:
    provider = BedrockProvider(
        "bedrock",
        region="us-east-1",
        credentials=Credentials(AWS_KEY_ID, AWS_SECRET),
        models={"claude-sonnet-4-5": BEDROCK_MODEL},
        base_url=fake.anthropic_base_url,
    )
    yield provider
    await provider.aclose()


def verify_sigv4(sent: RecordedRequest, base_url: str) -> str:
    """Recompute the signature over what arrived; returns the signed headers."""
    match = AUTHORIZATION.match(sent.headers["authorization"])
    assert match is not None, sent.headers["authorization"]
    signed = match.group(2).split(";")
    received = AWSRequest(
        method="POST",
        url=base_url + sent.raw_path,
        data=sent.raw_body,
        headers={name: sent.headers[name] for name in signed},
    )
    received.context["timestamp"] = sent.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(AWS_KEY_ID, AWS_SECRET), "bedrock", "us-east-1")
    expected = signer.signature(
        signer.string_to_sign(received, signer.canonical_request(received)), received
    )
    assert match.group(3) == expected
    assert match.group(1) == sent.headers["x-amz-date"][:8]
    return match.group(2)


async def test_bedrock_request_is_sigv4_signed_and_shaped_for_bedrock(
    bedrock: BedrockProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["Hello", " there"], prompt_tokens=12, completion_tokens=2))

    events = await events_of(bedrock, request("claude-sonnet-4-5"))

    assert events == [TextDelta("Hello"), TextDelta(" there"), Usage(12, 2), Finish("end_turn")]
    [sent] = fake.requests
    # The model id in the path, its ":" percent-encoded exactly as signed.
    quoted = BEDROCK_MODEL.replace(":", "%3A")
    assert sent.raw_path == f"/model/{quoted}/invoke-with-response-stream"
    assert sent.model == BEDROCK_MODEL
    assert sent.body["anthropic_version"] == BEDROCK_VERSION
    assert "model" not in sent.body and "stream" not in sent.body
    assert sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 50
    assert sent.headers["accept"] == "application/vnd.amazon.eventstream"
    assert verify_sigv4(sent, fake.anthropic_base_url) == "accept;content-type;host;x-amz-date"
    assert "x-api-key" not in sent.headers


async def test_bedrock_exception_mid_stream_keeps_the_counted_prompt(
    bedrock: BedrockProvider, fake: FakeLLM
) -> None:
    events: list[bytes] = []
    for event in (
        {"type": "message_start", "message": {"usage": {"input_tokens": 40, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    ):
        payload = {"bytes": base64.b64encode(json.dumps(event).encode()).decode()}
        events.append(aws_event(BEDROCK_CHUNK, json.dumps(payload).encode()))
    throttled = {":message-type": "exception", ":exception-type": "throttlingException"}
    events.append(aws_event(throttled, b'{"message": "Too many tokens, please wait."}'))
    # 7-byte writes tear frames, headers and CRCs between reads.
    fake.enqueue(Script(raw_sse=b"".join(events), raw_piece=7))

    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as raised:
        async for event in bedrock.stream(request("claude-sonnet-4-5")):
            seen.append(event)

    assert seen == [TextDelta("Hi")]
    error = raised.value
    assert str(error) == "stream error: throttlingException: Too many tokens, please wait."
    assert error.transient and error.usage == Usage(40, 1)


async def test_bedrock_corrupted_frame_is_a_transient_failure(
    bedrock: BedrockProvider, fake: FakeLLM
) -> None:
    frame = bytearray(aws_event(BEDROCK_CHUNK, b'{"bytes": "e30="}'))
    frame[-1] ^= 0xFF  # the message CRC no longer matches
    fake.enqueue(Script(raw_sse=bytes(frame)))

    with pytest.raises(ProviderError) as raised:
        await events_of(bedrock, request("claude-sonnet-4-5"))
    assert raised.value.transient and "malformed frame" in str(raised.value)


async def test_bedrock_from_providers_yaml_with_keys_by_reference(
    tmp_path: Path, fake: FakeLLM, routers: list[LLMRouter]
) -> None:
    root = write_providers(
        tmp_path,
        f"""\
providers:
  bedrock:
    kind: bedrock
    region: us-east-1
    base_url: {fake.anthropic_base_url}
    access_key_id: ${{env:TEST_AWS_KEY_ID}}
    secret_access_key: ${{env:TEST_AWS_SECRET}}
    models: {{claude-haiku-4-5: anthropic.claude-haiku-4-5-20251001-v1:0}}
""",
    )
    router = router_from(
        root, routers, {"TEST_AWS_KEY_ID": AWS_KEY_ID, "TEST_AWS_SECRET": AWS_SECRET}
    )
    fake.enqueue(Script(chunks=["ok"]))

    await events_of(provider_of(router, "bedrock"), request("claude-haiku-4-5"))

    [sent] = fake.requests
    assert sent.model == "anthropic.claude-haiku-4-5-20251001-v1:0"
    verify_sigv4(sent, fake.anthropic_base_url)
    assert router.cost_usd(ModelRef("bedrock", "claude-haiku-4-5"), 1_000_000, 0) == 1.00


# -- Vertex AI ------------------------------------------------------------------------


async def test_vertex_sends_to_the_publisher_model_with_a_bearer_token(fake: FakeLLM) -> None:
    provider = VertexProvider(
        "vertex",
        project="my-project",
        region="us-east5",
        credentials=GoogleUserCredentials(token="ya29.static-test-token"),
        models={"claude-sonnet-4-5": "claude-sonnet-4-5@20250929"},
        base_url=fake.anthropic_base_url,
    )
    fake.enqueue(Script(chunks=["Salut"], prompt_tokens=7, completion_tokens=1))
    try:
        events = await events_of(provider, request("claude-sonnet-4-5"))
    finally:
        await provider.aclose()

    assert events == [TextDelta("Salut"), Usage(7, 1), Finish("end_turn")]
    [sent] = fake.requests
    assert sent.path == (
        "/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/"
        "claude-sonnet-4-5@20250929:streamRawPredict"
    )
    assert sent.headers["authorization"] == "Bearer ya29.static-test-token"
    assert sent.body["anthropic_version"] == VERTEX_VERSION and "model" not in sent.body
    assert sent.body["stream"] is True


async def test_vertex_refreshes_a_stale_token_off_the_loop(fake: FakeLLM) -> None:
    refreshed: list[str] = []

    def refresh_handler(request: object, scopes: object) -> tuple[str, Any]:
        refreshed.append("refreshed")
        # google-auth keeps expiries as naive UTC datetimes.
        return "ya29.fresh", (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)

    credentials = GoogleUserCredentials(token=None, refresh_handler=refresh_handler)
    provider = VertexProvider(
        "vertex",
        project="p",
        region="global",
        credentials=credentials,
        base_url=fake.anthropic_base_url,
    )
    fake.enqueue(Script(chunks=["a"]), Script(chunks=["b"]))
    try:
        await events_of(provider, request("claude-haiku-4-5"))
        await events_of(provider, request("claude-haiku-4-5"))
    finally:
        await provider.aclose()

    assert refreshed == ["refreshed"]  # once: the token stays valid for the second call
    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer ya29.fresh"] * 2
    assert fake.requests[0].path.startswith("/v1/projects/p/locations/global/")
