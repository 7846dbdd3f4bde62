"""What handlers work with: the store, the matcher over the current knowledge base, templates."""

from dataclasses import dataclass, field

from bot.config import Settings
from bot.conversation import Outbox
from bot.knowledge import load_knowledge
from bot.matching import Matcher, Thresholds
from bot.paths import bundled
from bot.store import Store
from bot.store.tickets import Tickets
from bot.templates import Templates


@dataclass
class Services:
    """The bot's working parts, built once at start-up and shared by every handler."""

    settings: Settings
    store: Store
    matcher: Matcher
    templates: Templates
    outbox: Outbox | None = None
    """How to reach users other than the one who wrote; set by the channel that runs."""
    tickets: Tickets = field(init=False)

    def __post_init__(self) -> None:
        self.tickets = Tickets(self.store)


def build_services(settings: Settings) -> Services:
    """Load the knowledge base and templates and open the store, as `settings` say."""
    knowledge = load_knowledge(settings.knowledge_dir)
    return Services(
        settings=settings,
        store=Store.open(settings.database_url, pool_size=settings.database_pool_size),
        matcher=Matcher(knowledge, thresholds_from(settings)),
        templates=Templates(bundled("templates")),
    )


def thresholds_from(settings: Settings) -> Thresholds:
    """The matcher's thresholds as the settings give them."""
    return Thresholds(
        answer_en=settings.answer_threshold_en,
        answer_zh=settings.answer_threshold_zh,
        clarify=settings.clarify_threshold,
    )
