"""The run form on the server (spec §5.6): the values a run gets from what was submitted.

Defaults (literal or expressions, re-evaluated until they settle), ``optional``, ``ignore``,
``hidden``, numbers within ``min``/``max``, dropdown values among their options (by
``option-key`` for dynamic ones), groups and wizard steps (flattened unless
``$meta.wizard.flatten`` is false), and resource pickers resolved against the caller's real
resources by a resolver the caller passes. Every refusal names the input (``inputs.<name>``):
the API answers 422. A bucket with ``generateCredentials`` also gives the run's steps its cloud
CLI's environment (:func:`step_environment`).

Choice where the spec is silent (§13.7): an input is optional unless it says ``optional: false``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from corral_core.workflows import expressions
from corral_sdk.errors import Invalid

__all__ = [
    "INPUT_ENV",
    "MASK",
    "FormValues",
    "InputWithEnv",
    "Resolver",
    "clashing_inputs",
    "resolve_inputs",
    "secret_strings",
    "step_environment",
]

MASK = "********"
"""What a password input shows in logs and API answers."""
INPUT_ENV = "input_env"
"""The key of a run's ``plan`` that holds its :attr:`FormValues.env`, sealed with the platform
key."""

Resolver = Callable[[str, Mapping[str, Any], Any], Awaitable[Any]]
"""``(type, the input's schema, the submitted value) -> the runtime value`` for resource
pickers (``compute-clusters``: an object with ``id``, ``ip``...; ``bucket``: spec §5.4's, its
``credentials`` treated as secrets), or an :class:`InputWithEnv` holding it; raises ``Invalid``
when the caller has no such resource, which the form reports naming the input."""

_TEXT_TYPES = frozenset(
    {"string", "password", "editor", "color-picker", "region", "zone", "instance-type"}
)
_NO_VALUE = frozenset({"header"})
_SETTLE_PASSES = 8


class InputWithEnv(msgspec.Struct, frozen=True, kw_only=True):
    """What a resolver returns for an input that also gives the run's steps environment
    variables: a ``bucket`` with ``generateCredentials``, its cloud CLI's (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``...: what ``corral buckets get-token``
    prints)."""

    value: Any
    env: dict[str, str]


class FormValues(msgspec.Struct, frozen=True, kw_only=True):
    values: dict[str, Any]
    """What steps see as ``inputs`` (ignored inputs left out)."""
    secrets: frozenset[str] = frozenset()
    """Names of inputs holding secrets, masked wherever values are shown: passwords, and
    buckets with ``generateCredentials`` (only their ``credentials`` are masked)."""
    env: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    """By input name, the environment variables it gives the run's steps (secrets, stored
    encrypted and never shown; :func:`step_environment` says which a step gets)."""

    def masked(self) -> dict[str, Any]:
        return {k: (_mask(v) if k in self.secrets else v) for k, v in self.values.items()}


def step_environment(
    given: Mapping[str, Mapping[str, str]], own: Mapping[str, str]
) -> dict[str, str]:
    """The variables a step gets from its run's inputs (:attr:`FormValues.env`) besides its
    own ``env`` (``own``: the workflow's, job's and step's merged). Each input's come all
    together or not at all: none when ``own`` sets one of them (the workflow chose its own
    credentials: a stray ``AWS_SESSION_TOKEN`` would spoil them), and none when another input
    gives one of the same names (:func:`clashing_inputs`: which bucket's ``AWS_ACCESS_KEY_ID``
    was meant would be a guess)."""
    clashing = set(clashing_inputs(given))
    result: dict[str, str] = {}
    for name, variables in given.items():
        if name not in clashing and not (variables.keys() & own.keys()):
            result.update(variables)
    return result


def clashing_inputs(given: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The inputs whose variables no step gets because another input gives one of the same
    names (two AWS buckets with ``generateCredentials``), in the order given."""
    return [
        name
        for name, variables in given.items()
        if any(variables.keys() & others.keys() for other, others in given.items() if other != name)
    ]


SECRET_MIN_LENGTH = 4
"""Shorter secret values are not masked in logs: masking ``ab`` would blank every ``ab`` of
every line and tell more than it hides."""


def secret_strings(secrets: Mapping[str, Any]) -> list[str]:
    """The values a run's log must never show (spec 20 §5.6: password values are masked in
    logs): password inputs and buckets' ``credentials`` (the variables a bucket gives steps
    carry the same values; its region and endpoint are not secret), longest first so that a
    secret containing another is masked whole. ``secrets`` holds the secret inputs' values by
    name."""
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            found.update(part for part in value.splitlines() if len(part) >= SECRET_MIN_LENGTH)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for value in secrets.values():
        is_bucket = isinstance(value, dict) and isinstance(value.get("credentials"), dict)
        collect(value["credentials"] if is_bucket else value)
    return sorted(found, key=len, reverse=True)


def _mask(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("credentials"), dict):
        return {**value, "credentials": dict.fromkeys(value["credentials"], MASK)}
    return MASK


def _flatten(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Inputs by name, wizard steps' options merged in when the wizard flattens them."""
    meta = schema.get("$meta") or {}
    wizard = meta.get("wizard") if isinstance(meta, dict) else None
    flatten = not (isinstance(wizard, dict) and wizard.get("flatten") is False)
    found: dict[str, dict[str, Any]] = {}
    for name, item in schema.items():
        if name == "$meta" or not isinstance(item, dict):
            continue
        if item.get("type") == "step" and flatten:
            found.update(_flatten(item.get("options") or {}))
        else:
            found[name] = item
    return found


def _attribute(item: Mapping[str, Any], key: str, contexts: Mapping[str, Any]) -> Any:
    value = item.get(key)
    return expressions.render(value, contexts) if isinstance(value, str) else value


def _number(name: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise Invalid(f"inputs.{name}: expected a number, got {value!r}", field=f"inputs.{name}")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return int(number) if number.is_integer() else number
    raise Invalid(f"inputs.{name}: expected a number, got {value!r}", field=f"inputs.{name}")


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    raise Invalid(f"inputs.{name}: expected true or false, got {value!r}", field=f"inputs.{name}")


def _options(item: Mapping[str, Any], contexts: Mapping[str, Any]) -> list[Any]:
    options = item.get("options")
    if isinstance(options, dict):
        key = _attribute(item, "option-key", contexts)
        options = options.get(expressions.to_text(key)) or []
    return [o.get("value") if isinstance(o, dict) else o for o in options or []]


async def _check(
    name: str,
    item: Mapping[str, Any],
    value: Any,
    contexts: Mapping[str, Any],
    resolve: Resolver | None,
    *,
    submitted: bool,
) -> Any:
    kind = item.get("type")
    field = f"inputs.{name}"
    if kind == "number":
        number = _number(name, value)
        low, high = item.get("min"), item.get("max")
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = (
                f"between {low} and {high}"
                if low is not None and high is not None
                else (f"at least {low}" if low is not None else f"at most {high}")
            )
            raise Invalid(f"{field}: {number} is out of range: {bounds}", field=field)
        return number
    if kind == "boolean":
        return _boolean(name, value)
    if kind in _TEXT_TYPES:
        if isinstance(value, dict | list) and submitted:
            raise Invalid(f"{field}: expected text, got {type(value).__name__}", field=field)
        return expressions.to_text(value)
    if kind == "dropdown":
        allowed = _options(item, contexts)
        if value not in allowed and expressions.to_text(value) not in map(
            expressions.to_text, allowed
        ):
            shown = ", ".join(expressions.to_text(a) for a in allowed) or "none"
            raise Invalid(f"{field}: {value!r} is not one of the options ({shown})", field=field)
        return next(a for a in allowed if expressions.to_text(a) == expressions.to_text(value))
    if kind == "multi-dropdown":
        chosen = value if isinstance(value, list) else [value]
        allowed_text = {expressions.to_text(a) for a in _options(item, contexts)}
        wrong = [v for v in chosen if expressions.to_text(v) not in allowed_text]
        if wrong:
            raise Invalid(f"{field}: {wrong[0]!r} is not one of the options", field=field)
        return chosen
    if kind == "list":
        if not isinstance(value, list):
            raise Invalid(f"{field}: expected a list", field=field)
        return value
    if kind == "group":
        if not isinstance(value, dict):
            raise Invalid(f"{field}: expected an object of the group's inputs", field=field)
        return value
    if resolve is not None and kind is not None:
        try:
            return await resolve(kind, item, value)
        except Invalid as exc:
            if exc.field and exc.field.startswith(field):
                raise
            raise Invalid(f"{field}: {exc.message}", field=field) from None
    return value


async def resolve_inputs(
    schema: Mapping[str, Any],
    submitted: Mapping[str, Any],
    *,
    org: Mapping[str, Any] | None = None,
    resolve: Resolver | None = None,
) -> FormValues:
    """The values of a run's inputs; raises ``Invalid`` naming the first input that is wrong
    (an unknown name, a missing required value, a value of the wrong type or out of range)."""
    inputs = _flatten(schema)
    unknown = sorted(set(submitted) - set(inputs))
    if unknown:
        raise Invalid(
            f"inputs.{unknown[0]}: the workflow has no such input", field=f"inputs.{unknown[0]}"
        )
    base = {"org": dict(org or {}), "$schema": {"inputs": inputs}}
    values: dict[str, Any] = {}
    # defaults may refer to other inputs: evaluate until nothing changes
    for _ in range(_SETTLE_PASSES):
        changed = False
        for name, item in inputs.items():
            if item.get("type") in _NO_VALUE or name in submitted:
                continue
            contexts = {**base, "inputs": {**values, **submitted}, "$schema": {
                "inputs": inputs, "self": item}}  # fmt: skip
            default = _attribute(item, "default", contexts)
            if (
                default is not expressions.UNDEFINED
                and default is not None
                and values.get(name, expressions.UNDEFINED) != default
            ):
                values[name] = default
                changed = True
        if not changed:
            break
    values.update(submitted)
    result: dict[str, Any] = {}
    secrets: set[str] = set()
    env: dict[str, dict[str, str]] = {}
    for name, item in inputs.items():
        kind = item.get("type")
        if kind in _NO_VALUE:
            continue
        contexts = {**base, "inputs": values, "$schema": {"inputs": inputs, "self": item}}
        hidden = expressions.is_truthy(_attribute(item, "hidden", contexts))
        optional = item.get("optional", True)
        if isinstance(optional, str):
            optional = expressions.is_truthy(expressions.render(optional, contexts))
        value = values.get(name, expressions.UNDEFINED)
        if value is expressions.UNDEFINED or value is None or value == "":
            if not optional and not hidden:
                raise Invalid(
                    f"inputs.{name}: a value is required"
                    + (f" ({item['label']})" if item.get("label") else ""),
                    field=f"inputs.{name}",
                )
            continue
        checked = await _check(name, item, value, contexts, resolve, submitted=name in submitted)
        if isinstance(checked, InputWithEnv):
            if not item.get("ignore"):
                env[name] = dict(checked.env)
            checked = checked.value
        values[name] = checked
        if kind == "password" or (isinstance(checked, dict) and "credentials" in checked):
            secrets.add(name)
        if not item.get("ignore"):
            result[name] = checked
    return FormValues(values=result, secrets=frozenset(secrets), env=env)
