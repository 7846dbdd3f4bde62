"""Staff figures match a scripted conversation exactly."""

from bot.reports import stats, stats_as_csv, stats_as_text
from bot.services import Services
from bot.store.models import utcnow
from tests.test_talent import payloads, say


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
