"""Big inserts with the table's indexes built after the rows, not grown one row at a time.

PostgreSQL builds a B-tree from sorted rows several times faster than it inserts the same rows
one by one into it: a first import of a million exposures spent most of its time in the
exposure table's three indexes. When a statement adds at least as many rows as the table holds
(a first import, a tenant's first full snapshot), `indexes_built_after` drops the table's
indexes (and the primary key and unique constraints that own one), runs the statement, and
creates them again with their own definitions and names, all in a savepoint of the caller's
transaction: if anything fails, the rollback brings them back as they were.

Dropping an index locks the table against readers until the transaction ends, so it is only
done when the lock is granted at once (`LOCK_WAIT`); otherwise the rows are inserted as usual,
and the attempt leaves no lock behind. The table's own foreign keys are dropped too when the
caller asks (`foreign_keys=True`) and the tables they refer to can be locked the same way
(dropping a key locks the table it refers to against readers as well): they are added back
after the indexes, and PostgreSQL checks every row then with one join, instead of one look-up
per row as it goes in (100,000 devices: 0.03 s against 0.4 s). Foreign keys left in place that
are deferred check each row as it goes in (`SET CONSTRAINTS ... IMMEDIATE`, deferred again
after): a rebuild finds no check still pending, which PostgreSQL requires. An index that
another table's foreign key refers to stays.
What a rebuild does not carry over: a comment on an index, its CLUSTER mark.
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
# The body's memory (work_mem, at least): a bulk statement's hash joins are held in memory, not
# spilled to temporary files in batches (a snapshot's transaction has more already).
BODY_MEMORY = "128MB"


class _Declined(Exception):  # noqa: N818 - not an error: the rows go in the usual way
    pass


def _holds_no_more_than(cursor, table: str, rows: int) -> bool:
    """Whether `table` holds at most `rows` rows (reads no more than rows + 1 of them)."""
    cursor.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote_name(table)} LIMIT %s) s", [rows + 1])  # noqa: S608
    return cursor.fetchone()[0] <= rows


def _lock(cursor, table: str, *, qualified: bool = False) -> None:
    """Take the table's exclusive lock if it is free within LOCK_WAIT; raises _Declined otherwise.
    `qualified`: `table` is quoted already (as regclass prints it)."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    (before,) = cursor.fetchone()
    try:
        with transaction.atomic():
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_WAIT])
            cursor.execute(f"LOCK TABLE {table if qualified else quote_name(table)} IN ACCESS EXCLUSIVE MODE")
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
    except OperationalError as exc:  # readers hold it: they are not kept waiting behind a rebuild
        raise _Declined from exc


def _definitions(cursor, table: str) -> list[tuple[str, str, str | None, str | None]]:
    """What is dropped and built again: (DROP statement, name, CREATE INDEX statement or None,
    ADD CONSTRAINT clause or None) of each index of `table`.

    A primary key or unique constraint is added back on its rebuilt index (`USING INDEX`, which
    keeps the index's own storage parameters and included columns), an exclusion constraint by
    its definition (its index comes with it). An index another table's foreign key refers to
    is left alone.
    """
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, quote_ident(ci.relname), pg_get_indexdef(i.indexrelid), c.contype,"
        " pg_get_constraintdef(c.oid), c.condeferrable, c.condeferred"
        " FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid"
        " LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid"
        " WHERE i.indrelid = %s::regclass"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)"
        " ORDER BY i.indisprimary DESC, i.indexrelid",
        [quote_name(table)],
    )
    found = []
    for qualified, name, create, kind, definition, deferrable, deferred in cursor.fetchall():
        if kind is None:  # an index of its own
            found.append((f"DROP INDEX {qualified}", name, create, None))
            continue
        drop = f"ALTER TABLE {quote_name(table)} DROP CONSTRAINT {name}"
        if kind in ("p", "u"):
            clause = f"{'PRIMARY KEY' if kind == 'p' else 'UNIQUE'} USING INDEX {name}"
            if deferrable:
                clause += " DEFERRABLE INITIALLY " + ("DEFERRED" if deferred else "IMMEDIATE")
            found.append((drop, name, create, clause))
        else:
            found.append((drop, name, None, definition))
    return found


def _foreign_keys(cursor, table: str) -> list[tuple[str, str, str]]:
    """(quoted name, definition, quoted table it refers to) of each of the table's own foreign keys."""
    cursor.execute(
        "SELECT quote_ident(conname), pg_get_constraintdef(oid), confrelid::regclass::text FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY oid",
        [quote_name(table)],
    )
    return cursor.fetchall()


def _drop_foreign_keys(cursor, table: str) -> list[tuple[str, str, str]]:
    """Drop the table's foreign keys when the tables they refer to can be locked at once; what was
    dropped (nothing, and no lock left behind, otherwise)."""
    keys = _foreign_keys(cursor, table)
    if not keys:
        return []
    try:
        with transaction.atomic():
            for referenced in sorted({k[2] for k in keys}):
                _lock(cursor, referenced, qualified=True)
            for name, _, _ in keys:
                cursor.execute(f"ALTER TABLE {quote_name(table)} DROP CONSTRAINT {name}")
    except (_Declined, DatabaseError):
        return []
    return keys


def _deferred_foreign_keys(cursor, table: str) -> list[str]:
    """The table's own foreign keys that are checked at commit (INITIALLY DEFERRED), quoted."""
    cursor.execute(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.conname) FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND c.condeferred ORDER BY c.oid",
        [quote_name(table)],
    )
    return [name for (name,) in cursor.fetchall()]


@contextmanager
def indexes_built_after(cursor, table: str, *, rows: int, foreign_keys: bool = False):
    """Run the body (an insert of `rows` new rows into `table`) with the table's indexes built after it.

    Yields whether it does so: only on PostgreSQL, inside a transaction, for at least
    BULK_MIN_ROWS new rows, into a table that holds no more than that, when its lock is free.
    A duplicate that a unique index or constraint refuses raises IntegrityError when it is
    built, as the insert itself would. `foreign_keys`: the table's foreign keys too, checked
    after the body (a row they refuse raises IntegrityError then).
    """
    if (
        connection.vendor != "postgresql"
        or not connection.in_atomic_block  # the lock must last until the rows are indexed
        or rows < BULK_MIN_ROWS
        or not _holds_no_more_than(cursor, table, rows)
    ):
        yield False
        return
    name = quote_name(table)
    with transaction.atomic():  # whatever fails below, the rollback restores every index
        definitions = []
        try:
            # The lock and the drops in one savepoint: if any drop is refused (say, a role that
            # does not own the table), rolling it back releases the lock too.
            with transaction.atomic():
                _lock(cursor, table)
                definitions = _definitions(cursor, table)
                for drop, *_ in definitions:
                    cursor.execute(drop)
            declined = False
        except (_Declined, DatabaseError):
            declined = True
        if declined:
            yield False
            return
        dropped_keys = _drop_foreign_keys(cursor, table) if foreign_keys else []
        deferred = _deferred_foreign_keys(cursor, table)
        # Checked now, row by row, so that nothing is pending when the indexes are rebuilt; deferred
        # again after (PostgreSQL cannot tell a caller's own SET CONSTRAINTS: nothing here sets one).
        if deferred:
            cursor.execute(f"SET CONSTRAINTS {', '.join(deferred)} IMMEDIATE")
        with _raised(cursor, "work_mem", BODY_MEMORY):
            yield True
        if deferred:
            cursor.execute(f"SET CONSTRAINTS {', '.join(deferred)} DEFERRED")
        with _raised(cursor, "maintenance_work_mem", BUILD_MEMORY):
            for _, index, create, clause in definitions:
                if create is not None:
                    cursor.execute(create)
                if clause is not None:
                    cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {index} {clause}")
        for key, definition, _ in dropped_keys:  # every row checked by one join
            cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {key} {definition}")


@contextmanager
def _raised(cursor, name: str, value: str):
    """The server setting `name` (a size) at least `value` for the body, this transaction only, as
    it was after (a caller's larger value, such as a snapshot's work_mem, is kept)."""
    cursor.execute(
        "SELECT current_setting(%s), pg_size_bytes(current_setting(%s)) < pg_size_bytes(%s)", [name, name, value]
    )
    before, lower = cursor.fetchone()
    if lower:
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
    yield
    if lower:
        cursor.execute("SELECT set_config(%s, %s, true)", [name, before])
