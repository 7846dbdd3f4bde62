"""Reports for staff: what the bot could not answer, grouped so the biggest gaps show first."""

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from rapidfuzz import fuzz
from sqlalchemy import or_, select

from bot.matching import Matcher
from bot.matching.normalize import Normalizer
from bot.store import Store
from bot.store.models import Feedback, Message, User

SIMILAR = 70.0


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
            if fuzz.token_set_ratio(folded, key) >= SIMILAR:
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
        others = "; ".join(q for q in gap.questions[1:4] if q != gap.question)
        lines.append(f"| {gap.count} | {gap.question} | {gap.nearest or '-'} | {others} |")
    return "\n".join(lines)


def as_csv(gaps: list[Gap]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["asked", "question", "nearest_entry", "also_asked_as"])
    for gap in gaps:
        writer.writerow([gap.count, gap.question, gap.nearest or "", " | ".join(gap.questions[1:])])
    return out.getvalue()
