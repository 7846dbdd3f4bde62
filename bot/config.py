"""Settings, read from the environment and `.env`; every one is documented in `.env.example`."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.channels import TELEGRAM_USER_ID
from bot.languages import Language
from bot.paths import bundled, bundled_questions

_WEB_ADDRESS = re.compile(r"https?://\S+")
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


class Settings(BaseSettings):
    """Everything the bot can be told from outside."""

    # An empty value ("TELEGRAM_WEBHOOK_URL=" in .env) means not set, as in most .env files.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    database_url: str = "sqlite+aiosqlite:///data/ipbot.sqlite3"
    # Connections each `ipbot run` process keeps open to PostgreSQL. Work beyond them opens
    # more for the moment, each a new server process with every statement prepared again.
    database_pool_size: int = Field(default=20, gt=0)
    # How long `ipbot run` waits at start for the database, then for Telegram, while either is
    # not reachable yet (a server or network that starts with the machine may come up after
    # the bot), before giving up.
    start_wait_seconds: float = Field(default=120, ge=0)
    knowledge_dir: Path = Field(default_factory=lambda: bundled("knowledge"))
    default_language: Language = "en"
    answer_threshold_en: float = Field(default=60.0, ge=0, le=100)
    answer_threshold_zh: float = Field(default=68.0, ge=0, le=100)
    clarify_threshold: float = Field(default=20.0, ge=0, le=100)
    max_question_chars: int = Field(default=1000, gt=0)
    # The running bot looks for edited knowledge files this often, and swaps in a valid set
    # unless it answers the labelled questions worse by more than this many percentage points.
    knowledge_check_seconds: float = Field(default=10, gt=0)
    reload_max_accuracy_drop: float = Field(default=2, ge=0, le=100)
    labelled_questions: Path | None = Field(default_factory=lambda: bundled_questions())
    # Staff are told weekly which entries were last reviewed longer ago than this.
    stale_after_days: int = Field(default=180, gt=0)
    # Conversation messages older than this many days are deleted by a scheduled job.
    retention_days: int = Field(default=365, gt=0)
    # How many recent talent questions `ipbot kb check DIR` replays against an edit.
    replay_questions: int = Field(default=500, ge=0)
    # Where `ipbot run` writes its process id, for `ipbot kb reload`.
    pid_file: Path = Path("data/ipbot.pid")

    expert_max_open_tickets: int = Field(default=3, gt=0)
    # The first staff, who can then add experts and other staff from the chat: channel ids,
    # comma-separated ("telegram:123456789").
    staff_ids: str = ""
    # Where new tickets go when no expert is available: a Telegram group chat id.
    experts_group_chat_id: int | None = None

    # Service levels, checked every SLA_CHECK_SECONDS from the store (so none is lost on a
    # restart and none runs twice): an unclaimed ticket is announced again every
    # SLA_REANNOUNCE_MINUTES and escalated to staff after SLA_ESCALATE_MINUTES; a claimed
    # ticket with no reply from its expert reminds them after SLA_FIRST_REPLY_MINUTES and goes
    # back to the queue after SLA_LEASE_MINUTES; a talent silent for SLA_NUDGE_HOURS is asked
    # whether their question is answered, and the ticket closes SLA_AUTOCLOSE_HOURS later.
    sla_check_seconds: float = Field(default=60, gt=0)
    sla_reannounce_minutes: float = Field(default=30, gt=0)
    sla_escalate_minutes: float = Field(default=120, gt=0)
    sla_first_reply_minutes: float = Field(default=60, gt=0)
    sla_lease_minutes: float = Field(default=120, gt=0)
    sla_nudge_hours: float = Field(default=24, gt=0)
    sla_autoclose_hours: float = Field(default=48, gt=0)

    # The process's one web server: the Telegram webhook, health checks, and the routes of
    # the channels to come. TELEGRAM_WEBHOOK_LISTEN and TELEGRAM_WEBHOOK_PORT are read as
    # older names for these. Port 0 takes any free port.
    web_listen: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("web_listen", "telegram_webhook_listen"),
    )
    web_port: int = Field(
        default=8080,
        ge=0,
        lt=65536,
        validation_alias=AliasChoices("web_port", "telegram_webhook_port"),
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_messages_per_second: float = Field(default=30, gt=0)
    telegram_chat_messages_per_second: float = Field(default=1, gt=0)
    telegram_group_messages_per_minute: float = Field(default=20, gt=0)
    telegram_max_retries: int = Field(default=5, ge=0)
    # Each update is stored before Telegram is told it arrived, and leased to the process
    # handling it; one a process left unfinished (it died) is handled again once this runs out.
    telegram_update_lease_seconds: float = Field(default=30, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        # The URL may hold a password: what is said about it never shows one.
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL (DRIVER://USER@HOST/DATABASE)") from None
        if url.drivername not in SUPPORTED_DRIVERS:
            shown = url.render_as_string(hide_password=True)
            raise ValueError(
                f"use one of {', '.join(d + '://' for d in SUPPORTED_DRIVERS)}, not {shown!r}"
            )
        return value

    @field_validator("telegram_api_base_url", "telegram_webhook_url")
    @classmethod
    def _web_addresses(cls, value: str | None) -> str | None:
        if value is not None and not _WEB_ADDRESS.fullmatch(value):
            raise ValueError(f"use an http:// or https:// address, not {value!r}")
        return value

    @field_validator("staff_ids")
    @classmethod
    def _staff_ids_are_channel_ids(cls, value: str) -> str:
        for item, channel, external_id in _channel_ids(value):
            if not channel or not external_id:
                raise ValueError(
                    f"write each as channel:id, for example telegram:123, not {item!r}"
                )
            if channel == "telegram" and not TELEGRAM_USER_ID.fullmatch(external_id):
                raise ValueError(
                    f"a Telegram user id is a number, such as telegram:123456789, not {item!r}"
                )
        return value

    @property
    def staff(self) -> list[tuple[str, str]]:
        """The first staff, as (channel, id) pairs."""
        return [(channel, external_id) for _, channel, external_id in _channel_ids(self.staff_ids)]

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _telegram_secret_characters(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("use 1-256 characters from A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> "Settings":
        for name in ("answer_threshold_en", "answer_threshold_zh"):
            if self.clarify_threshold > getattr(self, name):
                raise ValueError(
                    f"CLARIFY_THRESHOLD must not be above {name.upper()} "
                    f"({self.clarify_threshold} > {getattr(self, name)})"
                )
        return self


class SettingsError(Exception):
    """A setting is wrong; the message is one line naming it."""


def load_settings() -> Settings:
    """Read the settings, turning a validation error into one readable line."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None


def _one_line(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        setting = ".".join(str(part) for part in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{setting}: {message}" if setting else message)
    return "invalid setting " + "; ".join(problems)


def _channel_ids(value: str) -> Iterator[tuple[str, str, str]]:
    """Each item of a comma-separated "channel:id" list, with its channel and id."""
    for item in filter(None, (part.strip() for part in value.split(","))):
        channel, _, external_id = item.partition(":")
        yield item, channel.strip(), external_id.strip()
