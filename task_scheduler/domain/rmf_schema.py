"""Open-RMF task payloads checked against Open-RMF's own JSON schemas.

A request the fleet manager would refuse should be refused when the rule is saved
(a 422 naming the field), not discovered at three in the morning when it is due.
Pure: reads only the schema files packaged in ``task_scheduler/rmf_schemas``, once,
on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.jsonschema import DRAFT202012

__all__ = [
    "BUILTIN_CATEGORIES",
    "Path",
    "Problem",
    "RmfValidationError",
    "check_extra_categories",
    "schema_names",
    "validate_message",
    "validate_task_request",
]

Path: TypeAlias = tuple[str | int, ...]
"""Where a problem is: keys and list indexes from the validated document's root."""

Problem: TypeAlias = tuple[Path, str]
"""One reason a document breaks its schema: where, and why, for a person to act on."""

BUILTIN_CATEGORIES: Final[frozenset[str]] = frozenset({"clean", "patrol", "delivery", "compose"})
"""Task categories whose description schema Open-RMF's fleet adapter ships."""

_PACKAGE: Final = "task_scheduler"
_SCHEMA_FOLDERS: Final = ("rmf_api_msgs", "rmf_fleet_adapter")
_NO_EXTRAS: Final[Mapping[str, Mapping[str, Any] | None]] = MappingProxyType({})


class RmfValidationError(ValueError):
    """A task request a fleet manager would refuse, with every problem found.

    ``problems`` keeps each path apart from its message so the API can answer 422
    field by field; paths are rooted at the request, e.g. ``("description", "zone")``.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("; ".join(f"{_format_path(path)}: {message}" for path, message in self.problems))


def _format_path(path: Path) -> str:
    """Render a path the way a person reads it: ``description.phases[0].activity``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(request)"


def schema_names() -> frozenset[str]:
    """List the names :func:`validate_message` accepts: file names sans ``.json``."""
    return frozenset(_schemas())


def validate_message(schema_name: str, message: Any) -> list[Problem]:
    """Check any Open-RMF message against the schema named by its file name.

    Returns the problems in path order (empty when valid) rather than raising, because
    fakes and tests want to assert on them; an unknown ``schema_name`` is a programming
    error and raises ``LookupError``.
    """
    validator = _validator(schema_name.removesuffix(".json"))
    return _sorted(_problems(validator, message))


def validate_task_request(
    request: dict[str, Any],
    extra_categories: Mapping[str, Mapping[str, Any] | None] = _NO_EXTRAS,
) -> None:
    """Raise :class:`RmfValidationError` unless a fleet would accept ``request``.

    ``request`` is the ``request`` of a ``dispatch_task_request``. Its ``description``
    is checked against Open-RMF's schema for a built-in category; any other category
    must be one of the site's ``extra_categories``: mapped to a JSON schema the
    description must match it, mapped to ``None`` any description goes (the fleet
    decides). A ``priority`` must be a binary priority, the only kind Open-RMF ships.
    """
    envelope = {"type": "dispatch_task_request", "request": request}
    problems = [
        (path[1:], message) for path, message in _problems(_validator("dispatch_task_request"), envelope)
    ]
    if isinstance(request, dict):
        problems += _category_problems(request, extra_categories)
        priority = request.get("priority")
        if isinstance(priority, dict):
            problems += _problems(_validator("priority_description__binary"), priority, ("priority",))
    if problems:
        raise RmfValidationError(_sorted(problems))


def check_extra_categories(
    extra_categories: Mapping[str, Mapping[str, Any] | None],
) -> None:
    """Raise ``ValueError`` naming each bad entry of a site's extra categories.

    Meant for configuration loading, so a typo in a schema stops the service at start-up
    instead of turning every request of that category into a server error.
    """
    errors: list[str] = []
    for name, schema in extra_categories.items():
        if name in BUILTIN_CATEGORIES:
            errors.append(f"{name!r} is built in; Open-RMF's own schema applies to it")
        elif schema is None:
            continue
        elif not isinstance(schema, Mapping):
            kind = type(schema).__name__
            errors.append(f"{name!r} must map to a JSON schema or None, not {kind}")
        else:
            try:
                validator_for(schema, default=Draft202012Validator).check_schema(schema)
            except SchemaError as error:
                errors.append(f"{name!r} is not a valid JSON schema: {error.message}")
    if errors:
        raise ValueError("invalid extra task categories: " + "; ".join(errors))


def _category_problems(
    request: Mapping[str, Any], extra_categories: Mapping[str, Mapping[str, Any] | None]
) -> list[Problem]:
    """Check the description against its category's schema, or reject the category."""
    category = request.get("category")
    if not isinstance(category, str):
        return []  # the task_request schema has already said so
    if category in BUILTIN_CATEGORIES:
        validator: Validator | None = _validator(f"task_description__{category}")
    elif category in extra_categories:
        schema = extra_categories[category]
        validator = None if schema is None else _site_validator(schema)
    else:
        accepted = ", ".join(sorted(BUILTIN_CATEGORIES | set(extra_categories)))
        return [(("category",), f"unknown task category {category!r}; accepted: {accepted}")]
    if validator is None or "description" not in request:
        return []  # a missing description is reported by the task_request schema
    return _problems(validator, request["description"], ("description",))


def _site_validator(schema: Mapping[str, Any]) -> Validator:
    """Build a validator for a site's schema: its own ``$schema``, RMF's ``$ref``s."""
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(dict(schema), registry=_registry())


def _problems(validator: Validator, instance: Any, prefix: Path = ()) -> list[Problem]:
    """List every problem, each narrowed to the likeliest branch of a ``oneOf``.

    Open-RMF's schemas nest ``oneOf`` (a place is a name, an index or an object; a
    payload one item or a list); jsonschema's ``best_match`` picks the branch that fits
    the value's type, so a negative quantity says so instead of "not valid under any".
    """
    found: list[Problem] = []
    for error in validator.iter_errors(instance):
        leaf: ValidationError = best_match([error]) or error
        problem = (prefix + tuple(leaf.absolute_path), leaf.message)
        if problem not in found:
            found.append(problem)
    return found


def _sorted(problems: list[Problem]) -> list[Problem]:
    """Order by path (indexes before keys), then message, so output is stable."""
    return sorted(problems, key=lambda p: (tuple((isinstance(k, str), k) for k in p[0]), p[1]))


@cache
def _schemas() -> Mapping[str, Mapping[str, Any]]:
    """Read every packaged schema once, on first use, by file name sans ``.json``."""
    root = files(_PACKAGE).joinpath("rmf_schemas")
    schemas: dict[str, Mapping[str, Any]] = {}
    for folder in _SCHEMA_FOLDERS:
        for entry in sorted(root.joinpath(folder).iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                name = entry.name.removesuffix(".json")
                if name in schemas:
                    raise RuntimeError(f"RMF schema {name!r} is packaged twice")
                schemas[name] = json.loads(entry.read_text(encoding="utf-8"))
    return MappingProxyType(schemas)


@cache
def _registry() -> Registry[Any]:
    """Register every schema under its ``$id``: relative ``$ref``s resolve against it.

    Registered by ``$id`` rather than file name because three files' ``$id`` differs
    from their name (e.g. ``undo_skip_phase_request.json``).
    """
    return Registry().with_resources(
        (schema["$id"], DRAFT202012.create_resource(schema)) for schema in _schemas().values()
    )


@cache
def _validator(name: str) -> Validator:
    """Build a packaged schema's validator once: building one walks the schema."""
    schema = _schemas().get(name)
    if schema is None:
        raise LookupError(f"no packaged RMF schema named {name!r}")
    return Draft202012Validator(schema, registry=_registry())
