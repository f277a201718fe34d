"""Configuration: one settings object read from the environment.

Every variable is documented in the README's configuration table. Problems are
reported all at once, one line per variable, by :func:`load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from parley.llm.base import ModelRef
from parley.llm.models import PriceTable
from parley.storage.redis import CLUSTER_SCHEMES, cluster_seeds, is_cluster_url

SOURCE_ROOT = Path(__file__).resolve().parents[2]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATABASE_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)


def _default_dir(name: str) -> Path:
    """``./name`` when run from a checkout, else the copy beside the installed package."""
    local = Path.cwd() / name
    return local if local.exists() else SOURCE_ROOT / name


def _env(*names: str) -> Any:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL"))
    # Every Redis key starts with this (storage/keys.py): deployments (or test
    # runs) sharing one Redis database must each have their own, or their
    # sweepers, budgets and rate limits meet.
    redis_prefix: str = Field(default="parley", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path(".parley")

    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    dev_login: bool | None = None
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cookie_secure: bool = False

    openai_api_key: str | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=_env("OPENAI_BASE_URL"))
    anthropic_api_key: str | None = Field(default=None, validation_alias=_env("ANTHROPIC_API_KEY"))
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=_env("ANTHROPIC_BASE_URL")
    )
    model: str | None = None
    prices_file: Path | None = None
    demo_delay_ms: int = Field(default=35, ge=0)

    catalog: Path = Field(default_factory=lambda: _default_dir("."))
    web_dir: Path = Field(default_factory=lambda: _default_dir("web"))
    # The JavaScript client (clients/js/src), served at /static/client/.
    client_dir: Path = Field(default_factory=lambda: _default_dir("clients/js/src"))

    connect_timeout: float = Field(default=10.0, gt=0)
    first_token_timeout: float = Field(default=60.0, gt=0)
    idle_timeout: float = Field(default=60.0, gt=0)
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_base_delay: float = Field(default=0.5, ge=0)

    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    max_message_chars: int = Field(default=16_000, ge=1)
    ws_frames_per_second: float = Field(default=5.0, gt=0)
    ws_frame_burst: int = Field(default=20, ge=1)
    # Compression saves little on small delta frames and costs each idle
    # socket about 40 KiB of zlib state (see docs/performance.md).
    ws_deflate: bool = False
    rest_rate_limit: str = "120/minute"
    # Off by default: a Redis outage must not switch the limit off unnoticed.
    rate_limit_fail_open: bool = False
    # Guests: anonymous visitors of agents that take them (docs/clients.md, "Widget").
    # The secret signs their ids and tokens; unset, one is made and shared through Redis.
    guest_secret: str | None = None
    guest_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    # POST /v1/guest per client address, and per embedding site (Origin).
    guest_rate_limit_ip: str = "20/minute"
    guest_rate_limit_site: str = "600/minute"
    # A client gets this long to send a request's line and headers (slowloris).
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    reply_retention_seconds: int = Field(default=900, ge=600)
    # Replies' frames go to Redis in batches, at most one per interval: a busy
    # instance makes fewer round trips, each frame waiting at most this long.
    stream_write_interval_ms: float = Field(default=4.0, ge=0, le=1000)
    # Messages (and new chats) accepted at once per process; the rest queue in
    # order, so a burst of them does not stall the replies already streaming
    # (parley/lane.py; docs/performance.md). 0: no limit.
    accept_concurrency: int = Field(default=4, ge=0, le=10_000)
    lease_ttl_seconds: float = Field(default=15.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # A tool call that needs the user's approval is declined after this long.
    tool_confirm_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    session_ttl_seconds: int = Field(default=86_400, ge=60)
    history_cache_size: int = Field(default=50, ge=1)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # /metrics: on the main port for holders of the token, and/or on a port of
    # its own (private by default); with neither it does not exist.
    metrics_token: str | None = Field(default=None, min_length=16)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    # Knowledge bases (docs/knowledge.md). Without an embeddings model Parley
    # searches full text only: nothing is downloaded or computed locally.
    embeddings_model: str | None = None
    embeddings_base_url: str | None = None
    embeddings_api_key: str | None = None
    embeddings_dimensions: int | None = Field(default=None, ge=1, le=16_000)
    knowledge_top_k: int = Field(default=5, ge=1, le=50)
    # At most this share of what the context window leaves beside the reply.
    knowledge_context_share: float = Field(default=0.25, gt=0, le=0.9)
    knowledge_max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Operations (docs/operations.md). The webhook is the operator's to point,
    # never a request's: handoffs carry user ids and reasons.
    handoff_webhook_url: str | None = None
    handoff_webhook_secret: str | None = Field(default=None, min_length=16)
    handoff_webhook_attempts: int = Field(default=8, ge=1, le=20)
    handoff_webhook_retry_seconds: float = Field(default=5.0, gt=0, le=3600)
    public_url: str | None = None  # where people reach this server (links in the webhook)
    generate_titles: bool = True
    # Dev sign-in names that get the admin role (only while dev sign-in is on,
    # which already lets anyone who reaches the port sign in as anyone): "admin"
    # by default, so the quick start shows the operator console.
    dev_admins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["admin"])

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("dev_admins", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("handoff_webhook_url", "public_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | None) -> str | None:
        if value is not None:
            ModelRef.parse(value)
        return value

    @field_validator("embeddings_model")
    @classmethod
    def _check_embeddings_model(cls, value: str | None) -> str | None:
        if value is not None and ModelRef.parse(value).provider != "openai":
            raise ValueError("must be openai:<model> (OpenAI or an OpenAI-compatible server)")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        # Only the form: whether the server answers is for `parley check` to find out.
        if value is not None and urlsplit(value).scheme not in DATABASE_SCHEMES:
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError(
                "must be a redis://, rediss:// or unix:// URL, or a Redis Cluster's"
                " redis+cluster://host:port[,host:port…]"
            )
        if value is not None and is_cluster_url(value):
            cluster_seeds(value)  # its ValueError says which node is malformed
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _check_jwt_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < 32:
            raise ValueError("must be at least 32 bytes for HS256")
        return value

    @field_validator("prices_file")
    @classmethod
    def _check_prices_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            PriceTable.load(value)  # its ValueError names the file and the problem
        return value

    @field_validator("guest_secret")
    @classmethod
    def _check_guest_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < 32:
            raise ValueError("must be at least 32 bytes")
        return value

    @field_validator("guest_rate_limit_ip", "guest_rate_limit_site")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as 20/minute") from None
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use {', '.join(LOG_LEVELS).lower()}")
        return level

    @property
    def default_model(self) -> ModelRef:
        if self.model:
            return ModelRef.parse(self.model)
        if self.openai_api_key:
            return ModelRef("openai", "gpt-4o-mini")
        if self.anthropic_api_key:
            # claude-sonnet-4-5 reached its end of life on 2026-11-30.
            return ModelRef("anthropic", "claude-sonnet-4-6")
        return ModelRef("demo", "echo")

    @property
    def embeddings_space_dimensions(self) -> int | None:
        """The configured embedding dimensions, else the model's known default."""
        if self.embeddings_dimensions is not None or self.embeddings_model is None:
            return self.embeddings_dimensions
        from parley.knowledge.embeddings import KNOWN_DIMENSIONS

        return KNOWN_DIMENSIONS.get(ModelRef.parse(self.embeddings_model).name)

    @property
    def has_configured_jwt_key(self) -> bool:
        return bool(self.jwt_secret or self.jwt_public_key or self.jwks_url)

    @property
    def dev_login_enabled(self) -> bool:
        if self.dev_login is not None:
            return self.dev_login
        return not self.has_configured_jwt_key

    @property
    def public_base_url(self) -> str:
        """The server's address as people reach it, without a trailing slash."""
        return self.public_url or f"http://{self.host}:{self.port}"

    def problems(self) -> list[str]:
        """Checks that span several variables; one readable line each.

        The catalog is not checked here but by `parley check` and `serve`,
        which use it: `parley token` must work outside a checkout.
        """
        found: list[str] = []
        keys = [k for k in (self.jwt_secret, self.jwt_public_key, self.jwks_url) if k]
        if len(keys) > 1:
            found.append(
                "PARLEY_JWT_SECRET, PARLEY_JWT_PUBLIC_KEY and PARLEY_JWKS_URL are exclusive; "
                "set one"
            )
        provider = self.default_model.provider
        from parley.llm.providers import named_in_file  # it may define openai or anthropic

        if provider in named_in_file(self.catalog):
            pass
        elif provider == "openai" and not (self.openai_api_key or self.openai_base_url):
            found.append("PARLEY_MODEL: an openai model needs OPENAI_API_KEY or OPENAI_BASE_URL")
        elif provider == "anthropic" and not self.anthropic_api_key:
            found.append("PARLEY_MODEL: an anthropic model needs ANTHROPIC_API_KEY")
        if self.embeddings_model is not None and self.embeddings_space_dimensions is None:
            found.append(
                "PARLEY_EMBEDDINGS_DIMENSIONS: needed for a model Parley does not know"
                f" ({self.embeddings_model})"
            )
        if self.handoff_webhook_url and not self.handoff_webhook_secret:
            found.append(
                "PARLEY_HANDOFF_WEBHOOK_SECRET: set it (16+ characters) with "
                "PARLEY_HANDOFF_WEBHOOK_URL: deliveries are signed"
            )
        return found


class ConfigurationError(Exception):
    """Start-up cannot continue; ``problems`` holds one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def load_settings(**overrides: Any) -> Settings:
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError([_describe(e) for e in error.errors()]) from None
    problems = settings.problems()
    if problems:
        raise ConfigurationError(problems)
    return settings


def _describe(error: Any) -> str:
    field = str(error["loc"][0]) if error["loc"] else "configuration"
    name = field.upper() if field.isupper() else f"PARLEY_{field.upper()}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {' '.join(message.split())}"  # one line, whatever the message held
