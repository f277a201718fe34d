"""Named providers: ``providers.yaml`` in the catalog root, and the environment's two.

Models are named ``provider:model``, the provider by the name it has here::

    providers:
      groq:
        kind: openai                      # any OpenAI-compatible server
        base_url: https://api.groq.com/openai/v1
        api_key: ${env:GROQ_API_KEY}
      azure:
        kind: azure
        endpoint: https://my-resource.openai.azure.com
        api_key: ${env:AZURE_OPENAI_API_KEY}   # or auth: entra_id
        deployments: {gpt-4o: prod-gpt-4o}

Without the file, ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` and
``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL`` still make the ``openai`` and
``anthropic`` providers; an entry of the same name in the file replaces one.
Keys are ``${env:NAME}`` references, never literals in a file that may be
committed; their values live only inside the provider objects. Problems are
reported all at once, ``providers.yaml: line N: field: reason``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from parley.catalog.errors import CatalogError
from parley.catalog.files import Document, describe, read_yaml
from parley.llm.anthropic import AnthropicProvider
from parley.llm.azure import DEFAULT_API_VERSION, ENTRA_SCOPE, AzureOpenAIProvider
from parley.llm.base import ModelRef, Provider
from parley.llm.openai import OpenAIProvider
from parley.tools.env import Environment, UnresolvedReference

if TYPE_CHECKING:
    from parley.catalog.catalog import Catalog
    from parley.config import Settings

PROVIDERS_FILE = "providers.yaml"
# Always there by name: the environment's two (configured or not) and the offline model.
BUILT_IN = frozenset({"openai", "anthropic", "demo"})
RESERVED = frozenset({"demo"})  # the offline model is always there, under its own name
SECRET_REFERENCE = re.compile(r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$")


def _secret(value: str) -> str:
    if not SECRET_REFERENCE.match(value):
        raise ValueError("must be an ${env:NAME} reference; keep keys out of the file")
    return value


SecretRef = Annotated[str, AfterValidator(_secret)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Models = dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenAISpec(_Spec):
    """OpenAI, or any server speaking its Chat Completions API."""

    kind: Literal["openai"]
    base_url: str | None = None  # default: OpenAI's
    api_key: SecretRef | None = None  # local servers need none
    models: Models = Field(default_factory=dict, description="Parley name: the server's id")
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. OpenRouter's X-Title


class AnthropicSpec(_Spec):
    kind: Literal["anthropic"]
    base_url: str | None = None
    api_key: SecretRef
    models: Models = Field(default_factory=dict)


class AzureSpec(_Spec):
    kind: Literal["azure"]
    endpoint: str
    api_version: str = DEFAULT_API_VERSION
    auth: Literal["api_key", "entra_id"] = "api_key"
    api_key: SecretRef | None = None
    entra_scope: str = ENTRA_SCOPE
    deployments: Models = Field(default_factory=dict, description="model name: deployment")

    @model_validator(mode="after")
    def _one_credential(self) -> AzureSpec:
        if self.auth == "api_key" and self.api_key is None:
            raise ValueError("api_key is required (or set auth: entra_id)")
        if self.auth == "entra_id" and self.api_key is not None:
            raise ValueError("api_key is not used with auth: entra_id; remove one")
        return self


class BedrockSpec(_Spec):
    kind: Literal["bedrock"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    models: Models = Field(default_factory=dict, description="model name: Bedrock model id")
    profile: str | None = None  # default: the AWS credential chain
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None
    base_url: str | None = None  # default: https://bedrock-runtime.{region}.amazonaws.com

    @model_validator(mode="after")
    def _key_pair(self) -> BedrockSpec:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.profile is not None and self.access_key_id is not None:
            raise ValueError("set a profile or keys, not both")
        return self


class VertexSpec(_Spec):
    kind: Literal["vertex"]
    project: str = Field(min_length=1)
    region: str = Field(min_length=1)
    models: Models = Field(default_factory=dict, description="model name: Vertex model id")
    credentials_file: str | None = None  # default: Application Default Credentials
    base_url: str | None = None  # default: https://{region}-aiplatform.googleapis.com


ProviderSpec = Annotated[
    OpenAISpec | AnthropicSpec | AzureSpec | BedrockSpec | VertexSpec, Field(discriminator="kind")
]
KINDS = ("openai", "anthropic", "azure", "bedrock", "vertex")
# What each kind needs installed beyond Parley itself, and the extra that brings it.
_EXTRAS: dict[str, tuple[str, str]] = {
    "bedrock": ("botocore", "bedrock"),
    "vertex": ("google.auth", "vertex"),
}


class ProvidersFile(_Spec):
    providers: dict[Name, ProviderSpec] = Field(default_factory=dict)


def load_specs(root: Path, environ: Mapping[str, str]) -> dict[str, ProviderSpec]:
    """The providers of ``root/providers.yaml`` (none without it); raises :class:`CatalogError`."""
    path = root / PROVIDERS_FILE
    if not path.exists():
        return {}
    problems: list[str] = []
    document = read_yaml(path, PROVIDERS_FILE, problems)
    specs = _validate(document, problems) if document is not None else None
    if specs is not None and document is not None:
        _check(document, specs, Environment(environ), problems)
    if problems:
        raise CatalogError(problems)
    return specs or {}


def build_providers(
    settings: Settings, specs: Mapping[str, ProviderSpec], environ: Mapping[str, str]
) -> dict[str, Provider]:
    """The environment's providers, then the file's (replacing any of the same name)."""
    built: dict[str, Provider] = {}
    if settings.openai_api_key or settings.openai_base_url:
        built["openai"] = OpenAIProvider(
            settings.openai_api_key, settings.openai_base_url, settings.connect_timeout
        )
    if settings.anthropic_api_key:
        built["anthropic"] = AnthropicProvider(
            settings.anthropic_api_key, settings.anthropic_base_url, settings.connect_timeout
        )
    environment = Environment(environ)
    for name, spec in specs.items():
        built[name] = _build(name, spec, environment, settings.connect_timeout)
    return built


def _validate(document: Document, problems: list[str]) -> dict[str, ProviderSpec] | None:
    if document.data is None:
        return {}  # an empty file: no providers
    if not isinstance(document.data, dict):
        problems.append(f"{document.name}: expected a mapping with a 'providers' key")
        return None
    try:
        return ProvidersFile.model_validate(document.data).providers
    except ValidationError as error:
        for detail in error.errors():
            loc = list(detail["loc"])
            # A discriminated union puts the kind in the path: providers.groq.openai.base_url.
            if len(loc) > 2 and loc[0] == "providers" and loc[2] in KINDS:
                del loc[2]
            if loc and loc[-1] == "[key]":  # a provider's name itself: say which
                del loc[-1]
            reason = str(detail["msg"]).removeprefix("Value error, ")
            if detail["type"] == "extra_forbidden":
                reason = "unknown field (check the spelling; see docs/clients.md)"
            problems.append(describe(document, loc, reason))
        return None


def _check(
    document: Document,
    specs: Mapping[str, ProviderSpec],
    environment: Environment,
    problems: list[str],
) -> None:
    """What the schema cannot say: reserved names, references, URLs, installed extras."""
    for name, spec in specs.items():

        def report(field: str | None, reason: str, name: str = name) -> None:
            loc = ("providers", name) if field is None else ("providers", name, field)
            problems.append(describe(document, loc, reason))

        if name in RESERVED:
            report(None, f"{name!r} is reserved for the built-in offline model")
        for field, value in _strings(spec):
            try:
                resolved = environment.resolve(value)
            except UnresolvedReference as error:
                report(field, str(error))
                continue
            if field in ("base_url", "endpoint") and not _is_http_url(resolved):
                report(field, "must be an http:// or https:// URL")
            if field == "credentials_file" and not Path(resolved).is_file():
                report(field, f"no such file: {resolved}")
        needed = _EXTRAS.get(spec.kind)
        if isinstance(spec, AzureSpec) and spec.auth == "entra_id":
            needed = ("azure.identity", "azure")
        if needed is not None and not _installed(needed[0]):
            field = "auth" if spec.kind == "azure" else "kind"
            report(field, f"needs the {needed[1]} extra: pip install 'parley[{needed[1]}]'")


def _strings(spec: ProviderSpec) -> list[tuple[str, str]]:
    """(field, text) of every string that may hold ``${env:...}``; header names dotted."""
    found: list[tuple[str, str]] = []
    for field, value in spec:
        if isinstance(value, str):
            found.append((field, value))
        elif field == "headers":
            found += [(f"headers.{key}", text) for key, text in value.items()]
    return found


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def _build(name: str, spec: ProviderSpec, environment: Environment, timeout: float) -> Provider:
    def resolve(text: str | None) -> str | None:
        return None if text is None else environment.resolve(text)

    if isinstance(spec, OpenAISpec):
        headers = {key: environment.resolve(value) for key, value in spec.headers.items()}
        hidden = tuple(
            secret.reveal()
            for value in spec.headers.values()
            for secret in environment.secrets_in(value)
        )
        return OpenAIProvider(
            resolve(spec.api_key),
            resolve(spec.base_url),
            timeout,
            name=name,
            models=spec.models,
            headers=headers,
            secrets=hidden,
        )
    if isinstance(spec, AnthropicSpec):
        return AnthropicProvider(
            resolve(spec.api_key), resolve(spec.base_url), timeout, name=name, models=spec.models
        )
    if isinstance(spec, AzureSpec):
        return _azure(name, spec, resolve, timeout)
    if isinstance(spec, BedrockSpec):
        return _bedrock(name, spec, resolve, timeout)
    return _vertex(name, spec, resolve, timeout)


def _azure(
    name: str, spec: AzureSpec, resolve: Callable[[str | None], str | None], timeout: float
) -> Provider:
    from parley.llm.azure import default_credential

    return AzureOpenAIProvider(
        name,
        resolve(spec.endpoint) or "",
        api_version=spec.api_version,
        deployments=spec.deployments,
        api_key=resolve(spec.api_key),
        credential=default_credential() if spec.auth == "entra_id" else None,
        scope=spec.entra_scope,
        connect_timeout=timeout,
    )


def _bedrock(
    name: str, spec: BedrockSpec, resolve: Callable[[str | None], str | None], timeout: float
) -> Provider:
    from parley.llm.bedrock import BedrockProvider, load_credentials

    credentials = load_credentials(
        profile=spec.profile,
        access_key_id=resolve(spec.access_key_id),
        secret_access_key=resolve(spec.secret_access_key),
        session_token=resolve(spec.session_token),
    )
    return BedrockProvider(
        name,
        region=spec.region,
        credentials=credentials,
        models=spec.models,
        base_url=resolve(spec.base_url),
        connect_timeout=timeout,
    )


def _vertex(
    name: str, spec: VertexSpec, resolve: Callable[[str | None], str | None], timeout: float
) -> Provider:
    from parley.llm.vertex import VertexProvider, load_credentials

    file = resolve(spec.credentials_file)
    return VertexProvider(
        name,
        project=resolve(spec.project) or "",
        region=resolve(spec.region) or "",
        credentials=load_credentials(Path(file) if file else None),
        models=spec.models,
        base_url=resolve(spec.base_url),
        connect_timeout=timeout,
    )


def summary(specs: Mapping[str, ProviderSpec]) -> str:
    """The file's providers as ``parley check`` prints them: names and kinds, never a value."""
    named = ", ".join(f"{name} ({spec.kind})" for name, spec in sorted(specs.items()))
    return f"providers: {named or f'none in {PROVIDERS_FILE}'}"


def unknown_providers(
    specs: Mapping[str, ProviderSpec], default_model: ModelRef, catalog: Catalog | None
) -> list[str]:
    """Models naming a provider nobody configures: a typo that would otherwise be
    skipped quietly (an agent's unreachable models fall back to the default one)."""
    known = {*BUILT_IN, *specs}
    names = ", ".join(sorted(known))
    problems: list[str] = []

    def check(where: str, models: Sequence[ModelRef]) -> None:
        for model in models:
            if model.provider not in known:
                problems.append(f"{where}: {model}: no provider {model.provider!r} ({names})")

    check("PARLEY_MODEL", [default_model])
    if catalog is not None:
        for rules in catalog.rule_sets.values():
            check(f"rules/{rules.id}.yaml: limits.models", rules.limits.models)
        for agent in catalog.agents.values():
            if agent.models != agent.rules.limits.models:  # its own list, in agents.yaml
                check(f"agents.yaml: agent {agent.id!r}: models", agent.models)
    return problems


def named_in_file(root: Path) -> frozenset[str]:
    """The provider names ``root/providers.yaml`` defines, without validating it
    (that is ``parley check``'s job): for checks of the settings alone."""
    try:
        data = yaml.safe_load((root / PROVIDERS_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return frozenset()
    providers = data.get("providers") if isinstance(data, dict) else None
    return frozenset(map(str, providers)) if isinstance(providers, dict) else frozenset()
