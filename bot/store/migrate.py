"""Schema migrations with Alembic, run on the bot's own async engine."""

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.paths import package_path


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(package_path("store", "migrations")))
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision."""

    def run(connection: Connection) -> None:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at the newest revision."""
    head = ScriptDirectory.from_config(_config()).get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(current) == head
