"""Staff figures match a scripted conversation exactly."""

import re

from bot.reports import (
    Suggestion,
    alternates_as_markdown,
    as_csv,
    as_markdown,
    stats,
    stats_as_csv,
    stats_as_text,
    unanswered,
)
from bot.services import Services
from bot.store.models import utcnow
from tests.conversations import payloads, say


async def test_stats_count_a_scripted_conversation_exactly(services: Services) -> None:
    [answer] = await say(services, "Can a foreigner take the patent agent exam?", user="a")
    await say(services, button=next(p for p in payloads(answer) if p.startswith("1:y:")), user="a")
    await say(services, "patent", user="b")
    await say(services, "Where can I buy a bicycle near Wudaokou?", user="b")
    await say(services, "外国人可以考专利代理师吗？", user="c")
    await say(services, "/expert", user="b")
    expert = await services.tickets.enrol("test", "li", "Li")
    [waiting] = await services.tickets.waiting()
    assert await services.tickets.claim(waiting.id, expert, limit=3) == "claimed"
    assert await services.tickets.close(waiting.id, expert, "Answered") is not None
    async with services.store.transaction() as tx:
        talent = await tx.user("test", "b", "en")
        assert await tx.rate(waiting.id, talent, 4)

    figures = await stats(services.store)
    today = utcnow().date().isoformat()
    assert figures.questions_per_day == {today: 4}
    assert figures.decisions == {"answer": 2, "clarify": 1, "handoff": 1}
    assert figures.languages == {"en": 3, "zh": 1}
    assert figures.helpful_by_entry == {"agent-exam.foreigners": (1, 1)}
    assert figures.tickets == {"opened": 1, "claimed": 1, "closed": 1}
    assert figures.ratings_by_expert == {"Li": (4.0, 1)}
    assert figures.median_minutes_to_claim is not None
    assert figures.median_minutes_to_claim < 1
    assert "answer          2" in stats_as_text(figures)
    assert "decision,handoff,1" in stats_as_csv(figures)


async def test_stats_before_any_ticket_or_rating_say_none_yet(services: Services) -> None:
    await say(services, "Can a foreigner take the patent agent exam?")
    text = stats_as_text(await stats(services.store))
    assert "median minutes to claim: none yet" in text
    assert "median minutes to close: none yet" in text
    assert "ratings per expert:\n  none yet" in text
    assert "None" not in text


async def test_stats_csv_lists_every_row_the_table_shows_zeros_included(
    services: Services,
) -> None:
    await say(services, "Can a foreigner take the patent agent exam?")
    figures = await stats(services.store)
    rows = stats_as_csv(figures).splitlines()
    assert rows[0] == "figure,key,value"
    assert [row for row in rows if row.startswith(("decision,", "tickets,"))] == [
        "decision,answer,1",
        "decision,clarify,0",
        "decision,handoff,0",
        "tickets,opened,0",
        "tickets,claimed,0",
        "tickets,closed,0",
    ]
    assert "clarify         0" in stats_as_text(figures)
    assert "opened          0" in stats_as_text(figures)


def cells(row: str) -> list[str]:
    """A markdown table row's cells, split where a renderer splits them (not at `\\|`)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


async def test_a_question_with_a_bar_or_a_line_break_keeps_its_row_in_markdown_reports(
    services: Services,
) -> None:
    await say(services, "Where can I buy a bicycle | near Wudaokou?")
    gaps = await unanswered(services.store, services.matcher)
    [row] = as_markdown(gaps).splitlines()[2:]
    assert len(cells(row)) == 4
    assert cells(row)[1] == "Where can I buy a bicycle \\| near Wudaokou?"
    assert "Where can I buy a bicycle | near Wudaokou?" in as_csv(gaps)

    wording = Suggestion("trademark.register", "trademark | brand\nname", "picked from a list")
    [row] = alternates_as_markdown([wording]).splitlines()[2:]
    assert cells(row) == ["trademark.register", "trademark \\| brand name", "picked from a list"]


async def test_a_one_word_question_is_not_grouped_with_every_question_using_its_word(
    services: Services,
) -> None:
    asked = [
        "patent",
        "Can I get a patent for a cooking recipe in China?",
        "Is my patent valid in Japan?",
    ]
    for number, question in enumerate(asked):
        await say(services, question, user=f"talent-{number}")
    gaps = await unanswered(services.store, services.matcher)
    grouped = {gap.question: gap.count for gap in gaps}
    assert grouped["patent"] == 1
    assert all(grouped.get(question, 1) == 1 for question in asked)
