"""A bot process killed with SIGKILL in the middle of a burst of talents' questions, relayed
chat and claims: after a restart nothing accepted is lost and nothing is done twice.

The bot runs as a real `ipbot run` process against the Bot API emulator. The kill comes while
the emulator holds what the bot sends, unsent, as a network that stopped carrying it would: so
the bot dies with updates fetched but not confirmed, updates stored but not handled, answers
decided but not sent, claims made but not told, and no message a user saw that it had not yet
noted as sent. (Between Telegram taking a message and the bot noting it there are a few
milliseconds in which a kill means the message is sent again: Telegram has no way to send a
message only once. The hold keeps the test out of them.)
"""

import asyncio
import contextlib
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.intents import recognise
from bot.knowledge import KnowledgeBase
from bot.services import Services
from bot.store.models import AuditEvent, InboxUpdate, Message, Ticket, TicketMessage, User
from tests.botapi import BotApiEmulator, Limits, Phone, Sent
from tests.processes import start_bot

SETTINGS = {
    # Updates a dead process left unhandled are taken over this soon after its last renewal.
    "TELEGRAM_UPDATE_LEASE_SECONDS": "1.5",
    # A faster pace than Telegram's, so the burst fits in a few seconds (see the emulator).
    "TELEGRAM_MESSAGES_PER_SECOND": "100",
    "TELEGRAM_CHAT_MESSAGES_PER_SECOND": "20",
    "EXPERT_MAX_OPEN_TICKETS": "10",
    # Due 12 s after a claim (a reminder) or after a ticket opens (an escalation): after the
    # kill, even on a slow machine. Nothing else falls due during the test.
    "SLA_CHECK_SECONDS": "0.5",
    "SLA_FIRST_REPLY_MINUTES": "0.2",
    "SLA_ESCALATE_MINUTES": "0.2",
    "SLA_REANNOUNCE_MINUTES": "10",
    "SLA_LEASE_MINUTES": "10",
}
STAFF = 900
RELAYS = {2001: (3001, 3002), 2002: (3003, 3004)}  # expert: the talents whose tickets they hold
CLAIMERS = (2101, 2102, 2103)
ASKERS = (5001, 5002, 5003, 5004, 5005, 5006)  # each asks for an expert
CLAIMED = ASKERS[:3]  # the claimers go for these talents' tickets and leave the others
GROUPS = (tuple(range(4100, 4108)), tuple(range(4200, 4208)), tuple(range(4300, 4306)))
TICKET = re.compile(r"#T-(\d+)")


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(limits=Limits(overall_per_second=100, chat_per_second=20))
    await emulator.start()
    yield emulator
    await emulator.stop()


class Burst:
    """The users of the test, and every update they gave the bot."""

    def __init__(self, emulator: BotApiEmulator, questions: list[str]) -> None:
        self.emulator = emulator
        self.questions = questions
        self.updates: list[dict[str, Any]] = []
        self.asked: Counter[int] = Counter()
        self.said: dict[int, list[str]] = defaultdict(list)
        self.tapped: set[tuple[int, int]] = set()
        self.tickets: dict[int, int] = {}  # talent: their ticket
        self.replied: set[str] = set()  # the keys of updates that get one reply each

    def phone(self, user_id: int) -> Phone:
        return self.emulator.phone(user_id)

    async def send(self, user_id: int, text: str, replied: bool = True) -> None:
        self.updates.append(await self.phone(user_id).send(text))
        if replied:
            self.replied.add(_key(self.updates[-1]))

    async def ask(self, talents: tuple[int, ...], turn: int) -> None:
        for talent in talents:
            question = self.questions[(talent * 3 + turn) % len(self.questions)]
            await self.send(talent, question)
            self.asked[talent] += 1

    async def chat(self, turn: int) -> None:
        """Every relay talent writes to their expert, and every relay expert to each talent."""
        for expert, talents in RELAYS.items():
            for talent in talents:
                await self.send(talent, f"talent {talent} writes {turn}", replied=False)
                self.said[expert].append(f"talent {talent} writes {turn}")
                text = f"#T-{self.tickets[talent]} expert {expert} writes {turn} to {talent}"
                await self.send(expert, text, replied=False)
                self.said[talent].append(f"expert {expert} writes {turn} to {talent}")

    async def claim(self, claimers: tuple[int, ...], wanted: set[int]) -> None:
        """Each claimer taps Claim on every card they have for a wanted ticket, once."""
        for claimer in claimers:
            for card in list(self.phone(claimer).received):
                for label, data in card.buttons:
                    key = (claimer, card.message_id)
                    if (
                        label.startswith("Claim")
                        and _ticket(data) in wanted
                        and key not in self.tapped
                    ):
                        self.tapped.add(key)
                        self.updates.append(await self.phone(claimer).tap(card, label))
                        self.replied.add(_key(self.updates[-1]))

    async def note_tickets(self, services: Services) -> None:
        async with services.store.transaction() as tx:
            rows = await tx.session.execute(
                select(User.external_id, Ticket.id).join(Ticket, Ticket.talent_id == User.id)
            )
            self.tickets.update({int(talent): ticket for talent, ticket in rows.all()})

    def asked_tickets(self) -> set[int]:
        """The tickets the askers opened in the burst."""
        return {self.tickets[asker] for asker in ASKERS}

    def cards(self, claimer: int) -> int:
        """How many tickets the claimer was shown (with a Claim button, or since taken)."""
        return _count(self.phone(claimer), r"^New question|has been taken by|is yours\.$")

    def settled(self) -> bool:
        """Whether every user has had as many messages as they are owed, if no more."""
        return (
            all(_count(self.phone(t)) >= n for t, n in self.asked.items())
            and all(_count(self.phone(u)) >= len(said) for u, said in self.said.items())
            and all(
                _count(self.phone(c), "^(?!Reminder)") >= self.taps(c) + len(ASKERS)
                for c in CLAIMERS
            )
        )

    def reminded_and_escalated(self, states: dict[int, tuple[str, str | None]]) -> bool:
        """Whether each claimed ticket's expert was reminded and each waiting one escalated."""
        reminded = {
            t for c in CLAIMERS for k, t in _kinds(self.phone(c).received) if k == "reminder"
        }
        escalated = {t for _, t in _kinds(self.phone(STAFF).received)}
        asked = self.asked_tickets()
        return {t for t in asked if states[t][0] == "claimed"} <= reminded and {
            t for t in asked if states[t][0] == "open"
        } <= escalated

    def taps(self, claimer: int) -> int:
        return sum(1 for who, _ in self.tapped if who == claimer)

    def keys(self) -> set[str]:
        """The channel keys the bot stores the updates under."""
        return {_key(update) for update in self.updates}

    async def noted(self, services: Services) -> bool:
        """Whether the bot has noted as sent every reply and relayed message a user saw (it
        does so just after Telegram takes each)."""
        replies = (
            sum(_count(self.phone(talent)) for talent in self.asked)
            + sum(_count(self.phone(a), "is with the volunteer IP experts") for a in ASKERS)
            + sum(_count(self.phone(c), "^(Ticket|Sorry,|You already hold) #T-") for c in CLAIMERS)
        )
        relayed = sum(_count(self.phone(user)) for user in self.said)
        async with services.store.transaction() as tx:
            answered = await tx.session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.channel_key.in_(self.replied), Message.delivered_at.is_not(None))
            )
            delivered = await tx.session.scalar(
                select(func.count())
                .select_from(TicketMessage)
                .where(
                    TicketMessage.delivered_at.is_not(None),
                    ~TicketMessage.source_key.startswith("arranged:"),
                )
            )
        return (answered, delivered) == (replies, relayed)


def _key(update: dict[str, Any]) -> str:
    """The channel key the bot stores an update under."""
    query = update.get("callback_query")
    if query is None:
        return f"update:{update['update_id']}"
    message = query["message"]
    return f"tap:{message['chat']['id']}:{message['message_id']}:{query['data']}"


def _ticket(text: str) -> int:
    found = TICKET.search(text) or re.search(r":c:(\d+)$", text)
    assert found is not None, text
    return int(found.group(1))


def _count(phone: Phone, pattern: str = "") -> int:
    """How many messages in the chat match `pattern`."""
    return sum(1 for message in phone.received if re.search(pattern, message.text))


def _kinds(messages: list[Sent]) -> Counter[tuple[str, int]]:
    """A claimer's or staff member's chat as (kind, ticket) counts."""
    kinds: Counter[tuple[str, int]] = Counter()
    patterns = {
        "card": r"^New question #T-|has been taken by another expert\.$|is yours\.$",
        "case": r"^Ticket #T-",
        "taken": r"^Sorry, #T-\d+ has already been taken",
        "yours": r"^You already hold #T-",
        "reminder": r"^Reminder: the talent of #T-",
        "escalated": r"^⚠️ #T-\d+ has waited",
    }
    for message in messages:
        kind = next((k for k, p in patterns.items() if re.search(p, message.text)), message.text)
        kinds[(kind, _ticket(message.text))] += 1
    return kinds


async def _arrange(services: Services, burst: Burst) -> None:
    """Staff, experts, and tickets already claimed by the relay experts (replied to once)."""
    tickets = services.tickets
    await tickets.appoint_staff("telegram", str(STAFF))
    staff = await tickets.find("telegram", str(STAFF))
    assert staff is not None
    # Only the claimers are shown new tickets.
    await tickets.set_available(staff, False)
    for claimer in CLAIMERS:
        await tickets.enrol("telegram", str(claimer), f"Claimer {claimer}")
    for expert_id, talents in RELAYS.items():
        expert = await tickets.enrol("telegram", str(expert_id), f"Relay {expert_id}")
        await tickets.set_available(expert, False)
        for talent_id in talents:
            async with services.store.transaction() as tx:
                talent = await tx.user("telegram", str(talent_id), "en")
                ticket, _, _ = await tx.request_expert(talent, "A question", "en", None)
            assert await tickets.claim(ticket.id, expert, limit=10) == "claimed"
            relay = await tickets.store_relay(
                ticket, expert, talent, "Hello", f"arranged:{talent_id}"
            )
            assert relay is not None
            await tickets.delivered(relay.id)
            burst.tickets[talent_id] = ticket.id


def _questions(knowledge: KnowledgeBase) -> list[str]:
    """Questions of the knowledge base that are not small talk (nor a request for an expert)."""
    return [entry.en.question for entry in knowledge if recognise(entry.en.question) is None]


async def test_a_kill_in_a_burst_loses_nothing_and_repeats_nothing(
    emulator: BotApiEmulator, services: Services, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    store = services.store
    burst = Burst(emulator, _questions(knowledge))
    await _arrange(services, burst)
    url = store.engine.url.render_as_string(hide_password=False)
    bot = await start_bot(emulator, url, tmp_path, stderr=asyncio.subprocess.DEVNULL, **SETTINGS)
    try:
        # Before the kill: tickets asked for and shown, one claimed, chat and questions flowing.
        for asker in ASKERS:
            await burst.send(asker, "/expert")
        await burst.chat(0)
        await burst.ask(GROUPS[0], 0)
        await burst.ask(GROUPS[0], 1)
        await emulator.wait_for(
            lambda: (
                all(burst.cards(claimer) == len(ASKERS) for claimer in CLAIMERS)
                and all(_count(burst.phone(t)) == 2 for t in GROUPS[0])
            ),
            within=60,
        )
        await burst.note_tickets(services)
        wanted = {burst.tickets[asker] for asker in CLAIMED}
        await burst.claim(CLAIMERS[:1], {min(wanted)})
        await emulator.wait_for(lambda: _count(burst.phone(CLAIMERS[0]), "^Ticket") == 1)

        # The network stops carrying the bot's messages; more comes in; the bot is killed.
        emulator.stall()
        await burst.claim(CLAIMERS, wanted)
        await burst.chat(1)
        await burst.ask(GROUPS[1], 0)
        await burst.ask(GROUPS[1], 1)
        await burst.ask(GROUPS[0][:4], 2)
        await emulator.wait_for(lambda: emulator.held >= 10, within=30)
        # Killed once the bot has noted as sent what users saw (what it sends now is held).
        deadline = time.monotonic() + 30
        while not await burst.noted(services):
            assert time.monotonic() < deadline, "the bot never noted what it had sent"
            await asyncio.sleep(0.1)
        bot.send_signal(signal.SIGKILL)
        await bot.wait()

        # While it is down, users go on; then it comes back.
        await burst.chat(2)
        await burst.ask(GROUPS[2], 0)
        await burst.ask(GROUPS[1][:4], 2)
        emulator.resume()
        bot = await start_bot(
            emulator, url, tmp_path, stderr=asyncio.subprocess.DEVNULL, **SETTINGS
        )
        # A wait that runs out is reported by the assertions below, with what is missing.
        with contextlib.suppress(AssertionError):
            await emulator.wait_for(burst.settled, within=60)
        states = await _ticket_states(services)
        with contextlib.suppress(AssertionError):
            await emulator.wait_for(lambda: burst.reminded_and_escalated(states), within=30)
        # Long enough for several checks of the service levels: none may act again.
        await asyncio.sleep(2)
    finally:
        bot.send_signal(signal.SIGTERM)
        await bot.wait()

    _each_question_answered_once(burst)
    _each_relayed_message_shown_once(burst)
    _each_tap_answered_once_and_each_claim_made_once(burst, states)
    _service_levels_acted_once(burst, states)
    await _the_store_holds_together(services, burst)


def _each_question_answered_once(burst: Burst) -> None:
    for talent, count in burst.asked.items():
        assert _count(burst.phone(talent)) == count, talent


def _each_relayed_message_shown_once(burst: Burst) -> None:
    for user, said in burst.said.items():
        shown = [m.text.split(": ", 1)[1] for m in burst.phone(user).received]
        assert Counter(shown) == Counter(said), user


def _each_tap_answered_once_and_each_claim_made_once(
    burst: Burst, states: dict[int, tuple[str, str | None]]
) -> None:
    cases: Counter[int] = Counter()
    for claimer in CLAIMERS:
        kinds = _kinds(burst.phone(claimer).received)
        assert {kind for kind, _ in kinds} <= {"card", "case", "taken", "yours", "reminder"}
        replies = sum(n for (kind, _), n in kinds.items() if kind in ("case", "taken", "yours"))
        assert replies == burst.taps(claimer)
        for (kind, ticket), count in kinds.items():
            if kind == "case":
                cases[ticket] += count
                assert states[ticket] == ("claimed", str(claimer))
    claimed = {ticket for ticket in burst.asked_tickets() if states[ticket][0] == "claimed"}
    assert set(cases) == claimed
    assert set(cases.values()) == {1}
    assert {burst.tickets[asker] for asker in CLAIMED} == claimed
    for asker in ASKERS:
        talent = burst.phone(asker)
        assert _count(talent, "is with the volunteer IP experts") == 1
        # Told at least once: a claim done again after the crash tells the talent again.
        told = _count(talent, "is now looking at your question") > 0
        assert told == (burst.tickets[asker] in claimed)


def _service_levels_acted_once(burst: Burst, states: dict[int, tuple[str, str | None]]) -> None:
    """A reminder for each claim without a reply, an escalation for each ticket that waited (one
    claimed only after the restart may have waited long enough too), and nothing twice."""
    asked = burst.asked_tickets()
    reminders: Counter[int] = Counter()
    for claimer in CLAIMERS:
        for (kind, ticket), count in _kinds(burst.phone(claimer).received).items():
            if kind == "reminder":
                assert states[ticket] == ("claimed", str(claimer))
                reminders[ticket] += count
    assert reminders == Counter({t: 1 for t in asked if states[t][0] == "claimed"})
    escalations = _kinds(burst.phone(STAFF).received)
    assert {kind for kind, _ in escalations} == {"escalated"}
    assert {t for t in asked if states[t][0] == "open"} <= {t for _, t in escalations} <= asked
    assert set(escalations.values()) == {1}


async def _the_store_holds_together(services: Services, burst: Burst) -> None:
    """Every update stored once and answered, every relayed message once and delivered, every
    ticket in a state that agrees with itself, claimed once at most."""
    async with services.store.transaction() as tx:
        session = tx.session
        inbound = await session.execute(
            select(Message.channel_key, Message.delivered_at).where(
                Message.direction == "in", Message.channel == "telegram"
            )
        )
        rows = inbound.all()
        assert {key for key, _ in rows} == burst.keys()
        assert all(answered is not None for _, answered in rows)
        unhandled = await session.scalar(
            select(func.count()).select_from(InboxUpdate).where(InboxUpdate.handled_at.is_(None))
        )
        assert unhandled == 0
        relayed = list(
            await session.scalars(
                select(TicketMessage).where(~TicketMessage.source_key.startswith("arranged:"))
            )
        )
        assert len(relayed) == sum(len(said) for said in burst.said.values())
        assert all(message.delivered_at is not None for message in relayed)
        claims = Counter(
            await session.scalars(select(AuditEvent.subject).where(AuditEvent.action == "claim"))
        )
        for ticket in await session.scalars(select(Ticket)):
            assert (ticket.status == "claimed") == (ticket.expert_id is not None)
            assert (ticket.status == "claimed") == (ticket.claimed_at is not None)
            if ticket.id in burst.asked_tickets():
                assert claims[f"T-{ticket.id}"] == int(ticket.status == "claimed")


async def _ticket_states(services: Services) -> dict[int, tuple[str, str | None]]:
    """Each ticket's status and the channel id of the expert holding it."""
    async with services.store.transaction() as tx:
        rows = await tx.session.execute(
            select(Ticket.id, Ticket.status, User.external_id).outerjoin(
                User, User.id == Ticket.expert_id
            )
        )
        return {ticket: (status, expert) for ticket, status, expert in rows.all()}
