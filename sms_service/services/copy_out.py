"""``COPY … TO STDOUT`` on PostgreSQL, on one connection or on several reading one snapshot.

An export of a million rows keeps one PostgreSQL backend busy formatting cells; on a
machine with more cores :func:`copy_out` can run it as several COPY statements, each over
a contiguous range of the export's order, on connections of their own, as ``pg_dump
--jobs`` does:

1. The first connection opens a ``REPEATABLE READ READ ONLY`` transaction and plans the
   statements (the plan may query, e.g. to sample the boundaries of the ranges: its first
   query fixes the transaction's snapshot).
2. With more than one statement it exports that snapshot (``pg_export_snapshot``); each
   other connection opens the same kind of transaction and imports it (``SET TRANSACTION
   SNAPSHOT``) before anything else, so every statement sees exactly the rows the first
   one sees: a row committed meanwhile is in no range at all, never in some and not in
   others. The first transaction stays open until every other statement has ended (a
   snapshot can only be imported while its exporter is open).
3. The first statement's rows go straight to the output; each later statement is drained
   at the same time by a thread of its own into a temporary file (unlinked at creation,
   so nothing is left behind whatever happens), appended to the output when its turn
   comes. Memory stays flat; disk holds at most the later statements' output.
4. The first failure anywhere (a statement's error, a write to the output or to a
   temporary file, Ctrl-C) cancels every other statement; the connections are discarded
   and that first failure is raised. A later statement that finds the snapshot gone
   (the first transaction failed before it could import it) is not the cause: the first
   statement's own error is what is raised.

Rows are read straight from libpq (``PQgetCopyData``), without blocking: a blocking read
holds Python's lock while it waits for the server, which would stall the other threads.
"""

from __future__ import annotations

import select
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from sqlalchemy.engine import Connection, Engine

FLUSH_BYTES = 1 << 20  # rows are written in chunks of about this size
# Set on every connection when the export runs as several statements: they are its
# parallelism, and a parallel plan under each (the planner picks one for the consent
# export) puts more processes than cores to work: slower on 2 cores (bench/README.md).
PARALLEL_SETTINGS = {"max_parallel_workers_per_gather": "0"}

Statement = tuple[str, Mapping[str, object]]  # a COPY … TO STDOUT and its parameters
Write = Callable[[bytes], object]


def copy_out(
    engine: Engine,
    write: Write,
    plan: Callable[[Connection], Sequence[Statement]],
    *,
    settings: Mapping[str, str],
) -> int:
    """Run the COPY statements ``plan`` returns, writing their rows in order to ``write``
    (each row ended by CRLF); the number of rows.

    ``plan`` is called with the first connection, inside the read-only transaction whose
    snapshot every statement reads. ``settings`` are set (``SET LOCAL``) on every
    connection before its COPY."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        try:
            count = _run(engine, conn, write, plan, settings)
        except BaseException:
            conn.invalidate()  # it may be half way through a COPY
            raise
        conn.connection.dbapi_connection.rollback()  # read only; nothing to keep
    return count


def _run(engine, conn, write, plan, settings) -> int:
    statements = list(plan(conn))
    if not statements:
        return 0
    dbapi = conn.connection.dbapi_connection
    if len(statements) == 1:
        _prepare(dbapi, settings)
        return _copy(dbapi, statements[0], write)
    settings = {**settings, **PARALLEL_SETTINGS}
    with dbapi.cursor() as cursor:
        snapshot = cursor.execute("SELECT pg_export_snapshot()").fetchone()[0]
    failure = _Failure()
    failure.watch(dbapi)
    spools: list[_Spool] = []
    try:
        for statement in statements[1:]:
            spools.append(_Spool(engine, snapshot, statement, settings, failure))
            spools[-1].start()
        _prepare(dbapi, settings)
        count = _copy(dbapi, statements[0], write, failure.stopped)
        for spool in spools:
            spool.join()
            failure.check()
            count += spool.append_to(write)
    except BaseException as exc:
        failure.record(exc)
        for spool in spools:
            spool.join()
        if failure.first is exc:
            raise
        # This statement was stopped because another failed first: that is the error.
        raise failure.first from None
    finally:
        for spool in spools:
            spool.close()
    return count


def _prepare(dbapi, settings: Mapping[str, str]) -> None:
    with dbapi.cursor() as cursor:
        cursor.execute("SET LOCAL client_encoding TO 'UTF8'")
        for name, value in settings.items():
            cursor.execute(f"SET LOCAL {name} TO {value}")


def _copy(dbapi, statement: Statement, write: Write, stopped: threading.Event | None = None):
    sql, params = statement
    with dbapi.cursor() as cursor:
        # psycopg merges the parameters client-side (COPY takes none server-side).
        with cursor.copy(sql, params):
            return drain(dbapi.pgconn, write, stopped)


class _Stopped(Exception):
    """Another statement of the same export failed: this one stops (and is not the cause)."""


class _SnapshotGone(Exception):
    """A later statement could not import the snapshot: the first connection's transaction
    has ended or failed, which only its own failure (or stop) makes happen."""


class _Failure:
    """The first failure of an export's statements, and the means to stop the others."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancels: dict[int, object] = {}
        self._cause: BaseException | None = None
        self._consequence: BaseException | None = None
        self.stopped = threading.Event()

    @property
    def first(self) -> BaseException | None:
        """The failure to report: the first cause, else the first consequence (a stopped
        statement, a snapshot no longer there to import), which can be recorded before
        the failure that led to it."""
        return self._cause or self._consequence

    def watch(self, dbapi) -> None:
        """Cancel the statement under way on ``dbapi`` (psycopg's connection) if the export
        fails, until :meth:`unwatch`."""
        cancel = dbapi.pgconn.get_cancel()  # PQcancel may be called from any thread
        with self._lock:
            self._cancels[id(dbapi)] = cancel
            if self.stopped.is_set():
                cancel.cancel()

    def unwatch(self, dbapi) -> None:
        """Forget ``dbapi``: it goes back to the pool, where a cancel would hit its next user."""
        with self._lock:
            self._cancels.pop(id(dbapi), None)

    def record(self, exc: BaseException) -> None:
        """Keep ``exc`` if it is the first failure of its kind (:attr:`first`), and cancel
        every statement watched (not for a snapshot that could not be imported)."""
        with self._lock:
            if isinstance(exc, _Stopped | _SnapshotGone):
                self._consequence = self._consequence or exc
            else:
                self._cause = self._cause or exc
            # A snapshot gone means the first statement has failed or ended: if it failed,
            # it records its own error (and stops the others) once it reads it; stopping it
            # now would keep that error from being read.
            if isinstance(exc, _SnapshotGone) or self.stopped.is_set():
                return
            self.stopped.set()
            for cancel in self._cancels.values():  # under the lock: see unwatch
                cancel.cancel()

    def check(self) -> None:
        """Raise the first failure, if there was one."""
        if self.first is not None:
            raise self.first


class _Spool(threading.Thread):
    """One later statement, drained into a temporary file on a connection of its own."""

    def __init__(self, engine, snapshot: str, statement, settings, failure: _Failure) -> None:
        super().__init__(name="export-copy", daemon=True)
        self._engine, self._snapshot, self._statement = engine, snapshot, statement
        self._settings, self._failure = settings, failure
        self._file: IO[bytes] | None = _with_filename(tempfile.TemporaryFile)
        self.count = 0

    def run(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
                dbapi = conn.connection.dbapi_connection
                self._failure.watch(dbapi)
                try:
                    if self._failure.stopped.is_set():
                        raise _Stopped
                    self._import_snapshot(dbapi)
                    _prepare(dbapi, self._settings)
                    self.count = _copy(dbapi, self._statement, self._spool, self._failure.stopped)
                    _with_filename(self._file.flush)
                except BaseException:
                    self._failure.unwatch(dbapi)
                    conn.invalidate()
                    raise
                self._failure.unwatch(dbapi)
                dbapi.rollback()
        except BaseException as exc:  # the export's thread raises the first failure
            self._failure.record(exc)

    def _import_snapshot(self, dbapi) -> None:
        from psycopg import Error, sql

        statement = sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self._snapshot))
        try:
            with dbapi.cursor() as cursor:  # before anything else in the transaction
                cursor.execute(statement)
        except Error as exc:
            raise _SnapshotGone(f"the export's snapshot could not be imported: {exc}") from exc

    def _spool(self, data: bytes) -> None:
        _with_filename(self._file.write, data)

    def append_to(self, write: Write) -> int:
        """Write what was spooled to ``write``; the number of rows."""
        self._file.seek(0)
        while block := self._file.read(FLUSH_BYTES):
            write(block)
        self.close()
        return self.count

    def close(self) -> None:
        """Drop the temporary file (already unlinked: closing frees its space)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _with_filename(call, *args):
    """``call(*args)``; an OSError it raises names the temporary files' folder (for the
    command line's one-line error: "cannot use /tmp: No space left on device")."""
    try:
        return call(*args)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = tempfile.gettempdir()
        raise


def drain(pgconn, write: Write, stopped: threading.Event | None = None) -> int:
    """Write the rows of the COPY under way on ``pgconn`` (psycopg's libpq connection);
    the number of rows.

    libpq hands COPY data over one whole row at a time, each ending in "\\n"; csv.writer
    (and RFC 4180) end rows with CRLF, and inside quotes "\\n" stays. Rows are taken from
    libpq without blocking (``PQgetCopyData`` in async mode), waiting on the socket when
    none is ready: psycopg's ``Copy.read`` costs about half as much again per row, which at
    a million rows is most of what the export spends in Python. At the end libpq has the
    COPY's result, taken here as psycopg would: an error the server raised mid-way is
    raised as psycopg's error for it. ``stopped``, when set, ends the drain at the next
    chunk with :class:`_Stopped`."""
    from psycopg import errors, pq  # the COPY path runs on PostgreSQL only

    get_row = pgconn.get_copy_data
    consume = pgconn.consume_input
    socket = [pgconn.socket]
    wait = select.select
    count = 0
    chunk = bytearray()
    while True:
        size, row = get_row(1)  # 1: don't wait; 0: no whole row yet; -1: the COPY has ended
        if size > 0:
            chunk += row[:-1]
            chunk += b"\r\n"
            count += 1
            if len(chunk) >= FLUSH_BYTES:
                if stopped is not None and stopped.is_set():
                    raise _Stopped
                write(chunk)  # handed over whole: a new buffer follows
                chunk = bytearray()
        elif size == 0:
            wait(socket, (), ())  # Python's lock is released while it waits
            consume()
        else:
            break
    failure = None
    while (result := _result(pgconn, wait, socket)) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK and failure is None:
            failure = errors.error_from_result(result, encoding="utf-8")
    if failure is not None:
        raise failure
    if chunk:
        write(chunk)
    return count


def _result(pgconn, wait, socket):
    """The next result on ``pgconn`` (None after the last), waiting without blocking."""
    while pgconn.is_busy():
        wait(socket, (), ())
        pgconn.consume_input()
    return pgconn.get_result()
