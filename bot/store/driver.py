"""The statements nearly every update runs, sent on PostgreSQL straight through asyncpg.

Running a statement through SQLAlchemy costs more CPU than the database takes to run it
(`bench/turn.py`). A `DriverStatement` is compiled by SQLAlchemy once, and SQLAlchemy's own
column types still turn values into what the driver takes and rows into what it gives back;
it is then sent on the asyncpg connection under a SQLAlchemy connection, in that connection's
transaction. Errors come out as SQLAlchemy raises them (`IntegrityError`; a lost connection
invalidated, as a `DBAPIError` that says so), so callers and `bot.store.outage` treat them
alike. Elsewhere (SQLite) a statement runs on the SQLAlchemy connection as any other.
"""

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from asyncpg import Connection, IntegrityConstraintViolationError
from sqlalchemy import ColumnElement, Executable, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

Values = Mapping[str, Any]
_CONNECTIONS = "driver_connection"


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # The values the statement itself gives (its literals, a LIMIT …), by parameter name.
    fixed: dict[str, Any]
    # Each positional parameter's name, and what turns its value into the driver's form.
    processors: list[tuple[str, Callable[[Any], Any] | None]]

    def arguments(self, values: Values) -> list[Any]:
        """`values`, with the statement's fixed ones, in the driver's order and form."""
        fixed = self.fixed
        arguments = []
        for name, process in self.processors:
            value = values[name] if name in values else fixed[name]
            arguments.append(value if process is None else process(value))
        return arguments


class DriverStatement:
    """A statement to send through asyncpg where it can be, with values named as its bound
    parameters (for an INSERT, the columns named in `columns`, which every row gives)."""

    def __init__(self, statement: Executable, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._columns = list(columns) if columns is not None else None
        self._compiled: _Compiled | None = None
        # A SELECT's columns: each one's key, and what turns the driver's value into the
        # column's value (as SQLAlchemy would, which asks what type the server sends).
        self._results: list[tuple[str, Callable[[Any], Any] | None]] | None = None

    async def returning(self, connection: AsyncConnection, values: Values) -> dict[str, Any]:
        """Run it (a write that returns one row) in the connection's transaction; the row it
        returns, by column key."""
        returned = await self.row(connection, values)
        assert returned is not None
        return returned

    async def run(self, connection: AsyncConnection, values: Values | Sequence[Values]) -> None:
        """Run it in the connection's transaction for one row of values, or for each of
        several."""
        driver = await _driver(connection)
        if driver is None:
            await connection.execute(self.statement, values)
            return
        compiled = self._compiled_for(connection.dialect)
        async with _sent(connection, driver, compiled.sql):
            if isinstance(values, Mapping):
                await driver.execute(compiled.sql, *compiled.arguments(values))
            else:
                await driver.executemany(compiled.sql, [compiled.arguments(row) for row in values])

    async def row(self, connection: AsyncConnection, values: Values) -> dict[str, Any] | None:
        """Run it (a SELECT, or a write with RETURNING) in the connection's transaction; its
        first row, by column key."""
        driver = await _driver(connection)
        if driver is None:
            found = (await connection.execute(self.statement, values)).first()
            return found._asdict() if found is not None else None
        compiled = self._compiled_for(connection.dialect)
        async with _sent(connection, driver, compiled.sql):
            if self._results is None:
                self._results = await self._results_for(driver, connection.dialect)
            record = await driver.fetchrow(compiled.sql, *compiled.arguments(values))
        if record is None:
            return None
        return {
            key: value if process is None else process(value)
            for (key, process), value in zip(self._results, record, strict=True)
        }

    async def rows_written(self, connection: AsyncConnection, values: Values) -> int:
        """Run it on a connection that commits as it runs (`Store.statement`); how many rows
        it wrote."""
        driver = await _driver(connection)
        if driver is None:
            return (await connection.execute(self.statement, values)).rowcount
        compiled = self._compiled_for(connection.dialect)
        async with _sent(connection, driver, compiled.sql):
            status = await driver.execute(compiled.sql, *compiled.arguments(values))
        # The command's tag: "INSERT 0 1", "UPDATE 3" …
        return int(status.rsplit(" ", 1)[-1])

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        # Compiled once, for asyncpg's dialect: only its statements are sent this way.
        if self._compiled is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self._columns)
            assert compiled.positiontup is not None
            processors = [
                (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in compiled.positiontup
            ]
            fixed = {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            }
            self._compiled = _Compiled(compiled.string, fixed, processors)
        return self._compiled

    async def _results_for(
        self, driver: Connection, dialect: Dialect
    ) -> list[tuple[str, Callable[[Any], Any] | None]]:
        assert self._compiled is not None
        sent = await driver.prepare(self._compiled.sql)
        columns = self.statement.exported_columns  # type: ignore[attr-defined]
        return [
            (
                column.key,
                column.type.dialect_impl(dialect).result_processor(dialect, sent_as.type.oid),
            )
            for column, sent_as in zip(columns, sent.get_attributes(), strict=True)
        ]


async def _driver(connection: AsyncConnection) -> Connection | None:
    """The asyncpg connection under `connection` (None for other drivers), in the
    transaction SQLAlchemy has begun on it, if any. SQLAlchemy's asyncpg adapter sends BEGIN
    before its first statement, not when the transaction begins: it is begun here as it would
    be there, so that SQLAlchemy still commits or rolls it back. Found once a checkout: each
    look-up is a trip through SQLAlchemy's greenlets."""
    if connection.dialect.driver != "asyncpg":
        return None
    found = connection.info.get(_CONNECTIONS)
    if found is None:
        raw = await connection.get_raw_connection()
        found = connection.info[_CONNECTIONS] = (raw.dbapi_connection, raw.driver_connection)
    adapter, driver = found
    if connection.in_transaction() and adapter._transaction is None:
        async with _sent(connection, driver, "BEGIN"):
            await adapter._start_transaction()
    return driver


@asynccontextmanager
async def _sent(connection: AsyncConnection, driver: Connection, sql: str) -> AsyncIterator[None]:
    """Errors from `driver` as SQLAlchemy raises them: a refused constraint as
    `IntegrityError`; a connection that closed (as SQLAlchemy judges it for asyncpg)
    invalidated, and as a `DBAPIError` that says so."""
    try:
        yield
    except IntegrityConstraintViolationError as error:
        raise IntegrityError(sql, None, error) from error
    except Exception as error:
        if not (driver.is_closed() or isinstance(error, OSError)):
            raise
        await connection.invalidate()
        raise DBAPIError(sql, None, error, connection_invalidated=True) from error


def one_of(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """`column` is one of the values bound as `name`: on PostgreSQL one array, so that one
    prepared statement serves any number of them (an IN list is a statement of its own for
    each); elsewhere an IN list."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
