"""The languages the bot speaks, and how a stored or given language code reads as one."""

from typing import Literal

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")


def language_of(code: str | None) -> Language:
    """A stored language (a user's, a notice's) as one the bot speaks: Chinese or English."""
    return "zh" if code == "zh" else "en"


def language_from_code(code: str | None) -> Language | None:
    """A language code as a channel or a user gives it (`zh-hans`, `en-US`, `zh`) as one the
    bot speaks; None if it names neither."""
    prefix = (code or "").lower()[:2]
    return "zh" if prefix == "zh" else "en" if prefix == "en" else None
