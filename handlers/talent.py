"""The talent's conversation: ask a question, pick from choices, rate an answer, ask for a person.

A turn (`_Turn.respond`) reads what the talent did, in this order:

1. A tapped button, or a number typed to pick one of the last choices, does what the button
   says (`_press`): show an entry or the rest of it, take a verdict on an answer, hand the
   question to an expert, choose a language, forget the talent, take a request back, share a
   name or contacts with the expert, rate a closed ticket.
2. A command does its own thing (`_command`): /start, /help, /language, /expert, /cancel,
   /mydata, /forget, /privacy. An expert's command is refused, and the attempt logged.
3. While the talent has a ticket open, whatever they write is for its expert
   (`_add_to_ticket`): relayed to the expert holding it, or kept for whoever claims it.
4. Otherwise words are read (`_read`): a greeting, thanks, a request for an expert, a yes to
   "Shall I pass it on?", a comment on the rating just given; anything else is a question,
   matched against the knowledge base (`_answer_question`), which answers it, asks which of a
   few entries is meant, or offers to pass it to an expert.

Everything is decided inside the one store transaction the router opened to look the talent
up: the message is accepted (a redelivered one is refused and not answered again), answered,
and both sides are stored; what others must hear of it (experts of a new ticket or message)
goes out once that transaction has committed. An inbound recovered after a crash is given the
stored replies that never went out (`recover`).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from bot import notifications
from bot.conversation import EDITED, RELAYED_KINDS, Attachment, Button, Inbound, OutMessage
from bot.intents import recognise
from bot.knowledge import Entry
from bot.languages import Language, language_from_code, language_of
from bot.matching import Decision
from bot.payloads import (
    AskExpert,
    ChooseLanguage,
    Claim,
    Consent,
    Forget,
    Helpful,
    MoreOn,
    NoneOfThese,
    NotHelpful,
    PassOn,
    Payload,
    Rate,
    ShowEntry,
    Withdraw,
    unpack,
)
from bot.services import Services
from bot.store import Transaction, privacy
from bot.store.models import Message, Ticket, User
from bot.store.tickets import Relay
from bot.text import has_words
from handlers import Finish, Request, expert

# A number this long or shorter, alone, picks from the last choices shown.
_CHOICE_DIGITS = 2
# What talents write after /language besides a code (en, zh, zh-CN, en-US …).
_LANGUAGE_NAMES: dict[str, Language] = {
    "chinese": "zh", "cn": "zh", "中文": "zh", "汉语": "zh", "简体中文": "zh",
    "英文": "en", "英语": "en",
}  # fmt: skip


async def handle(request: Request) -> Finish:
    """Answer what the talent did, in the transaction that looked them up; what others must
    hear of it goes out once that transaction has committed."""
    tx, talent, inbound = request.tx, request.user, request.inbound
    # Set only when changed: an object left unchanged costs the session nothing to check
    # before each statement.
    if inbound.display_name and talent.display_name != inbound.display_name:
        talent.display_name = inbound.display_name
    language = _reply_language(talent, request.written)
    message = await tx.accept(inbound, talent, request.text, language)
    turn = _Turn(request.services, tx, talent, message, language, inbound)
    replies = await turn.respond(request.text)
    if not turn.forgotten:
        await tx.record_replies(message, replies, **turn.decision_fields())

    async def finish() -> list[OutMessage]:
        # What others must be told goes out only once this talent's side is safely stored.
        for action in turn.afterwards:
            await action()
        return replies

    return finish


async def recover(services: Services, talent: User, inbound: Inbound) -> list[OutMessage]:
    """What an inbound whose process stopped (or whose replies the channel could not take) is
    still owed: its message relayed to the expert, the talent's waiting ticket shown to the
    experts who have not seen it, and the replies stored for it, if they never went out."""
    relay = await services.tickets.undelivered_from(inbound.message_key)
    if relay is not None:
        await notifications.deliver(services, relay)
    async with services.store.transaction() as tx:
        stored = await tx.unanswered(inbound)
        if stored is None:
            return []
        waiting = await tx.ticket_of(talent)
        replies = await tx.replies_to(stored)
    if waiting is not None and waiting.status == "open":
        await notifications.announce(services, waiting.id, unshown_only=True)
    return replies


def _reply_language(talent: User, written: Language | None) -> Language:
    """The language the talent chose; otherwise the one they are writing in."""
    if not talent.language_chosen and written is not None and talent.language != written:
        talent.language = written
    return language_of(talent.language)


@dataclass
class _Turn:
    """One inbound of a talent and everything needed to answer it."""

    services: Services
    tx: Transaction
    talent: User
    message: Message
    language: Language
    inbound: Inbound

    def __post_init__(self) -> None:
        self.afterwards: list[Callable[[], Awaitable[object]]] = []
        # One knowledge base for the whole turn, even if a reload swaps it meanwhile.
        self.matcher = self.services.matcher
        self.forgotten = False

    def decision_fields(self) -> dict[str, object]:
        """The matcher's decision to store beside the reply, if this turn answered a question."""
        if self.message.action != "answer":
            return {}
        return {"action": "answer", "entry_id": self.message.entry_id}

    async def respond(self, text: str) -> list[OutMessage]:
        """The replies to what the talent did (`text` is what they wrote, cleaned)."""
        attachment = self.inbound.attachment
        if self.inbound.button is not None:
            return await self._press(self.inbound.button)
        if not text and attachment is None:
            return [self._say("empty")]
        if text.startswith("/"):
            return await self._command(text)
        ticket = await self.tx.ticket_of(self.talent)
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
        return await self._read(text)

    # Words: what they are, and a question's answer.

    async def _read(self, text: str) -> list[OutMessage]:
        """Words the talent wrote, while no ticket is open."""
        limit = self.services.settings.max_question_chars
        if len(text) > limit:
            self._record(Decision("handoff"))
            expert_button = self._expert_button(self.message)
            return [self._say("too_long", buttons=[expert_button], length=len(text), limit=limit)]
        if not has_words(text):
            return [self._say("no_words")]
        intent = recognise(text)
        # Right after a rating, words are a comment on it; a question is answered as ever
        # (and what it came after need not be looked up).
        is_question = text.rstrip().endswith(("?", "？"))
        if intent != "expert" and not is_question:
            tapped = await self.tx.previous_tap(self.talent, before=self.message.id)
            rating = unpack(tapped) if tapped else None
            if isinstance(rating, Rate):
                return await self._comment_on_rating(rating, text)
        if intent == "hello":
            return [self._say("hello")]
        if intent == "thanks":
            return [self._say("thanks")]
        if intent == "expert":
            return await self._request_expert()
        if intent == "yes":
            return await self._agree()
        return self._answer_question(text)

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
                Button(self._option_label(entry, decision), ShowEntry(entry.id).pack())
                for entry in options
            ]
            none_of_these = NoneOfThese(self.message.id).pack()
            choices.append(Button(self._label("none_of_these"), none_of_these))
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
        """An entry's answer and its source, with buttons for a verdict, the rest of it,
        related questions and an expert."""
        text = entry.text(self.language)
        source = entry.sources[0]
        buttons = [
            Button(self._label("helpful"), Helpful(self.message.id).pack()),
            Button(self._label("not_helpful"), NotHelpful(self.message.id).pack()),
        ]
        if text.more:
            buttons.append(Button(self._label("more"), MoreOn(entry.id).pack()))
        knowledge = self.matcher.knowledge
        for related_id in entry.related[:3]:
            related = knowledge.get(related_id)
            if related is not None:
                question = related.text(self.language).question
                label = self._label("related", question=question)
                buttons.append(Button(label, ShowEntry(related.id).pack()))
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
        """A number picks from the choices the bot showed last, as tapping would."""
        choices = await self.tx.last_buttons(self.talent, before=self.message.id)
        if not choices:
            return [self._say("no_choices")]
        if not 1 <= number <= len(choices):
            # The list again, so that the next number is read against it.
            buttons = [Button(label, payload) for label, payload in choices]
            return [self._say("choose_number", buttons=buttons, count=len(choices))]
        _, payload = choices[number - 1]
        self.message.button = payload
        return await self._press(payload)

    async def _agree(self) -> list[OutMessage]:
        """A yes to "Shall I pass it on?" is a tap on its button; any other yes or ok (to an
        out-of-scope notice, say) asks for the question in words."""
        choices = await self.tx.last_buttons(self.talent, before=self.message.id)
        if len(choices) == 1 and isinstance(unpack(choices[0][1]), PassOn):
            self.message.button = choices[0][1]
            return await self._press(choices[0][1])
        return [self._say("what_to_ask")]

    async def _comment_on_rating(self, rating: Rate, text: str) -> list[OutMessage]:
        ticket = await self.tx.session.get(Ticket, rating.ticket)
        if ticket is None or ticket.talent_id != self.talent.id or ticket.rating is None:
            return self._answer_question(text)
        ticket.rating_comment = text
        return [self._say("rating_comment")]

    def _offer(self, question: Message | None, text: str) -> OutMessage:
        """ "Shall I pass it on?", with its one button: a "yes" typed next taps it."""
        offered = self._expert_button(question, kind=PassOn)
        return self._say("handoff_offer", buttons=[offered], question=text)

    def _expert_button(
        self, question: Message | None = None, kind: type[AskExpert | PassOn] = AskExpert
    ) -> Button:
        """ "Talk to an expert", naming the question it is shown under if the talent typed it
        (an answer reached by a button hands over their latest typed question instead)."""
        typed = question is not None and question.button is None and question.text
        asked = question.id if typed and question is not None else None
        return Button(self._label("expert"), kind(asked).pack())

    # Buttons: each kind of payload has its method (`_BUTTONS`).

    async def _press(self, packed: str) -> list[OutMessage]:
        payload = unpack(packed)
        action = _BUTTONS.get(type(payload)) if payload is not None else None
        if action is None:
            return [self._say("button_expired")]
        return await action(self, payload)

    async def _show_entry(self, payload: ShowEntry) -> list[OutMessage]:
        entry = self.matcher.knowledge.get(payload.entry)
        if entry is None:
            return [self._say("entry_gone")]
        self._record(Decision("answer"), entry_id=entry.id)
        return [self._answer(entry)]

    async def _more_on(self, payload: MoreOn) -> list[OutMessage]:
        entry = self.matcher.knowledge.get(payload.entry)
        if entry is None:
            return [self._say("entry_gone")]
        text = entry.text(self.language)
        return [self._say("more", question=text.question, more=text.more or text.answer)]

    async def _verdict(self, payload: Helpful | NotHelpful) -> list[OutMessage]:
        answered = await self.tx.answer_message(self.talent, payload.answer)
        if answered is None:
            return [self._say("button_expired")]
        helpful = isinstance(payload, Helpful)
        await self.tx.record_feedback(self.talent, answered, helpful=helpful)
        if helpful:
            return [self._say("feedback_thanks")]
        return [self._say("feedback_sorry", buttons=[self._expert_button(answered)])]

    async def _hand_over(self, payload: AskExpert | PassOn) -> list[OutMessage]:
        # The button says which question it was shown under: an old one still hands that
        # question over, not the latest.
        return await self._request_expert(await self._asked(payload.question))

    async def _none_of_these(self, payload: NoneOfThese) -> list[OutMessage]:
        asked = await self._asked(payload.question)
        return [self._offer(asked, asked.text if asked is not None else "")]

    async def _language_button(self, payload: ChooseLanguage) -> list[OutMessage]:
        return self._choose_language(payload.language)

    async def _forget(self, payload: Forget) -> list[OutMessage]:
        if not payload.confirmed:
            return [self._say("forget_cancelled")]
        ticket = await self.tx.ticket_of(self.talent)
        await privacy.forget(self.tx, self.talent)
        if ticket is not None:
            ticket_id, expert_id = ticket.id, await self.tx.holder(ticket.id)
            self.afterwards.append(
                lambda: notifications.closed_by_talent(
                    self.services, ticket_id, expert_id, "talent_forgot"
                )
            )
        self.forgotten = True
        return [self._say("forgotten")]

    async def _withdraw_button(self, payload: Withdraw) -> list[OutMessage]:
        return await self._withdraw(payload.ticket)

    async def _consent(self, payload: Consent) -> list[OutMessage]:
        """The talent lets their expert see their first name, or the contact details and
        application numbers they wrote (masked until then)."""
        if payload.to_share == "name":
            self.talent.share_name = True
        else:
            ticket = await self.tx.ticket_of(self.talent)
            if ticket is None:
                return [self._say("button_expired")]
            ticket.contacts_shared = True
        await self.tx.audit(self.talent, "consent", payload.to_share)
        return [self._say(f"consent_{payload.to_share}")]

    async def _claim(self, _payload: Claim) -> list[OutMessage]:
        # A Claim button in the experts' group, tapped by a member who is not an expert.
        return [self._say("not_expert")]

    async def _rate(self, payload: Rate) -> list[OutMessage]:
        ticket = await self.tx.session.get(Ticket, payload.ticket)
        if ticket is None or ticket.talent_id != self.talent.id or ticket.status != "closed":
            return [self._say("button_expired")]
        ticket.rating = payload.stars
        return [self._say("rated")]

    # Commands: each has its method (`_COMMANDS`).

    async def _command(self, text: str) -> list[OutMessage]:
        command, _, argument = text[1:].partition(" ")
        command = command.split("@", 1)[0].lower()
        action = _COMMANDS.get(command)
        if action is not None:
            return await action(self, argument.strip().lower())
        if command in expert.Desk.COMMANDS:
            await self.tx.audit(self.talent, "refused", f"/{command}", reason="not an expert")
            return [self._say("not_expert")]
        return [self._say("unknown_command")]

    async def _start(self, _argument: str) -> list[OutMessage]:
        name = self.inbound.display_name
        return [self._say("greeting", buttons=self._language_buttons(), name=name)]

    async def _help(self, _argument: str) -> list[OutMessage]:
        return [self._say("help")]

    async def _language(self, argument: str) -> list[OutMessage]:
        chosen = _LANGUAGE_NAMES.get(argument) or language_from_code(argument)
        if chosen is not None:
            return self._choose_language(chosen)
        return [self._say("language_usage", buttons=self._language_buttons())]

    async def _expert(self, _argument: str) -> list[OutMessage]:
        return await self._request_expert()

    async def _cancel(self, _argument: str) -> list[OutMessage]:
        return await self._withdraw(None)

    async def _mydata(self, _argument: str) -> list[OutMessage]:
        stored = await privacy.holdings(self.tx, self.talent)
        return [self._say("mydata", stored=stored)]

    async def _forget_command(self, _argument: str) -> list[OutMessage]:
        buttons = [
            Button(self._label("forget_yes"), Forget(confirmed=True).pack()),
            Button(self._label("forget_no"), Forget(confirmed=False).pack()),
        ]
        return [self._say("forget_confirm", buttons=buttons)]

    async def _privacy(self, _argument: str) -> list[OutMessage]:
        entry = self.matcher.knowledge.get("service.privacy")
        if entry is None:
            return [self._say("unknown_command")]
        self._record(Decision("answer"), entry_id=entry.id)
        return [self._answer(entry)]

    def _language_buttons(self) -> list[Button]:
        return [
            Button(self._label("english"), ChooseLanguage("en").pack()),
            Button(self._label("chinese"), ChooseLanguage("zh").pack()),
        ]

    def _choose_language(self, language: Language) -> list[OutMessage]:
        self.talent.language = language
        self.talent.language_chosen = True
        self.language = language
        self.message.language = language
        return [self._say("language_set")]

    # An expert: asking for one, taking the request back, and writing to them.

    async def _asked(self, question_id: int | None) -> Message | None:
        """The question a button names (one this talent typed), else their latest one."""
        named = await self.tx.asked(self.talent, question_id) if question_id is not None else None
        return named or await self.tx.last_question(self.talent, before=self.message.id)

    async def _request_expert(self, asked: Message | None = None) -> list[OutMessage]:
        asked = asked or await self.tx.last_question(self.talent, before=self.message.id)
        question = asked.text if asked is not None else ""
        topic = None
        if asked is not None and asked.options:
            best = self.matcher.knowledge.get(asked.options[0])
            topic = best.topic if best is not None else None
        ticket, place, created = await self.tx.request_expert(
            self.talent, question, self.language, topic
        )
        if created:
            await self.tx.audit(self.talent, "ticket-opened", f"T-{ticket.id}", topic=topic)
            self.afterwards.append(lambda: notifications.announce(self.services, ticket.id))
        elif ticket.status == "claimed":
            return [self._say("expert_already", ticket=ticket.id)]
        buttons = [
            Button(self._label("share_name"), Consent("name").pack()),
            Button(self._label("share_contacts"), Consent("contacts").pack()),
            Button(self._label("withdraw"), Withdraw(ticket.id).pack()),
        ]
        return [self._say("expert_requested", buttons=buttons, ticket=ticket.id, place=place)]

    async def _withdraw(self, named: int | None) -> list[OutMessage]:
        """The talent takes back their request for an expert (the one a button names, else
        the open one): the ticket closes, and the bot answers their questions again."""
        ticket = await self.tx.ticket_of(self.talent)
        ticket_id = named if named is not None else ticket.id if ticket is not None else None
        if ticket_id is None:
            return [self._say("nothing_to_withdraw")]
        if not await self.tx.withdraw(ticket_id, self.talent):
            return [self._say("withdrawn_already", ticket=ticket_id)]
        expert_id = await self.tx.holder(ticket_id)
        self.afterwards.append(
            lambda: notifications.closed_by_talent(
                self.services, ticket_id, expert_id, "talent_withdrew"
            )
        )
        return [self._say("withdrawn", ticket=ticket_id)]

    async def _add_to_ticket(
        self, ticket: Ticket, text: str, attachment: Attachment | None
    ) -> list[OutMessage]:
        """While a ticket is open, what the talent writes (or a photo or document they send)
        belongs to it: relayed to its expert once stored, or kept for whoever claims it."""
        if attachment is not None and attachment.kind not in RELAYED_KINDS:
            return [self._say("not_relayed", kind=attachment.kind)]
        key = self.message.channel_key or str(self.message.id)
        if self.inbound.edited:
            # The expert saw the first version: the new one comes marked as a change.
            text = f"{EDITED} {text}"
        stored = await self.tx.add_to_ticket(ticket, self.talent, text, key, attachment)
        if ticket.status != "claimed":
            return [self._say("added_to_ticket", ticket=ticket.id)]
        relay = Relay.of(stored)
        self.afterwards.append(lambda: notifications.deliver(self.services, relay))
        return []

    def _label(self, name: str, **context: str) -> str:
        return Markup(self.services.templates.label(self.language, name, **context)).unescape()

    def _say(
        self, template: str, buttons: list[Button] | None = None, **context: object
    ) -> OutMessage:
        text = self.services.templates.render(self.language, template, **context)
        return OutMessage(text=text, language=self.language, buttons=tuple(buttons or ()))


_TalentAction = Callable[[_Turn, Any], Awaitable[list[OutMessage]]]
# What each kind of button does for a talent; any other is expired.
_BUTTONS: dict[type[Payload], _TalentAction] = {
    ShowEntry: _Turn._show_entry,
    MoreOn: _Turn._more_on,
    Helpful: _Turn._verdict,
    NotHelpful: _Turn._verdict,
    AskExpert: _Turn._hand_over,
    PassOn: _Turn._hand_over,
    NoneOfThese: _Turn._none_of_these,
    ChooseLanguage: _Turn._language_button,
    Forget: _Turn._forget,
    Withdraw: _Turn._withdraw_button,
    Consent: _Turn._consent,
    Claim: _Turn._claim,
    Rate: _Turn._rate,
}
# A talent's commands, each given what follows it (stripped, in lower case).
_COMMANDS: dict[str, _TalentAction] = {
    "start": _Turn._start,
    "help": _Turn._help,
    "language": _Turn._language,
    "expert": _Turn._expert,
    "cancel": _Turn._cancel,
    "mydata": _Turn._mydata,
    "forget": _Turn._forget_command,
    "privacy": _Turn._privacy,
}
