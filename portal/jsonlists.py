"""Queries on JSON lists of strings (Device.machine_tags, SecurityRecommendation.tags, ...) that
work the same on SQLite and PostgreSQL.

Django's `__contains` on a JSONField is PostgreSQL only (jsonb `@>`); SQLite has no containment
operator but has `json_each`. `ListContains` compiles to whichever the database offers, and
`list_values` lists the distinct strings of a column.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import F, Lookup, QuerySet, Value


class ListContains(Lookup):
    """`field` (a JSON list) holds the string `value`. Use as an expression:
    `queryset.filter(ListContains(F("machine_tags"), "tier-1"))`."""

    lookup_name = "list_contains"
    prepare_rhs = False  # compare with the string itself, not its JSON encoding

    def __init__(self, lhs, rhs):
        if isinstance(lhs, str):
            lhs = F(lhs)
        if isinstance(rhs, str):
            rhs = Value(rhs)
        super().__init__(lhs, rhs)

    def as_sql(self, compiler, connection):  # SQLite
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        sql = f"EXISTS (SELECT 1 FROM json_each({lhs}) AS list_item WHERE list_item.value = {rhs})"  # noqa: S608
        return sql, (*lhs_params, *rhs_params)

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} @> jsonb_build_array(({rhs})::text)", (*lhs_params, *rhs_params)


def list_values(queryset: QuerySet, field: str, *, limit: int = 200) -> list[str]:
    """The distinct strings in the JSON-list column `field` of the rows of `queryset`, sorted."""
    model = queryset.model
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    pk = connection.ops.quote_name(model._meta.pk.column)
    rows_sql, params = queryset.order_by().values("pk").query.sql_with_params()
    if connection.vendor == "postgresql":
        items = (
            f"jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.{column}) = 'array' THEN t.{column} ELSE '[]' END)"
            " AS item(value)"
        )
        where = "TRUE"
    else:
        items = f"json_each(t.{column}) AS item"
        where = "item.type = 'text'"
    sql = (
        f"SELECT DISTINCT item.value FROM {table} t, {items}"  # noqa: S608 (quoted names)
        f" WHERE {where} AND t.{pk} IN ({rows_sql}) ORDER BY item.value LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [value for (value,) in cursor.fetchall()]
