"""Schema migrations with Alembic, run on the bot's own async engine.

Alembic is slow to import, and most starts find the schema already current: a database whose
Alembic version table holds the newest migration file's revision is known to be current
without it. A migration's file name starts with its revision id (`0006_relay_attachments.py`),
and ids sort in the order migrations are written; anything else is Alembic's to decide.
"""

from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.paths import package_path

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = package_path("store", "migrations")
# Alembic's own name for it, left at its default.
_VERSION_TABLE = "alembic_version"


def newest_file_revision() -> str:
    """The revision id the newest migration file's name starts with."""
    return max(path.name for path in (_MIGRATIONS / "versions").glob("*.py")).partition("_")[0]


async def _at_newest_file_revision(engine: AsyncEngine) -> bool:
    def revisions(connection: Connection) -> list[str]:
        if not inspect(connection).has_table(_VERSION_TABLE):
            return []
        return list(connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars())

    async with engine.connect() as connection:
        return await connection.run_sync(revisions) == [newest_file_revision()]


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision."""
    if await _at_newest_file_revision(engine):
        return
    from alembic import command

    def run(connection: Connection) -> None:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at the newest revision."""
    if await _at_newest_file_revision(engine):
        return True
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(current) == head


def _config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config
