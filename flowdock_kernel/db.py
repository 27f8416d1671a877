"""The database layer: one database per service, SQLAlchemy 2 async engines, Alembic migrations per service.

Embedded default: `<data_dir>/<service>.db` (SQLite, WAL). PostgreSQL: `db_url` names a base database; the
service uses `<base>_<service>` and creates it when missing, so one URL configures the whole mesh.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiosqlite
import aiosqlite.context as aiosqlite_context
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from flowdock_kernel.config import CommonConfig
from flowdock_kernel.errors import AlreadyExists, DatabaseUnavailable, DiskFull, DomainError

if TYPE_CHECKING:  # audit builds on this module
    from flowdock_kernel.audit import EventBuffer, Outbox


def service_url(config: CommonConfig, service: str, *, driver_async: bool = True) -> URL:
    if not config.db_url or config.db_url.startswith("sqlite"):
        base = make_url(config.db_url) if config.db_url else None
        path = Path(base.database) if base is not None and base.database else config.data_dir / f"{service}.db"
        return URL.create("sqlite+aiosqlite" if driver_async else "sqlite", database=str(path))
    url = make_url(config.db_url.replace("postgres://", "postgresql://", 1))
    return url.set(drivername="postgresql+psycopg", database=f"{url.database or 'flowdock'}_{service}")


def where(config: CommonConfig, service: str) -> str:
    """Where a service's database lives, for messages: a SQLite file's folder, or the PostgreSQL server."""
    return _database_place(service_url(config, service, driver_async=False))


def _database_place(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or ".").resolve().parent)
    return f"the PostgreSQL server's disk ({url.host or 'localhost'}:{url.port or 5432}, database {url.database})"


def ensure_database(url: URL) -> None:
    """Create the service's database (PostgreSQL) or its folder (SQLite) if missing."""
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database})
            if exists.scalar() is None:
                conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    finally:
        admin.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_manual_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # the driver's own deferred BEGIN is replaced by ours (below)


READ_ONLY = "flowdock_read_only"


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that reads, then writes, fails at once with "database is locked" when another
    # connection wrote in between (busy_timeout does not cover that upgrade). Taking the write lock up front makes
    # concurrent writers queue (up to busy_timeout) instead of failing. A read-only transaction (`read_only`) takes
    # no lock: in WAL mode it reads its snapshot while a writer goes on, so listings never queue behind uploads.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
_PG_DISK_FULL = "53100"  # disk_full


def disk_full_error(exc: BaseException, database: str = "") -> DiskFull | None:
    """The DiskFull an exception amounts to, None if it is something else: a write refused for lack of space
    (ENOSPC, EDQUOT) directly, or through SQLite (SQLITE_FULL) or PostgreSQL (53100 disk_full), as SQLAlchemy
    wraps them. `database`: where the database lives, named in the message when the error does not say."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, DiskFull):
            return cause
        if isinstance(cause, OSError) and cause.errno in _DISK_FULL_ERRNOS:
            return DiskFull(cause.filename or database or "the data folder", cause.strerror or str(cause))
        if isinstance(cause, sqlite3.Error) and (
            getattr(cause, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(cause)
        ):
            return DiskFull(database or "the SQLite database's folder", "database or disk is full")
        if getattr(cause, "sqlstate", None) == _PG_DISK_FULL:
            return DiskFull(database or "the PostgreSQL server's disk", "could not extend a database file")
        cause = getattr(cause, "orig", None) or cause.__cause__ or cause.__context__
    return None


#: SQLSTATEs of a server that is going away or not yet back: class 08 (connection exception), admin_shutdown,
#: crash_shutdown, cannot_connect_now ("the database system is starting up / shutting down").
_PG_GONE_STATES = frozenset({"57P01", "57P02", "57P03"})


def database_unavailable_error(exc: BaseException) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable an exception amounts to, None if it is something else: the database server could not
    be reached or dropped the connection (PostgreSQL restarting, crashed, or not yet accepting connections). Such a
    call failed for a reason that passes, so it answers UNAVAILABLE (retryable) rather than INTERNAL; the pool
    (pre-ping on checkout) replaces the dead connections by itself once the server answers again."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, DatabaseUnavailable):
            return cause
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return DatabaseUnavailable(_UNREACHABLE)
        if type(cause).__module__.startswith("psycopg") and _psycopg_connection_lost(cause):
            return DatabaseUnavailable(_UNREACHABLE)
        cause = getattr(cause, "orig", None) or cause.__cause__ or cause.__context__
    return None


_UNREACHABLE = "the database cannot be reached right now (restarting?); retry shortly"


def _psycopg_connection_lost(exc: BaseException) -> bool:
    import psycopg  # only PostgreSQL deployments get here: the module raised it

    if isinstance(exc, psycopg.InterfaceError):
        return "closed" in str(exc)  # "the connection is closed": it died under an earlier statement
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    # No SQLSTATE: the server never answered (refused, reset, closed mid-statement).
    return state is None or state.startswith("08") or state in _PG_GONE_STATES


class _WriterQueue:
    """One writer at a time per SQLite engine in this process, queued in order (see SqlUnitOfWork.__aenter__)."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holder: asyncio.Task[Any] | None = None

    async def enter(self) -> bool:
        """True once this task holds the queue; False if it already does (a writer opened inside another's
        block: it goes to SQLite's own wait, as before) or waited longer than busy_timeout."""
        task = asyncio.current_task()
        if task is not None and task is self.holder:
            return False
        try:
            await asyncio.wait_for(self.lock.acquire(), _WRITER_WAIT)
        except TimeoutError:
            return False
        self.holder = task
        return True

    def leave(self) -> None:
        self.holder = None
        self.lock.release()


_WRITERS: weakref.WeakKeyDictionary[sa.Engine, _WriterQueue] = weakref.WeakKeyDictionary()
_WRITER_WAIT = 10.0  # seconds; then the transaction goes on to SQLite's own busy handling (busy_timeout)


def _writer_queue(engine: AsyncEngine) -> _WriterQueue | None:
    """The in-process queue of an immediate-mode SQLite engine's write transactions (None: not one)."""
    sync = engine.sync_engine
    if sync.dialect.name != "sqlite" or not sync.__dict__.get("_flowdock_immediate"):
        return None
    queue = _WRITERS.get(sync)
    if queue is None:
        queue = _WRITERS[sync] = _WriterQueue()
    return queue


_LOCK_NAMESPACE = 0x0F10D0C  # first key of PostgreSQL's two-key advisory locks: FlowDock's own


async def lock_key(conn: AsyncConnection, key: str) -> None:
    """Serialise transactions on `key` until this one ends (check-then-act made safe: count, then write).

    PostgreSQL: a transaction-scoped advisory lock on the key's hash (a collision only serialises two keys).
    SQLite: no-op here; the caller's next statement must write (the write lock is the whole database's and is
    held to the end of the transaction)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))"), {"ns": _LOCK_NAMESPACE, "key": key}
        )


async def read_only(conn: AsyncConnection) -> AsyncConnection:
    """Mark a connection's transactions read-only (before its first statement): on SQLite they begin deferred."""
    return await conn.execution_options(**{READ_ONLY: True})


class _OneTripCursor(aiosqlite.Cursor):
    """SQLAlchemy's aiosqlite adapter makes up to four trips to the connection's thread per statement (cursor,
    execute, fetchall, close), each a queue hand-off plus a loop wake-up (~0.15-0.3 ms on our VMs, the bulk of a
    small transaction). This cursor runs execute and fetchall in one trip and makes the others free. All rows are
    fetched at once, as the adapter does anyway for every non-server-side cursor."""

    def __init__(self, conn: aiosqlite.Connection, cursor: sqlite3.Cursor) -> None:
        super().__init__(conn, cursor)
        self._rows: list[Any] = []

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Self:
        cur = self._cursor

        def run() -> list[Any]:
            cur.execute(sql, () if parameters is None else parameters)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

        self._rows = await self._execute(run)  # type: ignore[no-untyped-call]
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = size or self.arraysize
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def close(self) -> None:
        self._rows = []  # the sqlite3 cursor holds nothing once fetched; it is released with this object


class _OneTripConnection(aiosqlite.Connection):
    @aiosqlite_context.contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        # A sqlite3 cursor is a plain object until it executes: made here, without a trip (check_same_thread off,
        # as SQLAlchemy connects; statements still run only on the connection's thread).
        return _OneTripCursor(self, self._conn.cursor())


def _sqlite_creator(path: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    async def create() -> aiosqlite.Connection:
        conn = _OneTripConnection(functools.partial(sqlite3.connect, path, check_same_thread=False), 64)
        conn._thread.daemon = True  # as SQLAlchemy does for aiosqlite: a forgotten engine must not block exit
        return await conn

    return create


def make_engine(url: URL, *, sqlite_immediate: bool = False) -> AsyncEngine:
    """`sqlite_immediate`: every transaction takes SQLite's write lock at BEGIN, so concurrent read-then-write
    transactions queue instead of failing. Only for a service that never holds two transactions at once in one
    call (each would wait for the other)."""
    if url.get_backend_name() == "sqlite":
        # No pre-ping (a file does not drop connections) and no reset on return (every transaction is ended by
        # SQLAlchemy before its connection goes back): each would cost a thread hop per transaction (~0.3 ms).
        engine = create_async_engine(
            url, pool_reset_on_return=None, async_creator=_sqlite_creator(url.database or ":memory:")
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if sqlite_immediate:
            event.listen(engine.sync_engine, "connect", _sqlite_manual_transactions)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
            engine.sync_engine.__dict__["_flowdock_immediate"] = True
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


Connections = Callable[[], AsyncConnection]


def connections(engine: AsyncEngine) -> Connections:
    """What a unit of work opens: a Core connection, not an ORM Session. Repositories run Core statements only;
    a Session's unit-of-work machinery around each one cost ~0.2 ms of CPU per statement (measured)."""
    return engine.connect


def migrate(url: URL, migrations_dir: Path) -> None:
    """Apply the service's Alembic migrations (a sync engine: Alembic runs outside the service's event loop)."""
    ensure_database(url)
    sync_url = url.set(drivername="sqlite" if url.get_backend_name() == "sqlite" else "postgresql+psycopg")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["url"] = sync_url
    command.upgrade(cfg, "head")


def run_migrations_online(target_metadata: sa.MetaData) -> None:
    """Body of every service's migrations/env.py."""
    from alembic import context

    url = context.config.attributes["url"]
    engine = sa.create_engine(url)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    with engine.connect() as conn:
        context.configure(
            connection=conn, target_metadata=target_metadata, render_as_batch=url.get_backend_name() == "sqlite"
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


class SqlUnitOfWork:
    """A transaction over one connection, rolled back unless `commit` is called; a unique-constraint clash at commit
    is AlreadyExists. Each service's subclass attaches its repositories in `_bind`.

    `events` (with an `outbox`): audit events recorded here are written by `commit`, in the same transaction.
    `read_only`: for use cases that only read; it cannot commit, and on SQLite it takes no write lock."""

    def __init__(self, factory: Connections, outbox: Outbox | None = None, *, read_only: bool = False) -> None:
        self._factory = factory
        self._outbox = outbox
        self.read_only = read_only
        self._events = outbox.buffer() if outbox is not None else None

    def _bind(self, conn: AsyncConnection) -> None:
        raise NotImplementedError

    @property
    def events(self) -> EventBuffer:
        if self._events is None:
            raise RuntimeError("this unit of work has no outbox for audit events")
        return self._events

    async def __aenter__(self) -> Self:
        conn = self._factory()
        self._queued: _WriterQueue | None = None
        if not self.read_only:
            # SQLite has one writer; writers of this process queue here, in order, woken as soon as the one before
            # ends, instead of in SQLite's busy handler, which sleeps and polls (1, 2, 5 … 100 ms): under 16
            # concurrent small uploads most of the time went to those sleeps. Other processes, a writer opened
            # inside another's block, and a wait longer than busy_timeout still go to SQLite's own wait.
            queue = _writer_queue(conn.engine)
            if queue is not None and await queue.enter():
                self._queued = queue
        try:
            self._conn = await conn.start()
            if self.read_only:
                await read_only(self._conn)
        except BaseException:
            self._release_queue()
            raise
        self._bind(self._conn)
        return self

    def _release_queue(self) -> None:
        if self._queued is not None:
            queued, self._queued = self._queued, None
            queued.leave()

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self._conn.rollback()
        finally:
            try:
                await self._conn.close()
            finally:
                self._release_queue()
        if isinstance(e, Exception) and not isinstance(e, DomainError):
            full = disk_full_error(e, _database_place(self._conn.engine.url))
            if full is not None:
                raise full from e  # use cases may act on it (keep what they wrote, retry later)

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        outbox, events = self._outbox, self._events
        if outbox is not None and events is not None and events.rows:
            await outbox.write(self._conn, events)
        else:
            outbox = None
        try:
            await self._conn.commit()
        except IntegrityError as exc:
            await self._conn.rollback()
            raise AlreadyExists("already exists") from exc
        finally:
            self._release_queue()  # the transaction is over: the next writer goes on
            if events is not None:
                events.rows.clear()
        if outbox is not None:
            outbox.wake()
