"""CSV files of exposure pairs copied into PostgreSQL as they are, at COPY's own speed.

The copy lane only ever accepts: a file PostgreSQL refuses, or one holding bytes its CSV parser
reads otherwise than Python's csv module, raises `NotPlain`, and the snapshot reads the file
again with the Python reader, which finds and words every problem (snapshots.py).

An import may copy its files before its transaction begins (`pairs_copied_ahead`): in a thread
of its own, on the session's connection, while the import reads and checks its other files in
Python; PostgreSQL parses the pairs on the second core meanwhile. The snapshot's transaction,
which holds the snapshot lock, takes the copied rows as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from django.db import DatabaseError, connection, transaction

from .counters import drop_temp_table_quietly, no_exposure_stored, temp_table


class NotPlain(Exception):  # noqa: N818 - not an error: the copied file needs the Python reader
    """The copied file holds something only the Python reader can explain: read it that way."""


# Bytes PostgreSQL's CSV parser reads otherwise than Python's csv module: a quote inside a field
# (`ab"c"` is `abc` to COPY) and a backslash (`\.` alone on a line ends COPY's data before
# PostgreSQL 18). Defender's ids hold neither; a file that does is read by Python.
_NOT_PLAIN_BYTES = (b'"', b"\\")

STAGE_COLUMNS = "line bigint, rec_ext varchar(255), machine varchar(64)"
COPIED_AHEAD = "tvm_copied"


def _copy_files(raw_cursor, files, *, table: str, stop: threading.Event | None = None) -> int:
    """COPY each file into `table` with a psycopg cursor; how many rows. Raises NotPlain (and
    psycopg's errors as they are) for a file that needs the Python reader, or when `stop` is set."""
    staged = 0
    for file in files:
        first, second = file.copy_columns()
        with raw_cursor.copy(f"COPY {table} ({first}, {second}) FROM STDIN (FORMAT csv, HEADER true)") as copy:
            for block in file.blocks():
                if (stop is not None and stop.is_set()) or any(mark in block for mark in _NOT_PLAIN_BYTES):
                    raise NotPlain
                copy.write(block)
        staged += max(raw_cursor.rowcount, 0)
    return staged


def stage_by_copy(cursor, files, *, table: str = "tvm_stage") -> int:
    """COPY each CSV file as it is into `table` (positions in file order); how many rows.

    Raises NotPlain when PostgreSQL refuses a file or a file holds what its CSV parser reads
    differently from Python's; whatever was copied is rolled back (a savepoint).
    """
    try:
        with transaction.atomic():  # a refused COPY aborts only this savepoint
            return _copy_files(cursor.cursor, files, table=table)
    except (DatabaseError, psycopg.Error) as exc:  # malformed row, too long, not UTF-8, a NUL byte
        raise NotPlain from exc


@dataclass(frozen=True)
class CopiedAhead:
    """What `pairs_copied_ahead` did: `rows` copied, or None when the files need the Python reader;
    `recommendations`: the recommendation ids the copied pairs name (each once), listed for a
    first snapshot (no exposure stored when they were copied), else None."""

    rows: int | None
    recommendations: tuple[str, ...] | None = None


def _listed(cursor, rows: int) -> CopiedAhead:
    """What was copied: `rows`, and for a first snapshot the recommendations they name."""
    if not no_exposure_stored(cursor):  # not a first snapshot: it finds its recommendations as it matches
        return CopiedAhead(rows)
    cursor.execute(f"SELECT DISTINCT rec_ext FROM {COPIED_AHEAD}")  # noqa: S608 (a constant name)
    return CopiedAhead(rows, tuple(name for (name,) in cursor.fetchall()))


class PairsCopy:
    """The copy `pairs_copied_ahead` runs: `result()` waits for it."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._result: CopiedAhead | None = None
        self._error: BaseException | None = None

    def start(self, raw_connection, files: list) -> None:
        self._thread = threading.Thread(target=self._run, args=(raw_connection, files), name="pairs-copy")
        self._thread.start()

    def finished(self, result: CopiedAhead) -> None:
        self._result = result

    def _run(self, raw_connection, files: list) -> None:
        try:
            with raw_connection.cursor() as cursor:
                self._result = _listed(cursor, _copy_files(cursor, files, table=COPIED_AHEAD, stop=self._stop))
        except (NotPlain, psycopg.Error):  # in autocommit: the refused COPY left nothing behind
            self._result = CopiedAhead(None)
        except BaseException as exc:  # noqa: BLE001 - a file that cannot be read: raised by result()
            self._error = exc

    def result(self) -> CopiedAhead | None:
        """None when nothing was tried, else CopiedAhead (its rows None when a file needs the
        Python reader). Raises what reading a file raised (OSError)."""
        self.stop(cancel=False)
        if self._error is not None:
            raise self._error
        return self._result

    def stop(self, *, cancel: bool = True) -> None:
        if cancel:
            self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextmanager
def pairs_copied_ahead(files: list) -> Iterator[PairsCopy]:
    """Copy CSV files of pairs (`readers.ExposureCsvFile`) before the snapshot's transaction begins.

    PostgreSQL parses the files into a temporary table of the session, which the snapshot (given
    `result()`) takes as its staging table. Outside a transaction the copy runs in a thread of
    its own and the caller goes on (it must not use the database until `result()`: the thread
    has the connection); each COPY is then a short transaction of its own. Inside a caller's
    transaction it is done before the body, in a savepoint. The table goes on exit, whatever
    happened (a copy still running is stopped first).
    """
    copying = PairsCopy()
    if connection.vendor != "postgresql" or not files or not all(f.copy_columns() for f in files):
        yield copying
        return
    with connection.cursor() as cursor:
        try:
            cursor.execute(f"DROP TABLE IF EXISTS {temp_table(COPIED_AHEAD)}")
            position = "pos bigint GENERATED BY DEFAULT AS IDENTITY"
            cursor.execute(f"CREATE TEMPORARY TABLE {COPIED_AHEAD} ({position}, {STAGE_COLUMNS})")
            if connection.in_atomic_block:
                try:
                    copying.finished(_listed(cursor, stage_by_copy(cursor, files, table=COPIED_AHEAD)))
                except NotPlain:
                    copying.finished(CopiedAhead(None))
            else:
                copying.start(connection.connection, files)
            yield copying
        finally:
            copying.stop()
            drop_temp_table_quietly(cursor, COPIED_AHEAD)
