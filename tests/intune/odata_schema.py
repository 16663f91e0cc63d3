"""A small validator of JSON bodies against an OData CSDL excerpt (Microsoft Graph's beta metadata).

It reads what a body can break: entity and complex types with their base types, their
properties (Type, Nullable) and navigation properties, and enum types with their members.
`Schema.errors()` lists every way a body breaks the schema, worded as OData services word them;
the Graph fake answers the first one with HTTP 400, and the body tests assert there is none.

The excerpt (tests/intune/data/graph-beta-tasks.xml) is a list of schema elements without their
<Schema> element, so it is wrapped in one (namespace microsoft.graph, alias graph) before parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from defusedxml import ElementTree

NAMESPACE = "microsoft.graph"
ALIAS = "graph"
EXCERPT = Path(__file__).parent / "data" / "graph-beta-tasks.xml"

DATE_TIME_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Property:
    name: str
    type: str  # as written: "Edm.String", "graph.keyValuePair", "Collection(graph.x)"
    nullable: bool
    navigation: bool = False


@dataclass
class StructuredType:
    name: str
    kind: str  # "entity" or "complex"
    base: str | None
    properties: dict[str, Property] = field(default_factory=dict)


def local_name(type_name: str) -> str:
    """`graph.x`, `microsoft.graph.x` and `#microsoft.graph.x` are all `x`."""
    name = type_name.lstrip("#")
    for prefix in (f"{NAMESPACE}.", f"{ALIAS}."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def qualified(name: str) -> str:
    return f"{NAMESPACE}.{local_name(name)}"


def _element_type(type_name: str) -> tuple[str, bool]:
    """("graph.x", True) for "Collection(graph.x)"."""
    if type_name.startswith("Collection(") and type_name.endswith(")"):
        return type_name[len("Collection(") : -1], True
    return type_name, False


def _described(type_name: str, nullable: bool) -> str:
    """How OData names an expected type in messages: "Edm.Int32[Nullable=False]"."""
    inner, many = _element_type(type_name)
    inner = inner if inner.startswith("Edm.") else qualified(inner)
    text = f"{inner}[Nullable={'True' if nullable else 'False'}]"
    return f"Collection({text})" if many else text


class Schema:
    def __init__(self, types: dict[str, StructuredType], enums: dict[str, list[str]], containments: dict[str, str]):
        self.types = types
        self.enums = enums
        self.containments = containments  # navigation properties listed on their own, e.g. deviceAppManagementTasks

    # --- reading the CSDL ----------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Schema:
        root = ElementTree.fromstring(f'<Schema Namespace="{NAMESPACE}" Alias="{ALIAS}">{text}</Schema>')
        types: dict[str, StructuredType] = {}
        enums: dict[str, list[str]] = {}
        containments: dict[str, str] = {}
        for element in root:
            if element.tag == "EnumType":
                enums[element.get("Name")] = [member.get("Name") for member in element.findall("Member")]
            elif element.tag in ("EntityType", "ComplexType"):
                base = element.get("BaseType")
                structured = StructuredType(
                    name=element.get("Name"),
                    kind="entity" if element.tag == "EntityType" else "complex",
                    base=local_name(base) if base else None,
                )
                for child in element:
                    if child.tag in ("Property", "NavigationProperty"):
                        structured.properties[child.get("Name")] = Property(
                            name=child.get("Name"),
                            type=child.get("Type"),
                            nullable=child.get("Nullable", "true").lower() != "false",
                            navigation=child.tag == "NavigationProperty",
                        )
                types[structured.name] = structured
            elif element.tag == "NavigationProperty":
                containments[element.get("Name")] = element.get("Type")
        return cls(types, enums, containments)

    @classmethod
    def load(cls, path: Path = EXCERPT) -> Schema:
        return cls.parse(path.read_text(encoding="utf-8"))

    # --- questions about the model ---------------------------------------------------------
    def lineage(self, type_name: str) -> list[str]:
        """The type and its base types, most derived first."""
        chain, name = [], local_name(type_name)
        while name:
            if name not in self.types:
                raise KeyError(f"{qualified(name)} is not in the metadata excerpt")
            chain.append(name)
            name = self.types[name].base
        return chain

    def properties(self, type_name: str) -> dict[str, Property]:
        """Every property the type declares, its base types' included."""
        found: dict[str, Property] = {}
        for name in reversed(self.lineage(type_name)):
            found.update(self.types[name].properties)
        return found

    def derives_from(self, type_name: str, base: str) -> bool:
        return local_name(base) in self.lineage(type_name)

    def collection_type(self, navigation_property: str) -> str:
        """The entity type of a collection the excerpt lists, e.g. deviceAppManagementTasks."""
        inner, _ = _element_type(self.containments[navigation_property])
        return local_name(inner)

    def required(self, type_name: str, *, server_set: tuple[str, ...] = ()) -> list[str]:
        """The non-nullable structural properties of a type, except those the service sets itself."""
        return [
            p.name
            for p in self.properties(type_name).values()
            if not p.nullable and not p.navigation and p.name not in server_set
        ]

    # --- validating a body -----------------------------------------------------------------
    def errors(self, body: object, *, expected_type: str) -> list[str]:
        """Every way `body` breaks the schema when sent where `expected_type` is expected ([] if none)."""
        problems: list[str] = []
        self._check_structured(body, local_name(expected_type), problems)
        return problems

    def _check_structured(self, value: object, expected: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(
                f"An unexpected '{_json_kind(value)}' node was found when reading from the JSON reader. "
                f"A 'StartObject' node was expected for a value of type '{qualified(expected)}'."
            )
            return
        type_name = expected
        odata_type = value.get("@odata.type")
        if odata_type is not None:
            named = local_name(str(odata_type))
            if named not in self.types:
                problems.append(
                    f"A type named '{str(odata_type).lstrip('#')}' could not be resolved by the model. "
                    "When a model is available, each type name must resolve to a valid type."
                )
                return
            if not self.derives_from(named, expected):
                problems.append(
                    f"The type '{qualified(named)}' is not compatible with the expected type '{qualified(expected)}'."
                )
                return
            type_name = named
        declared = self.properties(type_name)
        for key, item in value.items():
            if key.startswith("@") or "@" in key:
                continue  # instance and property annotations (@odata.type, x@odata.bind)
            prop = declared.get(key)
            if prop is None:
                problems.append(
                    f"The property '{key}' does not exist on type '{qualified(type_name)}'. Make sure to only use "
                    "property names that are defined by the type or mark the type as open type."
                )
                continue
            self._check_value(item, prop, problems)

    def _check_value(self, value: object, prop: Property, problems: list[str]) -> None:
        inner, many = _element_type(prop.type)
        if value is None:
            if not prop.nullable or many:
                expected = _described(prop.type, prop.nullable)
                problems.append(
                    f"A null value was found for the property named '{prop.name}', which has the expected type "
                    f"'{expected}'. The expected type '{expected}' does not allow null values."
                )
            return
        if many:
            if not isinstance(value, list):
                problems.append(
                    f"An unexpected '{_json_kind(value)}' node was found when reading from the JSON reader. "
                    f"A 'StartArray' node was expected for the property '{prop.name}'."
                )
                return
            for item in value:
                if item is None:
                    problems.append(f"A null value was found in the collection of the property named '{prop.name}'.")
                else:
                    self._check_single(item, inner, prop.name, problems)
            return
        self._check_single(value, inner, prop.name, problems)

    def _check_single(self, value: object, type_name: str, prop_name: str, problems: list[str]) -> None:
        if type_name.startswith("Edm."):
            if not _primitive_ok(value, type_name):
                problems.append(
                    f"Cannot convert the literal '{value}' to the expected type '{type_name}' (property '{prop_name}')."
                )
            return
        name = local_name(type_name)
        if name in self.enums:
            if not isinstance(value, str) or value not in self.enums[name]:
                problems.append(
                    f"Cannot convert the literal '{value}' to the expected type '{qualified(name)}' "
                    f"(property '{prop_name}')."
                )
            return
        if name in self.types:
            self._check_structured(value, name, problems)
            return
        raise KeyError(f"{qualified(name)} is not in the metadata excerpt")


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "StartObject"
    if isinstance(value, list):
        return "StartArray"
    return "PrimitiveValue"


def _primitive_ok(value: object, type_name: str) -> bool:
    if type_name == "Edm.String":
        return isinstance(value, str)
    if type_name == "Edm.Boolean":
        return isinstance(value, bool)
    if type_name in ("Edm.Int32", "Edm.Int64"):
        bits = 31 if type_name == "Edm.Int32" else 63
        return isinstance(value, int) and not isinstance(value, bool) and -(2**bits) <= value < 2**bits
    if type_name == "Edm.Double":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "Edm.DateTimeOffset":
        return isinstance(value, str) and DATE_TIME_OFFSET.fullmatch(value) is not None
    if type_name == "Edm.Guid":
        return isinstance(value, str) and GUID.fullmatch(value) is not None
    raise KeyError(f"the validator does not know the primitive type {type_name}")


@cache
def graph_beta() -> Schema:
    """The metadata excerpt the project checks every Intune body against (parsed once)."""
    return Schema.load()
