"""The talent's conversation: ask a question, pick from choices, rate an answer, ask for a person.

Everything is decided inside one store transaction per inbound: the message is accepted (a
redelivered one is refused and not answered again), answered, and both sides are stored. An
inbound recovered after a crash is given the stored replies that never went out.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from markupsafe import Markup

from bot.conversation import EDITED, RELAYED_KINDS, Attachment, Button, Inbound, OutMessage
from bot.intents import recognise
from bot.knowledge import Entry, Language
from bot.matching import Decision
from bot.services import Services
from bot.store import DuplicateInbound, Transaction, privacy
from bot.store.models import Message, Ticket, User
from bot.store.tickets import Relay
from bot.text import clean, has_words, record_number, written_language
from handlers import expert

PAYLOAD_VERSION = "1"
EXPERT_COMMANDS = ("queue", "mine", "claim", "release", "close", "available", "away")
_CHOICE_DIGITS = 2
# What talents write after /language besides a code (en, zh, zh-CN, en-US …).
_LANGUAGE_NAMES: dict[str, Language] = {
    "chinese": "zh", "cn": "zh", "中文": "zh", "汉语": "zh", "简体中文": "zh",
    "英文": "en", "英语": "en",
}  # fmt: skip


async def handle(inbound: Inbound, services: Services) -> list[OutMessage] | None:
    """The bot's replies to one thing a talent did; none if it was handled before, and None
    if the sender is an expert or staff (theirs is the expert desk, and nothing is stored)."""
    text = clean(inbound.text)
    # A command's own letters say nothing about the language the talent reads.
    written = None if text.startswith("/") else written_language(text)
    try:
        async with services.store.transaction() as tx:
            first_language = (
                _language_from_hint(inbound.language_hint)
                or written
                or services.settings.default_language
            )
            user = await tx.user(
                inbound.channel, inbound.user_key, first_language, inbound.display_name
            )
            if user.role in ("expert", "staff"):
                return None
            # Set only when changed: an object left unchanged costs the session nothing to
            # check before each statement.
            if inbound.display_name and user.display_name != inbound.display_name:
                user.display_name = inbound.display_name
            language = _reply_language(user, written)
            message = await tx.accept(inbound, user, text, language)
            turn = _Turn(
                services, tx, user, message, language, inbound.display_name, inbound.edited
            )
            replies = await turn.respond(inbound.button, text, inbound.attachment)
            if not turn.forgotten:
                await tx.record_replies(message, replies, **turn.decision_fields())
    except DuplicateInbound:
        return await _owed(inbound, services) if inbound.recovered else []
    # What others must be told goes out only once this talent's side is safely stored.
    for action in turn.afterwards:
        await action()
    return replies


async def _owed(inbound: Inbound, services: Services) -> list[OutMessage]:
    """What an inbound whose process stopped (or whose replies Telegram could not take) is
    still owed: its message relayed to the expert, the talent's waiting ticket shown to the
    experts who have not seen it, and the replies stored for it, if they never went out."""
    relay = await services.tickets.undelivered_from(inbound.message_key)
    if relay is not None:
        await expert.deliver(relay, services)
    async with services.store.transaction() as tx:
        stored = await tx.unanswered(inbound)
        if stored is None:
            return []
        waiting = await tx.ticket_of(await tx.session.get_one(User, stored.user_id))
        replies = await tx.replies_to(stored)
    if waiting is not None and waiting.status == "open":
        await expert.announce(waiting.id, services, unshown_only=True)
    return replies


def _language_from_hint(hint: str | None) -> Language | None:
    """A channel's language code (Telegram's `zh-hans`, `en-US`) as one of ours."""
    if not hint:
        return None
    prefix = hint.lower()[:2]
    return "zh" if prefix == "zh" else "en" if prefix == "en" else None


def _reply_language(user: User, written: Language | None) -> Language:
    """The language the talent chose; otherwise the one they are writing in."""
    if not user.language_chosen and written is not None and user.language != written:
        user.language = written
    return "zh" if user.language == "zh" else "en"


@dataclass
class _Turn:
    """One inbound and everything needed to answer it."""

    services: Services
    tx: Transaction
    user: User
    message: Message
    language: Language
    display_name: str | None
    # The talent changed a message sent before: relayed again, it is marked as a change.
    edited: bool = False

    def decision_fields(self) -> dict[str, object]:
        """The matcher's decision to store beside the reply, if this turn answered a question."""
        if self.message.action != "answer":
            return {}
        return {"action": "answer", "entry_id": self.message.entry_id}

    def __post_init__(self) -> None:
        self.afterwards: list[Callable[[], Awaitable[object]]] = []
        # One knowledge base for the whole turn, even if a reload swaps it meanwhile.
        self.matcher = self.services.matcher
        self.forgotten = False

    async def respond(
        self, button: str | None, text: str, attachment: Attachment | None = None
    ) -> list[OutMessage]:
        if button is not None:
            return await self._press(button)
        if not text and attachment is None:
            return [self._say("empty")]
        if text.startswith("/"):
            return await self._command(text)
        ticket = await self.tx.ticket_of(self.user)
        if ticket is not None:
            # Whatever the talent types while a ticket is open is for the expert: a number is
            # an answer to them ("2 patents"), not a pick from the consent buttons above.
            return await self._add_to_ticket(ticket, text, attachment)
        if attachment is not None and not text:
            # Photos and documents are kept (the store has them): an expert the talent asks
            # for sees them.
            kept = attachment.kind in RELAYED_KINDS
            return [self._say("not_text", kept=kept, kind=attachment.kind)]
        if text.isdecimal() and len(text) <= _CHOICE_DIGITS:
            return await self._pick_number(int(text))
        limit = self.services.settings.max_question_chars
        if len(text) > limit:
            self._record(Decision("handoff"))
            return [
                self._say(
                    "too_long",
                    buttons=[self._expert_button(self.message)],
                    length=len(text),
                    limit=limit,
                )
            ]
        if not has_words(text):
            return [self._say("no_words")]
        intent = recognise(text)
        # Right after a rating, words are a comment on it; a question is answered as ever
        # (and what it came after need not be looked up).
        is_question = text.rstrip().endswith(("?", "？"))
        if intent != "expert" and not is_question:
            tapped = await self.tx.previous_tap(self.user, before=self.message.id) or ""
            if tapped.startswith(f"{PAYLOAD_VERSION}:s:"):
                return await self._comment_on_rating(tapped, text)
        if intent == "hello":
            return [self._say("hello")]
        if intent == "thanks":
            return [self._say("thanks")]
        if intent == "expert":
            return await self._request_expert()
        if intent == "yes":
            return await self._agree()
        return self._answer_question(text)

    async def _agree(self) -> list[OutMessage]:
        """A yes to "Shall I pass it on?" is a tap on its button; any other yes or ok (to an
        out-of-scope notice, say) asks for the question in words."""
        choices = await self.tx.last_buttons(self.user, before=self.message.id)
        if len(choices) == 1 and choices[0][1].startswith(f"{PAYLOAD_VERSION}:p"):
            self.message.button = choices[0][1]
            return await self._press(choices[0][1])
        return [self._say("what_to_ask")]

    def _answer_question(self, text: str) -> list[OutMessage]:
        decision = self.matcher.decide(text)
        self._record(decision)
        knowledge = self.matcher.knowledge
        if decision.action == "answer":
            entry = knowledge.get(decision.entry_id or "")
            assert entry is not None
            return [self._answer(entry)]
        if decision.action == "clarify":
            options = [entry for entry in map(knowledge.get, decision.options) if entry]
            choices = [
                Button(self._option_label(entry, decision), self._payload("e", entry.id))
                for entry in options
            ]
            choices.append(
                Button(self._label("none_of_these"), self._payload("o", str(self.message.id)))
            )
            template = f"clarify_{decision.ask}" if decision.ask else "clarify"
            return [self._say(template, buttons=choices)]
        if decision.out_of_scope is not None:
            return [self._say("out_of_scope", buttons=[self._expert_button(self.message)])]
        return [self._offer(self.message, text)]

    def _option_label(self, entry: Entry, decision: Decision) -> str:
        """An option as the dimension asked about ("A patent"), or as its question."""
        if decision.ask == "right":
            return self._label("topic_" + entry.topic.replace("-", "_"))
        if decision.ask == "region":
            return self._label(f"region_{entry.region}")
        return entry.text(self.language).question

    def _record(self, decision: Decision, entry_id: str | None = None) -> None:
        """Keep the decision with the question, so every answer can be traced to its entry."""
        self.message.action = decision.action
        self.message.entry_id = entry_id or decision.entry_id
        self.message.score = decision.score if decision.candidates else None
        self.message.options = [c.entry_id for c in decision.candidates] or None
        self.message.kb_version = self.matcher.knowledge.version

    def _answer(self, entry: Entry) -> OutMessage:
        text = entry.text(self.language)
        source = entry.sources[0]
        buttons = [
            Button(self._label("helpful"), self._payload("y", str(self.message.id))),
            Button(self._label("not_helpful"), self._payload("n", str(self.message.id))),
        ]
        if text.more:
            buttons.append(Button(self._label("more"), self._payload("m", entry.id)))
        knowledge = self.matcher.knowledge
        for related_id in entry.related[:3]:
            related = knowledge.get(related_id)
            if related is not None:
                question = related.text(self.language).question
                buttons.append(
                    Button(
                        self._label("related", question=question), self._payload("e", related.id)
                    )
                )
        buttons.append(self._expert_button(self.message))
        return self._say(
            "answer",
            buttons=buttons,
            question=text.question,
            answer=text.answer.strip(),
            title=source.title,
            url=source.url,
            reviewed=entry.reviewed.isoformat(),
        )

    async def _pick_number(self, number: int) -> list[OutMessage]:
        choices = await self.tx.last_buttons(self.user, before=self.message.id)
        if not choices:
            return [self._say("no_choices")]
        if not 1 <= number <= len(choices):
            # The list again, so that the next number is read against it.
            buttons = [Button(label, payload) for label, payload in choices]
            return [self._say("choose_number", buttons=buttons, count=len(choices))]
        _, payload = choices[number - 1]
        self.message.button = payload
        return await self._press(payload)

    async def _press(self, payload: str) -> list[OutMessage]:
        version, _, rest = payload.partition(":")
        kind, _, argument = rest.partition(":")
        if version != PAYLOAD_VERSION:
            return [self._say("button_expired")]
        knowledge = self.matcher.knowledge
        if kind in ("e", "m"):
            entry = knowledge.get(argument)
            if entry is None:
                return [self._say("entry_gone")]
            if kind == "m":
                text = entry.text(self.language)
                return [self._say("more", question=text.question, more=text.more or text.answer)]
            self._record(Decision("answer"), entry_id=entry.id)
            return [self._answer(entry)]
        if kind in ("y", "n") and (message_id := record_number(argument)) is not None:
            answered = await self.tx.answer_message(self.user, message_id)
            if answered is None:
                return [self._say("button_expired")]
            await self.tx.record_feedback(self.user, answered, helpful=kind == "y")
            if kind == "y":
                return [self._say("feedback_thanks")]
            return [self._say("feedback_sorry", buttons=[self._expert_button(answered)])]
        if kind in ("x", "p", "o"):
            # The button says which question it was shown under: an old one still hands that
            # question over, not the latest.
            asked = await self._asked(argument)
            if kind in ("x", "p"):
                return await self._request_expert(asked)
            question = asked.text if asked is not None else ""
            return [self._offer(asked, question)]
        if kind == "l" and argument in ("en", "zh"):
            return self._choose_language(argument)
        if kind == "f" and argument == "yes":
            ticket = await self.tx.ticket_of(self.user)
            await privacy.forget(self.tx, self.user)
            if ticket is not None:
                ticket_id, expert_id = ticket.id, await self.tx.holder(ticket.id)
                self.afterwards.append(
                    lambda: expert.closed_by_talent(
                        ticket_id, expert_id, self.services, "talent_forgot"
                    )
                )
            self.forgotten = True
            return [self._say("forgotten")]
        if kind == "f" and argument == "no":
            return [self._say("forget_cancelled")]
        if kind == "w":
            return await self._withdraw(record_number(argument) if argument else None)
        if kind == "k" and argument in ("name", "contacts"):
            return await self._consent(argument)
        if kind == "c":
            # A Claim button in the experts' group, tapped by a member who is not an expert.
            return [self._say("not_expert")]
        ticket_id, _, stars = argument.partition(":")
        rated = record_number(ticket_id)
        if kind == "s" and rated is not None and stars in ("1", "2", "3", "4", "5"):
            ticket = await self.tx.session.get(Ticket, rated)
            if (
                ticket is not None
                and ticket.talent_id == self.user.id
                and ticket.status == "closed"
            ):
                ticket.rating = int(stars)
                return [self._say("rated")]
        return [self._say("button_expired")]

    async def _command(self, text: str) -> list[OutMessage]:
        command, _, argument = text[1:].partition(" ")
        command = command.split("@", 1)[0].lower()
        argument = argument.strip().lower()
        if command == "start":
            return [
                self._say(
                    "greeting",
                    buttons=[
                        Button(self._label("english"), self._payload("l", "en")),
                        Button(self._label("chinese"), self._payload("l", "zh")),
                    ],
                    name=self.display_name,
                )
            ]
        if command == "help":
            return [self._say("help")]
        if command == "language":
            chosen = _LANGUAGE_NAMES.get(argument) or _language_from_hint(argument)
            if chosen is not None:
                return self._choose_language(chosen)
            return [
                self._say(
                    "language_usage",
                    buttons=[
                        Button(self._label("english"), self._payload("l", "en")),
                        Button(self._label("chinese"), self._payload("l", "zh")),
                    ],
                )
            ]
        if command == "expert":
            return await self._request_expert()
        if command == "cancel":
            return await self._withdraw(None)
        if command == "mydata":
            stored = await privacy.holdings(self.tx, self.user)
            return [self._say("mydata", stored=stored)]
        if command == "forget":
            return [
                self._say(
                    "forget_confirm",
                    buttons=[
                        Button(self._label("forget_yes"), self._payload("f", "yes")),
                        Button(self._label("forget_no"), self._payload("f", "no")),
                    ],
                )
            ]
        if command in EXPERT_COMMANDS:
            await self.tx.audit(self.user, "refused", f"/{command}", reason="not an expert")
            return [self._say("not_expert")]
        if command == "privacy":
            entry = self.matcher.knowledge.get("service.privacy")
            if entry is not None:
                self._record(Decision("answer"), entry_id=entry.id)
                return [self._answer(entry)]
        return [self._say("unknown_command")]

    def _choose_language(self, language: Language) -> list[OutMessage]:
        self.user.language = language
        self.user.language_chosen = True
        self.language = language
        self.message.language = language
        return [self._say("language_set")]

    async def _asked(self, argument: str) -> Message | None:
        """The question a button names (one this talent typed), else their latest one."""
        message_id = record_number(argument)
        named = await self.tx.asked(self.user, message_id) if message_id is not None else None
        return named or await self.tx.last_question(self.user, before=self.message.id)

    async def _request_expert(self, asked: Message | None = None) -> list[OutMessage]:
        asked = asked or await self.tx.last_question(self.user, before=self.message.id)
        question = asked.text if asked is not None else ""
        topic = None
        if asked is not None and asked.options:
            best = self.matcher.knowledge.get(asked.options[0])
            topic = best.topic if best is not None else None
        ticket, place, created = await self.tx.request_expert(
            self.user, question, self.language, topic
        )
        if created:
            await self.tx.audit(self.user, "ticket-opened", f"T-{ticket.id}", topic=topic)
            self.afterwards.append(lambda: expert.announce(ticket.id, self.services))
        elif ticket.status == "claimed":
            return [self._say("expert_already", ticket=ticket.id)]
        buttons = [
            Button(self._label("share_name"), self._payload("k", "name")),
            Button(self._label("share_contacts"), self._payload("k", "contacts")),
            Button(self._label("withdraw"), self._payload("w", str(ticket.id))),
        ]
        return [self._say("expert_requested", buttons=buttons, ticket=ticket.id, place=place)]

    async def _withdraw(self, named: int | None) -> list[OutMessage]:
        """The talent takes back their request for an expert (the one a button names, else
        the open one): the ticket closes, and the bot answers their questions again."""
        ticket = await self.tx.ticket_of(self.user)
        ticket_id = named if named is not None else ticket.id if ticket is not None else None
        if ticket_id is None:
            return [self._say("nothing_to_withdraw")]
        if not await self.tx.withdraw(ticket_id, self.user):
            return [self._say("withdrawn_already", ticket=ticket_id)]
        expert_id = await self.tx.holder(ticket_id)
        self.afterwards.append(
            lambda: expert.closed_by_talent(ticket_id, expert_id, self.services, "talent_withdrew")
        )
        return [self._say("withdrawn", ticket=ticket_id)]

    async def _consent(self, what: str) -> list[OutMessage]:
        """The talent lets their expert see their first name, or the contact details and
        application numbers they wrote (masked until then)."""
        if what == "name":
            self.user.share_name = True
        else:
            ticket = await self.tx.ticket_of(self.user)
            if ticket is None:
                return [self._say("button_expired")]
            ticket.contacts_shared = True
        await self.tx.audit(self.user, "consent", what)
        return [self._say(f"consent_{what}")]

    async def _add_to_ticket(
        self, ticket: Ticket, text: str, attachment: Attachment | None
    ) -> list[OutMessage]:
        """While a ticket is open, what the talent writes (or a photo or document they send)
        belongs to it: relayed to its expert once stored, or kept for whoever claims it."""
        if attachment is not None and attachment.kind not in RELAYED_KINDS:
            return [self._say("not_relayed", kind=attachment.kind)]
        key = self.message.channel_key or str(self.message.id)
        if self.edited:
            # The expert saw the first version: the new one comes marked as a change.
            text = f"{EDITED} {text}"
        stored = await self.tx.add_to_ticket(ticket, self.user, text, key, attachment)
        if ticket.status != "claimed":
            return [self._say("added_to_ticket", ticket=ticket.id)]
        relay = Relay.of(stored)
        self.afterwards.append(lambda: expert.deliver(relay, self.services))
        return []

    async def _comment_on_rating(self, rating_payload: str, text: str) -> list[OutMessage]:
        ticket_id = record_number(rating_payload.split(":")[2])
        ticket = await self.tx.session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is None or ticket.talent_id != self.user.id or ticket.rating is None:
            return self._answer_question(text)
        ticket.rating_comment = text
        return [self._say("rating_comment")]

    def _offer(self, question: Message | None, text: str) -> OutMessage:
        """ "Shall I pass it on?", with its one button: a "yes" typed next taps it."""
        offered = self._expert_button(question, kind="p")
        return self._say("handoff_offer", buttons=[offered], question=text)

    def _expert_button(self, question: Message | None = None, kind: str = "x") -> Button:
        """ "Talk to an expert", naming the question it is shown under if the talent typed it
        (an answer reached by a button hands over their latest typed question instead)."""
        typed = question is not None and question.button is None and question.text
        return Button(self._label("expert"), self._payload(kind, str(question.id) if typed else ""))

    def _payload(self, kind: str, argument: str = "") -> str:
        return f"{PAYLOAD_VERSION}:{kind}:{argument}" if argument else f"{PAYLOAD_VERSION}:{kind}"

    def _label(self, name: str, **context: str) -> str:
        return Markup(self.services.templates.label(self.language, name, **context)).unescape()

    def _say(
        self, template: str, buttons: list[Button] | None = None, **context: object
    ) -> OutMessage:
        text = self.services.templates.render(self.language, template, **context)
        return OutMessage(text=text, language=self.language, buttons=tuple(buttons or ()))
