"""Settings: defaults that work with nothing configured, and one clear line for a wrong value."""

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from bot.paths import bundled


def test_defaults_need_nothing_installed(clean_environment: Path) -> None:
    settings = Settings()
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.knowledge_dir == bundled("knowledge")
    assert settings.default_language == "en"


def test_a_setting_left_empty_counts_as_not_set(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_environment / ".env").write_text("TELEGRAM_BOT_TOKEN=\nEXPERTS_GROUP_CHAT_ID=\n")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "")
    monkeypatch.setenv("DATABASE_URL", "")
    settings = Settings()
    assert settings.telegram_bot_token is None
    assert settings.experts_group_chat_id is None
    assert settings.telegram_webhook_url is None
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_settings_are_read_from_a_dotenv_file(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("DEFAULT_LANGUAGE=zh\nANSWER_THRESHOLD_ZH=90\n")
    settings = Settings()
    assert settings.default_language == "zh"
    assert settings.answer_threshold_zh == 90


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://root@localhost/db", "DATABASE_URL: use one of"),
        (
            "DATABASE_URL",
            "postgres://ipbot:S3cret@db/ipbot",
            "sqlite+aiosqlite://, postgresql+asyncpg://, not 'postgres://ipbot:***@db/ipbot'",
        ),
        ("DATABASE_URL", "not a url at all", "DATABASE_URL: not a database URL"),
        ("DEFAULT_LANGUAGE", "fr", "DEFAULT_LANGUAGE: Input should be 'en' or 'zh'"),
        (
            "ANSWER_THRESHOLD_EN",
            "-5",
            "ANSWER_THRESHOLD_EN: Input should be greater than or equal to 0",
        ),
        ("CLARIFY_THRESHOLD", "95", "CLARIFY_THRESHOLD must not be above ANSWER_THRESHOLD_EN"),
        ("MAX_QUESTION_CHARS", "many", "MAX_QUESTION_CHARS: Input should be a valid integer"),
        ("STAFF_IDS", "telegram:1,12345", "STAFF_IDS: write each as channel:id"),
        (
            "TELEGRAM_API_BASE_URL",
            "api.telegram.org/bot",
            "TELEGRAM_API_BASE_URL: use an http:// or https:// address, not 'api.telegram.org/bot'",
        ),
        ("TELEGRAM_WEBHOOK_URL", "bot.example.org", "TELEGRAM_WEBHOOK_URL: use an http:// or"),
        (
            "STAFF_IDS",
            "telegram:@li_ming",
            "STAFF_IDS: a Telegram user id is a number, such as telegram:123456789",
        ),
    ],
)
def test_a_wrong_setting_stops_with_one_line_naming_it(
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["ask", "hello"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("ipbot: invalid setting ")
    assert expected in error


def test_the_first_staff_are_read_as_channel_ids(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAFF_IDS", "telegram:123, telegram:456")
    assert Settings().staff == [("telegram", "123"), ("telegram", "456")]
