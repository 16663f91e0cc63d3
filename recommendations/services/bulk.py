"""Big inserts with the table's indexes built after the rows, not grown one row at a time.

PostgreSQL builds a B-tree from sorted rows several times faster than it inserts the same rows
one by one into it: a first import of a million exposures spends most of its time in the
exposure table's three indexes, and a new device's foreign key is checked one row at a time at
commit. When a statement adds at least as many rows as a table holds (a first import, a
tenant's first full snapshot), `indexes_built_after` drops the table's indexes (and the
constraints that own one) and its foreign keys, runs the statement, and creates them again with
their own definitions and names, all in a savepoint of the caller's transaction: if anything
fails, the rollback brings them back as they were.

Dropping an index locks the table against readers until the transaction ends, so it is only
done when the lock is granted at once (`LOCK_WAIT`); otherwise the rows are inserted as usual.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.db import DatabaseError, OperationalError, connection, transaction

from .counters import quote_name

# Below this many new rows the indexes take them one by one (the difference is too small to
# lock readers out for).
BULK_MIN_ROWS = 50_000
LOCK_WAIT = "1s"
BUILD_MEMORY = "512MB"


def _holds_no_more_than(cursor, table: str, rows: int) -> bool:
    """Whether `table` holds at most `rows` rows (reads no more than rows + 1 of them)."""
    cursor.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote_name(table)} LIMIT %s) s", [rows + 1])  # noqa: S608
    return cursor.fetchone()[0] <= rows


def _locked(cursor, table: str) -> bool:
    """Take the table's exclusive lock if it is free within LOCK_WAIT (the caller's transaction keeps it)."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    (before,) = cursor.fetchone()
    try:
        with transaction.atomic():
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_WAIT])
            cursor.execute(f"LOCK TABLE {quote_name(table)} IN ACCESS EXCLUSIVE MODE")
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
    except OperationalError:  # readers hold it: they are not kept waiting behind a rebuild
        return False
    return True


def _definitions(cursor, table: str, keep: tuple[str, ...]) -> tuple[list, list]:
    """What is dropped and added back: (indexes, foreign keys) of `table`.

    Indexes: (name, CREATE INDEX statement, constraint definition or None), the name being the
    constraint's for an index a constraint owns. Kept: an index another table's foreign key
    refers to (a primary key), and a unique index on exactly the columns `keep` (what an INSERT
    ... ON CONFLICT names). Foreign keys: (name, definition); added back, each checks every row
    with one join instead of a check a row at commit.
    """
    cursor.execute(
        "SELECT COALESCE(quote_ident(c.conname), i.indexrelid::regclass::text), pg_get_indexdef(i.indexrelid),"
        " pg_get_constraintdef(c.oid), i.indisunique,"
        " ARRAY(SELECT a.attname::text FROM unnest(i.indkey) k JOIN pg_attribute a"
        "       ON a.attrelid = i.indrelid AND a.attnum = k),"
        " EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)"
        " FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid"
        " WHERE i.indrelid = %s::regclass ORDER BY i.indisprimary DESC, i.indexrelid",
        [quote_name(table)],
    )
    indexes = [
        (name, create, constraint)
        for name, create, constraint, unique, columns, referenced in cursor.fetchall()
        if not referenced and not (unique and keep and sorted(columns) == sorted(keep))
    ]
    cursor.execute(
        "SELECT quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [quote_name(table)],
    )
    return indexes, cursor.fetchall()


@contextmanager
def indexes_built_after(cursor, table: str, *, rows: int, keep: tuple[str, ...] = ()):
    """Run the body (an insert of about `rows` rows into `table`) with the indexes built after it.

    Yields whether it does so: only on PostgreSQL, for at least BULK_MIN_ROWS rows, into a
    table that holds no more than that, when its lock is free. `keep`: the columns of the
    unique index the body's ON CONFLICT needs (it stays). A duplicate that a unique index or
    constraint refuses raises IntegrityError when it is built, as the insert itself would.
    """
    if (
        connection.vendor != "postgresql"
        or rows < BULK_MIN_ROWS
        or not _holds_no_more_than(cursor, table, rows)
        or not _locked(cursor, table)
    ):
        yield False
        return
    name = quote_name(table)
    with transaction.atomic():  # whatever fails below, the rollback restores every index
        indexes, foreign_keys = _definitions(cursor, table, keep)
        try:
            with transaction.atomic():
                for key, _ in foreign_keys:
                    cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {key}")
                for index, _, constraint in indexes:
                    if constraint is None:
                        cursor.execute(f"DROP INDEX {index}")
                    else:
                        cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {index}")
        except DatabaseError:  # rows this transaction wrote before still wait for their deferred checks
            yield False
            return
        yield True
        cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [BUILD_MEMORY])
        for index, create, constraint in indexes:
            if constraint is None:
                cursor.execute(create)
            else:
                cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {index} {constraint}")
        for key, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {key} {definition}")
