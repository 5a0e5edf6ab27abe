"""Few round trips for a hot path: Core statements sent together, one transaction.

A webhook under a call-to-action burst spends most of its time waiting: every round trip to
PostgreSQL gives the GIL away and waits to get it back behind the other threads. So the hot
paths (an inbound text, a petition signature) send their statements in batches: all the
reads in one round trip, all the writes in a second, with COMMIT (``run(…, commit=True)``)
when nothing the writes return can still change the outcome.

On PostgreSQL a batch is one request in libpq's pipeline mode: every statement of the batch
queued (extended protocol), then a single Sync, so the server runs them one after the other,
in order, each seeing what the previous did; BEGIN goes with the first batch. Each
statement is a server-side prepared statement (prepared once per connection, in the same
pipeline, then only bound and executed), so the server neither parses nor plans it again,
and its parameters travel apart from the SQL, in text form, dumped by psycopg's own
adapters (its Transformer's ``dump_sequence``): never string formatting of ours. What a
connection has prepared is remembered with the pooled connection and asked of the server
again after any error.
Measured (interleaved A/B of the web process under wrk, 2026-12-02): against one
simple-protocol request of ``EXECUTE name(literals)`` statements, about 16% less server CPU
and 10% less client CPU per text; that in turn had cost about 30% less client CPU and 20%
less server CPU than one statement per round trip.

Elsewhere (SQLite, in-process) the statements simply run one by one through SQLAlchemy.

Statements are SQLAlchemy Core statements built once at import, compiled once per set of
parameter names (the SQL SQLAlchemy itself would send, with its type casts). Parameters must
be plain values (strings, numbers, aware datetimes, None). Errors come out as SQLAlchemy
raises them (IntegrityError, OperationalError…) so :func:`sms_service.db.with_retries`
recognises conflicts, and a dropped connection is discarded from the pool. Listeners of the
engine's ``before_cursor_execute`` still see every statement (tests and tracing use it).
"""

from __future__ import annotations

import ctypes
import hashlib
import re
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import psycopg
from psycopg import generators, pq
from psycopg._enums import Ready, Wait
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import ExecStatus, PipelineStatus, TransactionStatus
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from sms_service.db import RaceLost

# One statement of a batch: (Core statement, parameters); a list of parameter dicts runs it
# once for each, returning no rows.
Step = tuple[Any, dict | list[dict]]


class Batches:
    """One transaction on one pooled connection, run in batches (see the module)."""

    dialect_name: str

    def run(self, steps: Sequence[Step], *, commit: bool = False) -> list[list]:
        """Run ``steps`` in order, in one round trip where the database allows; the rows each
        returned (attribute access by column name; [] for statements without rows). With
        ``commit``, COMMIT goes in the same round trip: the transaction ends with the batch,
        or, when a statement fails, is left to be rolled back."""
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError


@contextmanager
def batches(engine: Engine) -> Iterator[Batches]:
    """A transaction in batches on a connection from ``engine``'s pool; rolled back unless
    committed, the connection returned to the pool at the end."""
    if engine.dialect.name == "postgresql":
        tx: _Postgres | _Sequential = _Postgres(engine)
    else:
        tx = _Sequential(engine)
    try:
        yield tx
    finally:
        tx.close()


class _Sequential(Batches):
    """Statement after statement through SQLAlchemy (SQLite: nothing to save in-process)."""

    def __init__(self, engine: Engine) -> None:
        self.dialect_name = engine.dialect.name
        self.connection = engine.connect()

    def run(self, steps: Sequence[Step], *, commit: bool = False) -> list[list]:
        out = []
        for statement, params in steps:
            result = self.connection.execute(statement, params)
            out.append(list(result) if result.returns_rows else [])
        if commit:
            self.connection.commit()
        return out

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()

    def close(self) -> None:
        self.connection.close()


# Each statement compiled once per set of parameter names: its prepared statement's name
# (also encoded, as libpq takes it), its SQL with $1…$n, the parameter names in that order,
# constant parameters, the column defaults to compute for each execution, the parameters'
# formats (and the statement).
_prepared: dict[tuple[int, frozenset[str]], tuple] = {}


def _computed(defaults: list) -> dict:
    """Values of Python-side column defaults: a scalar as is, a function called (SQLAlchemy
    wraps each to take an execution context; none is needed for ours)."""
    return {key: d.arg if d.is_scalar else d.arg(None) for key, d in defaults}


TUPLES_OK = ExecStatus.TUPLES_OK
PIPELINE_SYNC = ExecStatus.PIPELINE_SYNC
WAIT_R, WAIT_RW = Wait.R, Wait.RW
READY_R = Ready.R
FATAL_ERROR = ExecStatus.FATAL_ERROR
_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s|%%")
# Row classes by statement: the columns a statement returns never change.
_row_classes: dict[str, Any] = {}
_LIST_PREPARED = b"SELECT name FROM pg_prepared_statements WHERE name LIKE 'sms\\_%'"


class _Postgres(Batches):
    """One pipeline (commands, then one Sync) per batch on the pooled connection (see the
    module).

    The commands are sent and their results read through psycopg's libpq layer
    (``pgconn``, its wait loop and its Transformer: the library's own dumping of
    parameters and loading of rows, in C), without a cursor: a cursor's bookkeeping (its
    own prepared-statement cache, query conversion, result iteration) cost more per text
    than the statements' parameters themselves.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.dialect_name = "postgresql"
        self.pooled = engine.raw_connection()
        self.connection: psycopg.Connection = self.pooled.driver_connection
        # BEGIN is sent by us, with the first batch: requests go to libpq directly, so
        # psycopg never adds its own (a round trip of its own), whatever its autocommit.
        self.begun = False
        info = self.pooled.info  # kept with the pooled connection, for its whole life
        self.transformer = info.get("sms_transformer")
        if self.transformer is None:
            self.transformer = info["sms_transformer"] = Transformer(self.connection)

    def _statement(self, statement, first: dict):
        """(name, the name as libpq takes it, SQL text, parameter order, constants, computed
        defaults, the parameters' formats, and the statement itself)."""
        key = (id(statement), frozenset(first))
        entry = _prepared.get(key)
        if entry is None:
            # for_executemany: no implicit RETURNING of the primary key (only what a
            # statement asks for with .returning(), as on SQLite).
            compiled = statement.compile(
                dialect=self.dialect, column_keys=list(first), for_executemany=True
            )
            # Column defaults kept in Python (a scalar, or a function such as utcnow) are
            # computed at execution, as SQLAlchemy does, for the columns not given.
            computed = [
                (c.key, c.default)
                for c in (*compiled.insert_prefetch, *compiled.update_prefetch)
                if c.key not in first
            ]
            constants = {k: v for k, v in compiled.params.items() if k not in first}
            for column, _ in computed:
                constants.pop(column, None)
            order: list[str] = []

            def positional(match) -> str:
                if match.group(0) == "%%":
                    return "%"
                name = match.group(1)
                if name not in order:
                    order.append(name)
                return f"${order.index(name) + 1}"

            text = _PLACEHOLDER.sub(positional, str(compiled))
            # Named by its SQL: the same statement has the same name in every process, and
            # two statements never share one. The entry keeps ``statement`` alive, so its
            # id() cannot be reused by another object while the key stands.
            name = "sms_" + hashlib.sha1(text.encode()).hexdigest()[:20]
            formats = [PyFormat.TEXT] * len(order)
            entry = (name, name.encode(), text, order, constants, computed, formats, statement)
            _prepared[key] = entry
        return entry

    def run(self, steps: Sequence[Step], *, commit: bool = False) -> list[list]:
        info = self.pooled.info
        if info.get("sms_prepared_unsure", True):
            # A new connection, or a batch failed part-way: ask the server what it holds.
            [names] = self._request(_LIST_PREPARED)
            info["sms_prepared"] = {names.get_value(i, 0).decode() for i in range(names.ntuples)}
            info["sms_prepared_unsure"] = False
        prepared = info["sms_prepared"]
        pgconn = self.connection.pgconn
        # Each command of the pipeline gives one result; the plan says whose (None: nobody
        # reads it).
        plan: list = []
        new: list[str] = []
        texts: list[str] = []
        results: list[list] = [[] for _ in steps]
        try:
            # Every value is dumped before the first command is queued: a value that cannot
            # be sent (a NUL in a text) raises here, with nothing half-sent in the pipeline.
            commands = self._commands(steps, plan, new, texts, prepared, commit)
            pgconn.enter_pipeline_mode()
            try:
                answers = self._send(pgconn, commands)
            finally:
                if pgconn.pipeline_status != PipelineStatus.OFF:
                    pgconn.exit_pipeline_mode()
            self._raise_first_error(answers)
            self.begun = not commit
            load = self.transformer
            for answer, result in zip(plan, answers, strict=True):
                if answer is not None and result.status == TUPLES_OK:
                    load.set_pgresult(result)
                    make_row = _row_class(answer[1], result)
                    results[answer[0]] = load.load_rows(0, result.ntuples, make_row)
        except psycopg.Error as exc:
            info["sms_prepared_unsure"] = True
            self.begun = self.connection.info.transaction_status != TransactionStatus.IDLE
            if isinstance(exc, psycopg.errors.InvalidSqlStatementName):
                # Our statements were dropped under us: psycopg sends DEALLOCATE ALL after a
                # ROLLBACK when it holds prepared statements of its own (an ORM request on
                # this pooled connection). The attempt runs again, preparing them anew.
                self.rollback()
                raise RaceLost from exc
            raise self._error(exc, ";\n".join(texts), None) from exc
        prepared.update(new)
        return results

    def _commands(self, steps, plan, new, texts, prepared, commit) -> list:
        """The batch as libpq commands, each ``(send, args)``, its values already dumped."""
        listeners = self.engine.dispatch.before_cursor_execute
        dump = self.transformer.dump_sequence
        pgconn = self.connection.pgconn
        commands: list = []
        if not self.begun:
            commands.append((pgconn.send_query_params, (b"BEGIN", None)))
            plan.append(None)
        for index, (statement, params) in enumerate(steps):
            many = isinstance(params, list)
            rows = params if many else [params]
            name, key, text, order, constants, computed, formats, _ = self._statement(
                statement, rows[0]
            )
            bound = [{**constants, **_computed(computed), **p} for p in rows]
            texts.append(text)
            if listeners:
                listeners(None, None, text, bound if many else bound[0], None, many)
            if name not in prepared and name not in new:
                commands.append((pgconn.send_prepare, (key, text.encode())))
                plan.append(None)
                new.append(name)
            for p in bound:
                values = dump([p[k] for k in order], formats) if order else None
                commands.append((pgconn.send_query_prepared, (key, values)))
                plan.append((index, name) if not many else None)
        if commit:
            commands.append((pgconn.send_query_params, (b"COMMIT", None)))
            plan.append(None)
            texts.append("COMMIT")
        return commands

    def _send(self, pgconn, commands) -> list:
        """Queue ``commands`` in pipeline mode, then one Sync; every result."""
        for send, args in commands:
            send(*args)
        if _LIBPQ is None:
            pgconn.pipeline_sync()
            return self.connection.wait(_pipeline_results(pgconn, pgconn.flush))
        # The same Sync and flush through libpq itself, the GIL released (see _LIBPQ).
        ptr = ctypes.c_void_p(pgconn.pgconn_ptr)
        if _LIBPQ.PQsendPipelineSync(ptr) != 1:
            pgconn.pipeline_sync()  # fails again, raising psycopg's error
        return self.connection.wait(_pipeline_results(pgconn, partial(_flush, pgconn, ptr)))

    def _request(self, query: bytes) -> list:
        """Send ``query`` (one or more statements, simple protocol) and wait for every result,
        the GIL given up meanwhile; the first error raised as psycopg raises it."""
        pgconn = self.connection.pgconn
        pgconn.send_query(query)
        answers = self.connection.wait(generators.execute(pgconn))
        self._raise_first_error(answers)
        return answers

    def _raise_first_error(self, answers: list) -> None:
        """Raise the first failed result among ``answers`` as psycopg raises it."""
        for result in answers:
            if result.status == FATAL_ERROR:
                raise psycopg.errors.error_from_result(result, self.connection.info.encoding)

    def commit(self) -> None:
        self._end("COMMIT")

    def rollback(self) -> None:
        self._end("ROLLBACK")

    def _end(self, command: str) -> None:
        if not self.begun:
            return
        self.begun = False
        if command == "ROLLBACK":  # after which psycopg may deallocate every statement
            self.pooled.info["sms_prepared_unsure"] = True
        try:
            self._request(command.encode())
        except psycopg.Error as exc:
            raise self._error(exc, command, {}) from exc

    def _error(self, exc: psycopg.Error, sql: str, bound) -> DBAPIError:
        gone = self.connection.closed or self.dialect.is_disconnect(exc, self.connection, None)
        if gone:
            self.pooled.invalidate(exc)
        return DBAPIError.instance(
            sql, bound, exc, psycopg.Error, hide_parameters=True,
            connection_invalidated=gone, dialect=self.dialect,
        )  # fmt: skip

    def close(self) -> None:
        """Back to the pool as it came: no transaction open."""
        try:
            if not self.connection.closed:
                if self.connection.info.transaction_status != TransactionStatus.IDLE:
                    self._request(b"ROLLBACK")
        except psycopg.Error as exc:
            self.pooled.invalidate(exc)
        finally:
            self.pooled.close()


def _pipeline_results(pgconn, flush: Callable[[], int]):
    """A psycopg wait generator: flush what the pipeline queued, then read every command's
    result up to the Sync (libpq gives each command's result, then None, then the next)."""
    while flush() != 0:
        ready = yield WAIT_RW
        if ready & READY_R:
            pgconn.consume_input()
    results = []
    while True:
        while pgconn.is_busy():
            yield WAIT_R
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            continue
        if result.status == PIPELINE_SYNC:
            return results
        results.append(result)


def _flush(pgconn, ptr: ctypes.c_void_p) -> int:
    """libpq's PQflush, the GIL released; a failure raised as psycopg raises it."""
    sent = _LIBPQ.PQflush(ptr)
    return pgconn.flush() if sent < 0 else sent


def _shared_libpq() -> ctypes.CDLL | None:
    """The libpq psycopg's binary package runs on, for the two calls its wrappers make
    holding the GIL: PQpipelineSync (which writes the whole batch to the socket) and
    PQflush. Holding it there, a thread that the kernel preempts in the write (it wakes the
    server's backend on the other core) stops every other thread of the worker: py-spy
    showed a tenth of the workers' GIL time in that one call under load. ctypes releases the
    GIL for a foreign call. PQsendPipelineSync (libpq 17) queues the Sync without writing;
    PQflush then writes.

    Only the very library already loaded (the wheel's bundled copy, found by its path in
    this process's mappings) and only when its version is psycopg's: a second libpq must
    never touch psycopg's connection. None otherwise (another psycopg implementation, an
    older libpq): psycopg's own calls are used."""
    if pq.__impl__ != "binary":
        return None
    try:
        with open("/proc/self/maps") as maps:
            loaded = {line.split()[-1] for line in maps if "libpq" in line and "/" in line}
    except OSError:
        return None
    if len(loaded) != 1:
        return None
    try:
        library = ctypes.CDLL(loaded.pop())
        send_sync, flush = library.PQsendPipelineSync, library.PQflush
    except (OSError, AttributeError):
        return None
    if library.PQlibVersion() != pq.version():
        return None
    for function in (send_sync, flush):
        function.argtypes = [ctypes.c_void_p]
        function.restype = ctypes.c_int
    return library


_LIBPQ = _shared_libpq()


def _row_class(name: str, result) -> Any:
    """The row maker for statement ``name``'s results (attribute access by column name);
    the columns a prepared statement returns never change."""
    cls = _row_classes.get(name)
    if cls is None:
        columns = [result.fname(i).decode() for i in range(result.nfields)]
        cls = _row_classes[name] = namedtuple("Row", columns, rename=True)._make
    return cls
