"""What a button carries back when it is tapped: one typed payload per kind of button.

A payload travels as a short string, `<version>:<kind>[:<value>…]` (Telegram keeps at most 64
bytes of it), made only by `Payload.pack` and read only by `unpack`, which checks every value:
a ticket or message number a record can have, stars from 1 to 5, a language the bot speaks. A
string it cannot read (another version, an unknown kind, a value out of range: a forgery, or a
button from long ago) is None, and the user is told the button has expired. Buttons already in
users' chats keep working as long as `VERSION` and the kinds' letters stay as they are.
"""

import dataclasses
import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from bot.languages import Language
from bot.text import record_number

VERSION = "1"
_SEPARATOR = ":"
# Each kind of payload by its letter, as `Payload.__init_subclass__` registers it.
_KINDS: dict[str, type["Payload"]] = {}

Stars = Literal[1, 2, 3, 4, 5]


@dataclass(frozen=True)
class Payload:
    """A button's payload. Each kind is a frozen dataclass that names its letter:
    `class Claim(Payload, kind="c")`; its fields, in order, are the values it packs."""

    kind: ClassVar[str]

    def __init_subclass__(cls, kind: str, **options: Any) -> None:
        super().__init_subclass__(**options)
        if kind in _KINDS or _SEPARATOR in kind:
            raise ValueError(f"a payload kind needs a letter of its own, not {kind!r}")
        cls.kind = kind
        _KINDS[kind] = cls

    def pack(self) -> str:
        """The payload as a button carries it; an optional value left out at the end."""
        values = [_written(getattr(self, name)) for name in _field_names(type(self))]
        while values and values[-1] == "":
            values.pop()
        return _SEPARATOR.join([VERSION, self.kind, *values])


def unpack(packed: str) -> Payload | None:
    """The payload a button carried; None if it is not one this version of the bot made."""
    version, _, rest = packed.partition(_SEPARATOR)
    kind, _, values = rest.partition(_SEPARATOR)
    payload_type = _KINDS.get(kind)
    if version != VERSION or payload_type is None:
        return None
    readers = _readers(kind)
    given = values.split(_SEPARATOR) if values else []
    if len(given) > len(readers):
        return None
    given += [""] * (len(readers) - len(given))
    read = [reader(value) for reader, value in zip(readers, given, strict=True)]
    if any(value is _UNREADABLE for value in read):
        return None
    return payload_type(*read)


@dataclass(frozen=True)
class ShowEntry(Payload, kind="e"):
    """Show an entry's answer: picked from choices, or a related question."""

    entry: str


@dataclass(frozen=True)
class MoreOn(Payload, kind="m"):
    """Show the rest of an entry's answer."""

    entry: str


@dataclass(frozen=True)
class Helpful(Payload, kind="y"):
    """The answer (the bot's message with this id) helped."""

    answer: int


@dataclass(frozen=True)
class NotHelpful(Payload, kind="n"):
    """The answer (the bot's message with this id) did not help."""

    answer: int


@dataclass(frozen=True)
class AskExpert(Payload, kind="x"):
    """Talk to an expert about the question with this id (else the talent's latest)."""

    question: int | None = None


@dataclass(frozen=True)
class PassOn(Payload, kind="p"):
    """Yes to "Shall I pass it on?" for the question with this id (else the latest)."""

    question: int | None = None


@dataclass(frozen=True)
class NoneOfThese(Payload, kind="o"):
    """None of the choices fits the question with this id (else the latest)."""

    question: int | None = None


@dataclass(frozen=True)
class ChooseLanguage(Payload, kind="l"):
    """Talk in this language from now on."""

    language: Language


@dataclass(frozen=True)
class Forget(Payload, kind="f"):
    """The answer to "Forget everything about me?"."""

    confirmed: bool


@dataclass(frozen=True)
class Withdraw(Payload, kind="w"):
    """Take back the request for an expert (this ticket, else the open one)."""

    ticket: int | None = None


@dataclass(frozen=True)
class Consent(Payload, kind="k"):
    """Let the expert see the talent's first name, or the contacts they wrote."""

    to_share: Literal["name", "contacts"]


@dataclass(frozen=True)
class Rate(Payload, kind="s"):
    """The talent's stars for a closed ticket."""

    ticket: int
    stars: Stars


@dataclass(frozen=True)
class Claim(Payload, kind="c"):
    """An expert takes the ticket."""

    ticket: int


@dataclass(frozen=True)
class Release(Payload, kind="r"):
    """An expert gives the ticket back to the queue."""

    ticket: int


@dataclass(frozen=True)
class Draft(Payload, kind="d"):
    """Write a draft knowledge-base entry from the expert's answers on a closed ticket."""

    ticket: int


# What a reader gives for a value it refuses (None is a value: an optional one left out).
_UNREADABLE = object()
_YES_NO = {True: "yes", False: "no"}


def _written(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _YES_NO[value]
    return str(value)


def _field_names(payload_type: type[Payload]) -> list[str]:
    return [field.name for field in dataclasses.fields(payload_type)]


@functools.cache
def _readers(kind: str) -> list[Callable[[str], object]]:
    """How to read each value of the payloads of `kind`, by the type of its field."""
    payload_type = _KINDS[kind]
    hints = get_type_hints(payload_type)
    return [_reader(hints[name]) for name in _field_names(payload_type)]


def _reader(hint: Any) -> Callable[[str], object]:
    origin, arguments = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType) and type(None) in arguments:
        (required,) = [argument for argument in arguments if argument is not type(None)]
        read = _reader(required)
        return lambda value: None if value == "" else read(value)
    if origin is Literal:
        choices = {str(choice): choice for choice in arguments}
        return lambda value: choices.get(value, _UNREADABLE)
    if hint is bool:
        return lambda value: {"yes": True, "no": False}.get(value, _UNREADABLE)
    if hint is int:
        return lambda value: _UNREADABLE if (number := record_number(value)) is None else number
    if hint is str:
        return lambda value: value or _UNREADABLE
    raise TypeError(f"a payload cannot carry a {hint!r}")
