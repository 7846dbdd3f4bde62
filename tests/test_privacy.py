"""A talent sees what is stored about them and can erase it; old conversations are purged."""

from datetime import timedelta

from sqlalchemy import func, select

from bot.conversation import Attachment, Inbound
from bot.router import route
from bot.services import Services
from bot.store import notices, privacy
from bot.store.models import Message, Notice, Ticket, TicketMessage, User, utcnow
from tests.conversations import payloads, say


async def test_mydata_shows_what_is_stored(services: Services) -> None:
    await say(services, "Can a foreigner take the patent agent exam?", user="4242")
    [reply] = await say(services, "/mydata", user="4242")
    assert "Your id: 4242 (test)" in reply.text
    assert "Messages (your questions and the answers): 3" in reply.text
    assert "never see your Telegram id" in reply.text


async def test_forget_asks_first_and_then_erases_messages_and_profile(services: Services) -> None:
    await say(services, "How do I value my patent portfolio?", user="leaving")
    await say(services, "/expert", user="leaving")
    await say(services, "my phone is 13800001111", user="leaving")
    scan = Attachment("photo", "passport-scan")
    await route(Inbound("test", "leaving", "scan", attachment=scan), services)
    [confirm] = await say(services, "/forget", user="leaving")
    assert payloads(confirm) == ["1:f:yes", "1:f:no"]
    [kept] = await say(services, button="1:f:no", user="leaving")
    assert "Nothing was erased" in kept.text
    [done] = await say(services, button="1:f:yes", user="leaving")
    assert "has been erased" in done.text
    async with services.store.transaction() as tx:
        found = await tx.session.scalar(select(User).where(User.external_id == "leaving"))
        messages = await tx.session.scalar(select(func.count()).select_from(Message))
        [ticket] = list(await tx.session.scalars(select(Ticket)))
        remaining = (
            await tx.session.execute(select(TicketMessage.text, TicketMessage.attachment))
        ).all()
    assert found is None
    assert messages == 0
    assert ticket.question == privacy.ERASED
    assert [tuple(row) for row in remaining] == [(privacy.ERASED, None), (privacy.ERASED, None)]


async def test_the_same_person_writing_again_starts_afresh(services: Services) -> None:
    await say(services, "/language zh", user="again")
    await say(services, button="1:f:yes", user="again")
    [reply] = await say(services, "Can a foreigner take the patent agent exam?", user="again")
    assert reply.language == "en"


async def test_conversations_older_than_the_retention_are_purged(services: Services) -> None:
    await say(services, "Can a foreigner take the patent agent exam?")
    assert await privacy.purge(services.store, utcnow() - timedelta(days=1)) == 0
    assert await privacy.purge(services.store, utcnow() + timedelta(seconds=1)) == 2
    async with services.store.transaction() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(Message)) == 0


async def test_forget_also_erases_notices_still_waiting_to_be_sent(services: Services) -> None:
    await say(services, "How do I value my patent portfolio?", user="leaving")
    async with services.store.transaction() as tx:
        talent = await tx.session.scalar(select(User).where(User.external_id == "leaving"))
        assert talent is not None
        notices.queue(tx, talent, "Is your question answered?", "en", utcnow())
    await say(services, "/forget", user="leaving")
    await say(services, button="1:f:yes", user="leaving")
    async with services.store.transaction() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(Notice)) == 0
