"""Reports for staff: what the bot could not answer (biggest gaps first), and the figures."""

import csv
import io
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from rapidfuzz import fuzz
from sqlalchemy import or_, select

from bot.knowledge import LANGUAGES
from bot.matching import Matcher
from bot.matching.normalize import Normalizer
from bot.store import Store, typed_talent_questions
from bot.store.models import Feedback, Message, Ticket, User

SIMILAR = 70.0
# What the terminal report shows for a figure there is nothing yet to work out from.
_NONE_YET = "none yet"
# Listed in the table and the CSV even at 0, so that what is built on them keeps its columns.
_DECISIONS = ("answer", "clarify", "handoff")
_TICKET_STEPS = ("opened", "claimed", "closed")


@dataclass
class Gap:
    """Similar questions the bot could not answer well, and the entry nearest to them."""

    question: str
    questions: list[str] = field(default_factory=list)
    nearest: str | None = None

    @property
    def count(self) -> int:
        return len(self.questions)


async def unanswered(store: Store, matcher: Matcher, since: datetime | None = None) -> list[Gap]:
    """Talent questions that were handed off, answered with a list, or marked not helpful,
    grouped by similarity (rapidfuzz), most asked first."""
    unhelpful = select(Feedback.message_id).where(Feedback.helpful.is_(False))
    query = (
        select(Message.text)
        .join(User, User.id == Message.user_id)
        .where(
            User.role == "talent",
            Message.direction == "in",
            Message.button.is_(None),
            Message.text != "",
            or_(Message.action.in_(("handoff", "clarify")), Message.id.in_(unhelpful)),
        )
        .order_by(Message.id)
    )
    if since is not None:
        query = query.where(Message.created_at >= since)
    async with store.transaction() as tx:
        questions = list(await tx.session.scalars(query))
    fold = Normalizer().fold
    gaps: list[tuple[str, Gap]] = []
    for question in questions:
        folded = fold(question)
        for key, gap in gaps:
            # Word order aside, the same words: a one-word question is not like every longer
            # question that uses its word (token_set_ratio would call them the same).
            if fuzz.token_sort_ratio(folded, key) >= SIMILAR:
                gap.questions.append(question)
                break
        else:
            gaps.append((folded, Gap(question, [question])))
    for _, gap in gaps:
        candidates = matcher.decide(gap.question).candidates
        gap.nearest = candidates[0].entry_id if candidates else None
    return sorted((gap for _, gap in gaps), key=lambda gap: -gap.count)


def as_markdown(gaps: list[Gap]) -> str:
    lines = ["| asked | question | nearest entry | also asked as |", "|---:|---|---|---|"]
    for gap in gaps:
        others = "; ".join(_cell(q) for q in gap.questions[1:4] if q != gap.question)
        question = _cell(gap.question)
        lines.append(f"| {gap.count} | {question} | {gap.nearest or '-'} | {others} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Talent's text as one markdown table cell: a bare `|` would end the cell and shift the
    columns after it, and a line break would end the row."""
    return " ".join(text.replace("|", "\\|").splitlines())


def as_csv(gaps: list[Gap]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["asked", "question", "nearest_entry", "also_asked_as"])
    for gap in gaps:
        writer.writerow([gap.count, gap.question, gap.nearest or "", " | ".join(gap.questions[1:])])
    return out.getvalue()


@dataclass
class Stats:
    """The figures staff follow: questions, decisions, helpfulness, tickets, experts."""

    questions_per_day: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    helpful_by_entry: dict[str, tuple[int, int]] = field(default_factory=dict)
    tickets: dict[str, int] = field(default_factory=dict)
    median_minutes_to_claim: float | None = None
    median_minutes_to_close: float | None = None
    ratings_by_expert: dict[str, tuple[float, int]] = field(default_factory=dict)


async def stats(store: Store, since: datetime | None = None) -> Stats:
    """Figures since `since` (all time by default)."""
    figures = Stats()
    async with store.transaction() as tx:
        asked = typed_talent_questions(Message)
        feedback = select(Feedback)
        tickets = select(Ticket)
        if since is not None:
            asked = asked.where(Message.created_at >= since)
            feedback = feedback.where(Feedback.created_at >= since)
            tickets = tickets.where(Ticket.created_at >= since)
        for message in await tx.session.scalars(asked):
            day = message.created_at.date().isoformat()
            figures.questions_per_day[day] = figures.questions_per_day.get(day, 0) + 1
            action = message.action or ""
            figures.decisions[action] = figures.decisions.get(action, 0) + 1
            figures.languages[message.language] = figures.languages.get(message.language, 0) + 1
        for verdict in await tx.session.scalars(feedback):
            helpful, total = figures.helpful_by_entry.get(verdict.entry_id, (0, 0))
            figures.helpful_by_entry[verdict.entry_id] = (helpful + verdict.helpful, total + 1)
        to_claim: list[float] = []
        to_close: list[float] = []
        ratings: dict[int, list[int]] = {}
        for ticket in await tx.session.scalars(tickets):
            figures.tickets["opened"] = figures.tickets.get("opened", 0) + 1
            if ticket.claimed_at is not None or ticket.expert_id is not None:
                figures.tickets["claimed"] = figures.tickets.get("claimed", 0) + 1
            if ticket.claimed_at is not None:
                to_claim.append((ticket.claimed_at - ticket.created_at).total_seconds() / 60)
            if ticket.status == "closed" and ticket.closed_at is not None:
                figures.tickets["closed"] = figures.tickets.get("closed", 0) + 1
                to_close.append((ticket.closed_at - ticket.created_at).total_seconds() / 60)
            if ticket.rating is not None and ticket.expert_id is not None:
                ratings.setdefault(ticket.expert_id, []).append(ticket.rating)
        names = {
            user.id: user.display_name or f"{user.channel}:{user.external_id}"
            for user in await tx.session.scalars(select(User).where(User.id.in_(ratings)))
        }
    figures.median_minutes_to_claim = _median(to_claim)
    figures.median_minutes_to_close = _median(to_close)
    figures.ratings_by_expert = {
        names[expert]: (round(sum(given) / len(given), 2), len(given))
        for expert, given in ratings.items()
    }
    return figures


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def stats_as_text(figures: Stats) -> str:
    """The figures as small tables for a terminal."""
    out = ["questions per day:"]
    out += [f"  {day}  {count:6}" for day, count in sorted(figures.questions_per_day.items())]
    out.append("decisions:")
    out += [f"  {name:10} {figures.decisions.get(name, 0):6}" for name in _DECISIONS]
    out.append("languages:")
    out += [f"  {name:10} {count:6}" for name, count in sorted(figures.languages.items())]
    out.append("helpful rate per entry:")
    out += [
        f"  {entry:32} {helpful}/{total}"
        for entry, (helpful, total) in sorted(figures.helpful_by_entry.items())
    ] or [f"  {_NONE_YET}"]
    out.append("tickets:")
    out += [f"  {name:10} {figures.tickets.get(name, 0):6}" for name in _TICKET_STEPS]
    out.append(f"median minutes to claim: {_or_none_yet(figures.median_minutes_to_claim)}")
    out.append(f"median minutes to close: {_or_none_yet(figures.median_minutes_to_close)}")
    out.append("ratings per expert:")
    out += [
        f"  {name:20} {average} ({count})"
        for name, (average, count) in sorted(figures.ratings_by_expert.items())
    ] or [f"  {_NONE_YET}"]
    return "\n".join(out)


def _or_none_yet(minutes: float | None) -> str:
    return _NONE_YET if minutes is None else str(minutes)


def stats_as_csv(figures: Stats) -> str:
    """The figures as CSV rows: figure, key, value."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "key", "value"])
    for day, count in sorted(figures.questions_per_day.items()):
        writer.writerow(["questions", day, count])
    for name in _DECISIONS:
        writer.writerow(["decision", name, figures.decisions.get(name, 0)])
    for name, count in sorted(figures.languages.items()):
        writer.writerow(["language", name, count])
    for entry, (helpful, total) in sorted(figures.helpful_by_entry.items()):
        writer.writerow(["helpful", entry, f"{helpful}/{total}"])
    for name in _TICKET_STEPS:
        writer.writerow(["tickets", name, figures.tickets.get(name, 0)])
    writer.writerow(["median_minutes", "to_claim", figures.median_minutes_to_claim])
    writer.writerow(["median_minutes", "to_close", figures.median_minutes_to_close])
    for name, (average, count) in sorted(figures.ratings_by_expert.items()):
        writer.writerow(["rating", name, f"{average} ({count})"])
    return out.getvalue()


@dataclass(frozen=True)
class Suggestion:
    """A talent's wording that could become an alternate phrasing of an entry."""

    entry_id: str
    phrasing: str
    reason: str


async def suggested_alternates(store: Store, matcher: Matcher) -> list[Suggestion]:
    """Wordings the bot met that lead to an entry: questions whose talent then picked the
    entry from a list, and experts' tickets whose question the matcher ties to an entry.
    Only a report: the files change when staff edit them."""
    fold = Normalizer().fold
    known = {
        fold(phrasing)
        for entry in matcher.knowledge
        for language in LANGUAGES
        for phrasing in entry.text(language).phrasings
    }
    found: dict[tuple[str, str], Suggestion] = {}

    def offer(entry_id: str | None, phrasing: str, reason: str) -> None:
        if entry_id and phrasing and fold(phrasing) not in known:
            found.setdefault((entry_id, fold(phrasing)), Suggestion(entry_id, phrasing, reason))

    async with store.transaction() as tx:
        inbound = list(
            await tx.session.scalars(
                select(Message)
                .where(Message.direction == "in")
                .order_by(Message.user_id, Message.id)
            )
        )
        closed = list(await tx.session.scalars(select(Ticket).where(Ticket.status == "closed")))
    for asked, then in pairwise(inbound):
        picked = (then.button or "").startswith("1:e:") and asked.user_id == then.user_id
        if picked and asked.action == "clarify":
            offer((then.button or "")[4:], asked.text, "picked from a list")
    for ticket in closed:
        decision = matcher.decide(ticket.question)
        if decision.candidates and decision.action != "handoff":
            offer(decision.candidates[0].entry_id, ticket.question, f"expert ticket #T-{ticket.id}")
    return sorted(found.values(), key=lambda s: (s.entry_id, s.phrasing))


def alternates_as_markdown(suggestions: list[Suggestion]) -> str:
    lines = ["| entry | suggested alternate | seen as |", "|---|---|---|"]
    for suggestion in suggestions:
        phrasing = _cell(suggestion.phrasing)
        lines.append(f"| {suggestion.entry_id} | {phrasing} | {suggestion.reason} |")
    return "\n".join(lines)
