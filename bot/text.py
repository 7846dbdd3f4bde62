"""Plain-text helpers shared by every channel: cleaning input and telling its language."""

import re
import unicodedata

from bot.knowledge import Language

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")
# Words that hold an English sentence together (as words of their own: "A股" is not "a").
_ENGLISH_FRAME = re.compile(
    r"\b(what|how|why|when|where|which|who|is|are|was|were|do|does|did|can|could|should|"
    r"would|will|may|must|i|my|me|you|your|we|our|it|its|the|a|an|of|in|on|for|to|with|"
    r"from|about|if|or|and|not)\b",
    re.IGNORECASE,
)
_CHINESE_FRAME = re.compile(
    r"的|是|吗|呢|吧|怎么|什么|如何|能不能|可不可以|要不要|哪|多少|可以|请问"
)


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
    """The language a talent writes in, to reply in. Talents mix the two: an English question
    may name a Chinese term ("What is 职务发明?") and a Chinese one English terms ("rep office
    的经营范围是什么"). The little words that hold a sentence together tell which it is; without
    them, whichever there is more of."""
    if not _CJK.search(text):
        return "en" if _LATIN.search(text) else None
    if _ENGLISH_FRAME.search(text):
        return "en"
    if _CHINESE_FRAME.search(text):
        return "zh"
    # An acronym (PCT, WIPO) says nothing about the language around it; a Chinese word is
    # about two characters.
    spelled = [word for word in _LATIN_WORD.findall(text) if not word.isupper()]
    return "en" if 2 * len(spelled) >= len(_CJK.findall(text)) else "zh"


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
