"""OpenAPI schema post-processing: the schema says exactly what the API accepts (drf-spectacular hook).

- `cursor` is the opaque token of a `next`/`previous` link: format `cursor`, any other value
  answers 400 (a client never makes one up).
- Text query parameters cannot hold a NUL character (the API refuses it: no database stores it).
- A filter given empty (`?status=`, as the browsable API's filter form sends) means "no filter",
  so the schema allows the empty value beside the filter's own type.
- OData's options (`$filter`, `$top`, `$skip`, `$skiptoken` of the Defender-compatible API) are
  not filters: an empty `$filter` is refused, and `$skiptoken` is opaque like `cursor`.
- The CSV downloads always answer CSV: the `format` parameter DRF would add changes nothing
  there, so it is not offered.
"""

from __future__ import annotations

from portal.odata import MAX_SKIP, MAX_TOP

PAGINATION_PARAMETERS = {"cursor", "page_size"}
NO_NUL = "^[^\\u0000]*$"
EMPTY = {"type": "string", "enum": [""]}
ODATA_BOUNDS = {"$top": {"minimum": 1, "maximum": MAX_TOP}, "$skip": {"minimum": 0, "maximum": MAX_SKIP}}


def _query_parameters(result: dict):
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    yield parameter


def _without_nul(schema: dict) -> dict:
    if schema.get("type") == "string" and not ({"enum", "format", "pattern"} & set(schema)):
        return {**schema, "pattern": NO_NUL}
    return schema


def _drop_format_parameters(result: dict) -> None:
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    p for p in operation["parameters"] if not (p.get("in") == "query" and p["name"] == "format")
                ]


def describe_query_parameters(result, generator, request, public):
    _drop_format_parameters(result)
    for parameter in _query_parameters(result):
        schema = parameter.get("schema", {})
        name = parameter["name"]
        if name == "cursor":
            parameter["schema"] = {"type": "string", "format": "cursor"}
            parameter["description"] = "Opaque cursor from a `next` or `previous` link; any other value answers 400."
            continue
        if name == "$skiptoken":
            parameter["schema"] = {"type": "string", "format": "cursor"}
            continue
        if name.startswith("$"):  # OData options: no "empty means no filter"
            schema = {**_without_nul(schema), **ODATA_BOUNDS.get(name, {})}
            if schema.get("type") == "string":
                schema = {**schema, "minLength": 1}
            parameter["schema"] = schema
            continue
        if name in PAGINATION_PARAMETERS or schema.get("type") == "array":
            continue
        schema = _without_nul(schema)
        if "enum" in schema:
            schema = {**schema, "enum": [*schema["enum"], ""]}
        elif schema.get("type") in ("boolean", "number", "integer") or "format" in schema:
            schema = {"anyOf": [schema, EMPTY]}
        parameter["schema"] = schema
    return result
