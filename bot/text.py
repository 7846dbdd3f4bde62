"""Plain-text helpers shared by every channel: cleaning input and telling its language."""

import re
import unicodedata

from bot.knowledge import Language

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")


def clean(text: str) -> str:
    """`text` without control characters (other than line breaks and tabs) and outer blanks.

    NUL and other control bytes are removed before anything is stored: PostgreSQL rejects NUL
    in text, and none of them carries meaning in a question.
    """
    kept = (
        char
        for char in text
        if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co")
    )
    return "".join(kept).strip()


def detect_language(text: str) -> Language | None:
    """`zh` if the text has Chinese characters, `en` if it has Latin letters, else None."""
    if _CJK.search(text):
        return "zh"
    if _LATIN.search(text):
        return "en"
    return None


def written_language(text: str) -> Language | None:
    """The language a talent writes in, to reply in: Chinese unless its Latin words outnumber
    its Chinese characters, since an English question may name a Chinese place or brand
    ("Beijing's 两区") and a Chinese one an English term ("PCT 国家阶段")."""
    chinese = len(_CJK.findall(text))
    latin = len(_LATIN_WORD.findall(text))
    if not chinese and not latin:
        return None
    return "zh" if chinese >= latin else "en"


def has_words(text: str) -> bool:
    """Whether `text` has any letter a question could be made of."""
    return detect_language(text) is not None


# The largest id an INTEGER column holds (PostgreSQL's is 32-bit).
_LARGEST_ID = 2**31 - 1


def record_number(text: str) -> int | None:
    """`text` as the number of a ticket or message, or None if it cannot be one.

    `str.isdigit` also passes "²", which `int` refuses, and a number too large for the
    database fails the query: a user can type either, and a forged button can carry either.
    """
    if not text.isdecimal():
        return None
    number = int(text)
    return number if number <= _LARGEST_ID else None
