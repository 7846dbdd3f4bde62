"""What each kind of user can do, written once for every channel: talents (`talent`), volunteer
experts (`expert`) and staff (`staff`, who can also do what experts do).

The router (`bot/router.py`) looks the sender up and hands what they did to the handler for
their role as a `Request`, inside the transaction that looked them up. The handler stores the
inbound there (`Transaction.accept` raises `DuplicateInbound` for one seen before) and returns
a `Finish`: what is left to do once that transaction has committed, which gives the replies.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.conversation import Inbound, OutMessage
from bot.languages import Language
from bot.services import Services
from bot.store import Transaction
from bot.store.models import User

Finish = Callable[[], Awaitable[list[OutMessage]]]


@dataclass(frozen=True)
class Request:
    """An inbound and its sender, inside the transaction that looked the sender up."""

    services: Services
    tx: Transaction
    user: User
    inbound: Inbound
    text: str
    """The inbound's text, cleaned of what no one types on purpose."""
    written: Language | None
    """The language the text is written in, if it says (a command's letters do not)."""
