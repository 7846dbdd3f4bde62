"""What a case card shows of a talent's words: contact details masked, deadlines pointed out."""

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Chinese application numbers (CN202110123456.7, 202110123456.7) and PCT numbers.
_APPLICATION = re.compile(
    r"\b(?:CN|ZL)?\s?\d{4}\s?[1-9]\s?\d{7}\.?[\dX]\b|\bPCT/[A-Z]{2}\d{4}/\d{6}\b", re.IGNORECASE
)
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d\s-]{7,}\d(?![\w.])")
# Shaped like a phone number, but a date: a deadline the expert must see.
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_DEADLINE = re.compile(
    r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"
    r"|\b\d{1,3}\s*(?:months?|days?|weeks?)\b"
    r"|\b(?:deadline|due|expires?|opposition|within)\b"
    r"|\d{4}年\d{1,2}月(?:\d{1,2}日)?|\d{1,2}月\d{1,2}日|\d{1,3}\s*(?:个月|天|日内|周)"
    r"|截止|期限|到期|异议",
    re.IGNORECASE,
)


def mask_contacts(text: str) -> str:
    """`text` with e-mail addresses, application numbers and phone numbers hidden."""
    text = _EMAIL.sub("[e-mail hidden]", text)
    text = _APPLICATION.sub("[application number hidden]", text)
    return _PHONE.sub(_hide_phone, text)


def _hide_phone(match: re.Match[str]) -> str:
    return match.group() if _DATE.fullmatch(match.group()) else "[phone hidden]"


def deadlines(text: str) -> list[str]:
    """The dates, periods and deadline words a talent mentioned, in order, once each."""
    found: list[str] = []
    for match in _DEADLINE.finditer(text):
        mention = match.group().strip()
        if mention.lower() not in (f.lower() for f in found):
            found.append(mention)
    return found
