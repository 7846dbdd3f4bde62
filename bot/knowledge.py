"""The knowledge base: YAML files in `knowledge/`, validated as a whole set.

A set either loads completely or not at all: `load_knowledge` returns a `KnowledgeBase` or
raises `KnowledgeError` listing every problem with its file and line.
"""

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.languages import LANGUAGES, Language
from bot.topics import TOPICS, Topic

MAX_FILE_BYTES = 2 * 1024 * 1024
_WIDE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# A line that starts an item of a list: "- ", "* ", "• ", "1. " or "1) ".
_LIST_ITEM = re.compile(r"(?:[-*•]|\d{1,2}[.)])\s")


# What a draft written from an expert's answer (`bot/drafts.py`) leaves for staff to fill
# in: a set still holding any of it is not loaded.
DRAFT_ID_PREFIX = "draft."
DRAFT_PLACEHOLDER = "TODO"
DRAFT_SOURCE_NOTE = "cite the official source"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _written(value: str) -> str:
    value = _not_blank(value)
    if value == DRAFT_PLACEHOLDER:
        raise ValueError(f"still the draft's {DRAFT_PLACEHOLDER}: write it")
    return value


def unwrap(text: str) -> str:
    """Paragraphs as single lines: files are wrapped for editing, phones wrap for reading.

    Lines are joined with a space, except between Chinese characters, which take none. An item
    of a list ("- ", "1. ") starts a line of its own; the lines wrapped under it join it.
    """
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        joined = ""
        for line in paragraph.splitlines():
            line = line.strip()
            if joined and _LIST_ITEM.match(line):
                joined += "\n"
            elif joined and line and not (_WIDE.match(joined[-1]) and _WIDE.match(line[0])):
                joined += " "
            joined += line
        paragraphs.append(joined)
    return "\n\n".join(paragraphs)


class Source(BaseModel):
    """Where an answer's facts come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")

    _title = field_validator("title")(_not_blank)


class Text(BaseModel):
    """One language's version of an entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    alternates: tuple[str, ...] = ()
    answer: str
    more: str | None = None

    _required = field_validator("question", "answer")(_written)

    @field_validator("answer", "more")
    @classmethod
    def _unwrap(cls, value: str | None) -> str | None:
        return None if value is None else unwrap(value)

    @field_validator("alternates")
    @classmethod
    def _no_blank_alternate(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_not_blank(value) for value in values)

    @property
    def phrasings(self) -> tuple[str, ...]:
        """The question and every alternate."""
        return (self.question, *self.alternates)


class Entry(BaseModel):
    """One question the bot can answer, in both languages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$", max_length=48)
    topic: Topic
    tags: tuple[str, ...] = ()
    en: Text
    zh: Text
    sources: tuple[Source, ...] = Field(min_length=1)
    reviewed: date
    related: tuple[str, ...] = ()
    region: Literal["china", "abroad"] = "china"

    @field_validator("id")
    @classmethod
    def _lasting(cls, value: str) -> str:
        if value.startswith(DRAFT_ID_PREFIX):
            raise ValueError("still the draft's id: give the entry the id it will keep")
        return value

    @field_validator("sources")
    @classmethod
    def _cited(cls, sources: tuple[Source, ...]) -> tuple[Source, ...]:
        if any(DRAFT_SOURCE_NOTE in source.title for source in sources):
            raise ValueError("still the draft's note: name the official source")
        return sources

    def text(self, language: Language) -> Text:
        """This entry in `language`."""
        return self.en if language == "en" else self.zh


class Term(BaseModel):
    """Phrases in both languages that the matcher treats as one word."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    term: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=40)
    en: tuple[str, ...] = ()
    zh: tuple[str, ...] = ()

    @field_validator("en", "zh")
    @classmethod
    def _no_blank_phrase(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_not_blank(str(value)) for value in values)

    @property
    def phrases(self) -> tuple[str, ...]:
        return (*self.en, *self.zh)


class OutOfScope(BaseModel):
    """A subject the bot does not answer, with ways people ask about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=40)
    en: tuple[str, ...] = Field(min_length=1)
    zh: tuple[str, ...] = Field(min_length=1)
    region: Literal["china", "abroad"] | None = None

    @field_validator("en", "zh")
    @classmethod
    def _no_blank_phrasing(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_not_blank(str(value)) for value in values)

    @property
    def phrasings(self) -> tuple[str, ...]:
        return (*self.en, *self.zh)


@dataclass(frozen=True)
class Problem:
    """Why a knowledge-base file cannot be loaded, and where."""

    file: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class KnowledgeError(Exception):
    """The set of files does not validate; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class KnowledgeBase:
    """A validated set of entries and the content hash that identifies it."""

    entries: dict[str, Entry]
    version: str
    glossary: tuple[Term, ...] = ()
    out_of_scope: tuple[OutOfScope, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries.values())

    def get(self, entry_id: str) -> Entry | None:
        """The entry with this id, if the set has it."""
        return self.entries.get(entry_id)

    def reviewed_before(self, day: date) -> list[Entry]:
        """Entries last checked against their sources before `day`, oldest first."""
        return sorted(
            (entry for entry in self if entry.reviewed < day), key=lambda e: (e.reviewed, e.id)
        )


GLOSSARY_FILE = "glossary.yaml"
OUT_OF_SCOPE_FILE = "out-of-scope.yaml"


def knowledge_files(directory: Path) -> list[Path]:
    """The YAML files in `directory` (sub-folders are not read), misnamed ones included.

    Only `*.yaml` files are loaded; a `.yml` or `.YAML` one is listed too so that loading
    reports it instead of serving one entry fewer without a word, and the watcher notices it.
    """
    return sorted(
        path
        for path in directory.glob("*")
        if path.suffix.lower() in (".yaml", ".yml") and path.is_file()
    )


def load_knowledge(directory: Path) -> KnowledgeBase:
    """Load and validate every file in `directory`, or raise `KnowledgeError` with all problems."""
    if not directory.is_dir():
        raise KnowledgeError([Problem(directory, 0, "not a folder")])
    files = knowledge_files(directory)
    if not files:
        raise KnowledgeError([Problem(directory, 0, "no *.yaml knowledge files in this folder")])

    problems: list[Problem] = []
    located: list[tuple[Entry, Path, _Mapping]] = []
    glossary: list[Term] = []
    out_of_scope: list[OutOfScope] = []
    invalid_ids: set[str] = set()
    # Ids are known only from entries that could be read: while a file does not parse, a
    # related id missing from the rest may well be in it, and calling it unknown would send
    # staff to files nobody edited.
    all_ids_read = True
    digest = hashlib.sha256()
    for path in files:
        if path.suffix != ".yaml":
            problems.append(
                Problem(path, 0, f"only *.yaml files are read: rename it to {path.stem}.yaml")
            )
            all_ids_read = False
            continue
        raw = _read(path, problems)
        if raw is None:
            all_ids_read = all_ids_read and path.name in (GLOSSARY_FILE, OUT_OF_SCOPE_FILE)
            continue
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        if path.name == GLOSSARY_FILE:
            glossary = _glossary(path, raw, problems)
            continue
        if path.name == OUT_OF_SCOPE_FILE:
            for mapping in _mappings(path, raw, "topics", problems):
                subject = _validate(OutOfScope, path, mapping, problems)
                if subject is not None:
                    out_of_scope.append(subject)
            continue
        before = len(problems)
        mappings = _mappings(path, raw, "entries", problems)
        all_ids_read = all_ids_read and len(problems) == before
        for mapping in mappings:
            entry = _validate(Entry, path, mapping, problems)
            if entry is not None:
                located.append((entry, path, mapping))
            elif isinstance(mapping.get("id"), str):
                invalid_ids.add(mapping["id"])
            else:
                all_ids_read = False

    # An entry with a problem of its own is still known: pointing at it is not a second one.
    problems.extend(_cross_entry_problems(located, invalid_ids if all_ids_read else None))
    if problems:
        raise KnowledgeError(problems)
    entries = {entry.id: entry for entry, _, _ in located}
    return KnowledgeBase(
        entries=entries,
        version=digest.hexdigest()[:12],
        glossary=tuple(glossary),
        out_of_scope=tuple(out_of_scope),
    )


def _glossary(path: Path, raw: bytes, problems: list[Problem]) -> list[Term]:
    terms: list[Term] = []
    owners: dict[str, str] = {}
    for mapping in _mappings(path, raw, "terms", problems):
        term = _validate(Term, path, mapping, problems)
        if term is None:
            continue
        for phrase in term.phrases:
            key = " ".join(phrase.casefold().split())
            owner = owners.setdefault(key, term.term)
            if owner != term.term:
                problems.append(
                    Problem(
                        path,
                        mapping.line,
                        f"term {term.term!r}: phrase {phrase!r} already belongs to {owner!r}",
                    )
                )
        terms.append(term)
    return terms


def _read(path: Path, problems: list[Problem]) -> bytes | None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        problems.append(Problem(path, 0, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}"))
        return None
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        problems.append(Problem(path, line, "not UTF-8 text"))
        return None
    return raw


class _Mapping(dict):
    """A YAML mapping that remembers the line of each key."""

    line: int
    key_lines: dict[Any, int]


class _Sequence(list):
    """A YAML sequence that remembers the line of each item."""

    item_lines: list[int]


class _LineLoader(yaml.CSafeLoader):
    """PyYAML's safe loader on libyaml's parser, keeping line numbers for error messages.

    libyaml parses in C what PyYAML's own parser does in Python, many times slower: the
    knowledge base is read on every start of `ipbot`.
    """


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in mapping:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _Sequence:
    sequence = _Sequence(loader.construct_object(child, deep=True) for child in node.value)
    sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
    return sequence


def _construct_timestamp(loader: _LineLoader, node: yaml.ScalarNode) -> object:
    # A date that looks like one but is not ("2026-13-45") fails in Python's date, outside
    # the parser's errors: said here as a problem at its line.
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError as error:
        raise yaml.MarkedYAMLError(
            problem=f"not a real date: {node.value} ({error})", problem_mark=node.start_mark
        ) from None


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _mappings(path: Path, raw: bytes, key: str, problems: list[Problem]) -> list[_Mapping]:
    """The mappings listed under the file's one top-level `key`."""
    try:
        # Anchors and aliases have no use in knowledge files, and nested ones can expand
        # into billions of nodes (a "YAML bomb"): refuse them before building anything.
        for event in yaml.parse(raw, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1
                reason = "YAML anchors and aliases (& and *) are not allowed"
                problems.append(Problem(path, line, reason))
                return []
        document = yaml.load(raw, Loader=_LineLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 0
        problems.append(Problem(path, line, f"malformed YAML: {error.problem or error}"))
        return []
    except yaml.reader.ReaderError as error:
        # libyaml gives the position in bytes.
        line = raw[: error.position].count(b"\n") + 1
        problems.append(Problem(path, line, "malformed YAML: a control character (binary data?)"))
        return []
    except yaml.YAMLError as error:
        problems.append(Problem(path, 0, f"malformed YAML: {error}"))
        return []
    if not isinstance(document, _Mapping) or set(document) != {key}:
        problems.append(Problem(path, 1, f"the file must be a mapping with one key, {key!r}"))
        return []
    items = document[key]
    if not isinstance(items, _Sequence):
        problems.append(Problem(path, document.key_lines[key], f"{key!r} must be a list"))
        return []
    mappings = []
    for item, line in zip(items, items.item_lines, strict=True):
        if isinstance(item, _Mapping):
            mappings.append(item)
        else:
            problems.append(Problem(path, line, f"each item of {key!r} must be a mapping"))
    return mappings


_Model = TypeVar("_Model", Entry, Term, OutOfScope)


def _validate(
    model: type[_Model], path: Path, mapping: _Mapping, problems: list[Problem]
) -> _Model | None:
    try:
        return model.model_validate(mapping)
    except ValidationError as error:
        kind = {Entry: "entry", Term: "term", OutOfScope: "topic"}[model]
        name = mapping.get("term" if model is Term else "id")
        label = f"{kind} {name!r}" if isinstance(name, str) else kind
        for item in error.errors():
            line, where = _locate(mapping, item["loc"])
            reason = _reason(item)
            problems.append(Problem(path, line, f"{label}: {where}: {reason}"))
        return None


def _locate(mapping: _Mapping, loc: tuple[Any, ...]) -> tuple[int, str]:
    """The line of the deepest part of `loc` that exists in the file, and `loc` as a path."""
    line = mapping.line
    node: Any = mapping
    for part in loc:
        if isinstance(node, _Mapping) and part in node:
            line = node.key_lines[part]
            node = node[part]
        elif isinstance(node, _Sequence) and isinstance(part, int) and part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line, ".".join(str(part) for part in loc) or "entry"


def _reason(item: Any) -> str:
    kind = item["type"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch" and item["loc"][-1] == "id":
        return "ids are lower-case words joined by '.' or '-'"
    if kind == "literal_error" and item["loc"] == ("topic",):
        return f"unknown topic; use one of {', '.join(TOPICS)}"
    if kind == "tuple_type":
        return "must be a list"
    if kind in ("date_from_datetime_parsing", "date_parsing", "date_type"):
        return "must be a date written YYYY-MM-DD"
    return item["msg"].removeprefix("Value error, ")


def _cross_entry_problems(
    located: list[tuple[Entry, Path, _Mapping]], invalid_ids: set[str] | None
) -> list[Problem]:
    """Problems between entries; `invalid_ids` is None when some ids could not be read, and
    then no related id is called unknown."""
    problems: list[Problem] = []
    first_seen: dict[str, tuple[Path, int]] = {}
    for entry, path, mapping in located:
        if entry.id in first_seen:
            other_path, other_line = first_seen[entry.id]
            problems.append(
                Problem(
                    path,
                    mapping.key_lines["id"],
                    f"duplicate id {entry.id!r} (first at {other_path}:{other_line})",
                )
            )
        else:
            first_seen[entry.id] = (path, mapping.key_lines["id"])

    known = None if invalid_ids is None else set(first_seen) | invalid_ids
    seen: dict[str, tuple[str, Language, int]] = {}
    for entry, path, mapping in located:
        for position, related in enumerate(entry.related):
            if related == entry.id:
                reason = "an entry cannot be related to itself"
            elif known is not None and related not in known:
                reason = f"unknown related id {related!r}"
            else:
                continue
            line = _locate(mapping, ("related", position))[0]
            problems.append(Problem(path, line, f"entry {entry.id!r}: {reason}"))
        for language in LANGUAGES:
            for index, phrasing in enumerate(entry.text(language).phrasings):
                key = " ".join(phrasing.casefold().split())
                first = seen.setdefault(key, (entry.id, language, index))
                if first == (entry.id, language, index):
                    continue
                loc = (language, "question") if index == 0 else (language, "alternates", index - 1)
                where = "this entry" if first[0] == entry.id else f"entry {first[0]!r}"
                problems.append(
                    Problem(
                        path,
                        _locate(mapping, loc)[0],
                        f"entry {entry.id!r}: phrasing {phrasing!r} is already in {where}",
                    )
                )
    return problems
