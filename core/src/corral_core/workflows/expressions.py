"""The workflow expression language (spec §6): delimiters, a whitespace-sensitive parser with
JavaScript semantics, and rendering of strings that embed expressions.

Delimiters
    ``${ expr }``, ``${{ expr }}`` and ``{{ expr }}`` are interchangeable, inner spaces are
    optional. ``{{`` always opens an expression. So that shell text survives, ``${`` opens one only
    when followed by ``{``, by whitespace, or by a known context name (``inputs``, ``needs`` ...)
    that is followed by ``.``, ``[``, ``}`` or whitespace: ``$HOME``, ``${HOME}``, ``${VAR:-x}``
    and ``$OUTPUTS`` reach the shell untouched. Closing delimiters inside quotes or inside
    brackets of the expression do not count (``{{ {"a": "c"} get a }}``, ``{{ 'a}}b' }}``).
    A string that is exactly one expression (surrounding whitespace aside) renders to the typed
    value; otherwise every expression is converted with :func:`to_text` and spliced in.

Tokens (whitespace separates them, which is the documented quirk)
    A *word* is a run of characters other than whitespace, quotes and ``( ) [ ] { } ,``; a ``:``
    ends a word only when whitespace, a quote, a bracket or a comma follows it. A word that is
    exactly an operator is that operator, so ``1 + 1`` is 2 but ``1+1`` is one word, which
    evaluates to its own text ``"1+1"``. A word that starts with ``!`` (other than ``!in``,
    ``!=`` and ``!==``) is a logical not of the rest: ``!false``, ``!inputs.show``. Strings are
    ``'...'`` or ``"..."`` with JavaScript backslash escapes.

Words as values
    ``true false null undefined``, numbers (``1``, ``-2.5``, ``1e3``), context paths whose first
    segment is a key of the contexts or a default context name (``inputs.x.field``,
    ``needs.job.outputs.PORT``, ``inputs.list.0``; a missing step gives ``undefined``), ``always``
    (true), a ``-`` before a path (``-inputs.n``, negation), schema references (below), and
    otherwise the word's own text: ``get a`` reads the key ``"a"``, ``{{ 1.2.3 }}`` is
    ``"1.2.3"``.

Grammar, loosest first (every binary operator is left-associative except ``**`` and ``? :``)::

    expression  := nullish [ "?" expression ":" expression ]
    nullish     := and { ("||" | "??") and }
    and         := equality { "&&" equality }
    equality    := relational { ("==" | "!=" | "===" | "!==") relational }
    relational  := additive { ("<" | ">" | "<=" | ">=" | "in" | "!in") additive }
    additive    := term { ("+" | "-") term }
    term        := power { ("*" | "/" | "//" | "%") power }
    power       := unary [ "**" power ]
    unary       := ("!" | "-") unary | postfix
    postfix     := primary { "[" expression "]" | ".name" | "get" access }
    access      := primary { "[" expression "]" | ".name" }
    primary     := string | word | "(" expression ")" | "[" items "]" | "{" entries "}"
    items       := [ expression { "," expression } [ "," ] ]
    entries     := [ key ":" expression { "," key ":" expression } [ "," ] ]

``get`` is a postfix operator, binding tighter than every other operator: ``x get 0 + 1`` is
``(x get 0) + 1`` and ``x get a get b`` is ``(x get a) get b``; its right operand is a primary
with its own ``.name`` / ``[...]`` accesses. Object keys are strings or bare words.

Semantics follow JavaScript: ``&& || ??`` return an operand, ``==`` coerces and ``===`` does not,
``+`` concatenates when either side is a string (JavaScript ``String()``: ``undefined`` and
``null`` spell themselves, a list joins with commas), numbers are doubles (an integral finite
result comes back as an ``int``: ``4 * 4`` is 16, ``9 / 4`` is 2.25), division by zero gives
``inf``/``nan``. Additions to JavaScript: ``//`` is ``Math.floor(a / b)``; ``a in b`` is list
membership (strict equality), a key test on a mapping and a substring test on a string; ``!in``
is its negation; ``x get k`` and ``x[k]`` index lists and strings and read mapping keys, and
``.length`` of a list or string is its length.

Form schema references, when the contexts hold ``"$schema"``: ``{"inputs": {name: schema},
"self": schema, "siblings": {name: schema}}`` (``siblings`` is optional and defaults to
``inputs``; it is for inputs inside a group). Then ``inputs[field]`` is the schema of ``field``,
``inputs.field[attr]`` an attribute of that schema (``inputs.group.child[attr]`` goes through the
group's ``items``), ``../field`` a sibling's schema and ``../field.attr`` its attribute, and
``.attr`` an attribute of the input being evaluated. Without ``"$schema"`` the bracket is an
ordinary key access (``x[y]`` reads ``x["y"]``) and ``.`` / ``../`` references are undefined.

Nothing here raises at evaluation time: a malformed expression (``1 +``, ``(1 + 2``, ``1 +* 2``)
evaluates to its own source text, and :func:`lint` reports the problem with its offset.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import msgspec

__all__ = [
    "DEFAULT_CONTEXTS",
    "UNDEFINED",
    "ExpressionError",
    "ExpressionProblem",
    "Node",
    "evaluate",
    "has_expressions",
    "is_truthy",
    "lint",
    "parse",
    "render",
    "render_deep",
    "to_text",
    "uses_always",
]


class _Undefined:
    """The type of :data:`UNDEFINED`: JavaScript's ``undefined``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"  # copies and pickles stay the singleton


UNDEFINED: Final = _Undefined()
"""JavaScript ``undefined``: what a missing key or path evaluates to. Falsy."""

DEFAULT_CONTEXTS: frozenset[str] = frozenset(
    {"inputs", "needs", "matrix", "sessions", "org", "always"}
)
"""Context names that ``${name...`` interpolates and that are paths even when absent."""

_SCHEMA: Final = "$schema"
_MAX_DEPTH: Final = 64
_SAFE_INTEGER: Final = 2.0**53
_NAN: Final = math.nan
_INF: Final = math.inf


class ExpressionError(ValueError):
    """A malformed expression; ``offset`` is 0-based in the text given to :func:`parse`."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.message = message
        self.offset = offset


class ExpressionProblem(msgspec.Struct, frozen=True):
    """A malformed expression found by :func:`lint`."""

    message: str
    offset: int
    """0-based character offset of the problem in the text given to :func:`lint`."""
    expression: str
    """The expression's source (for an unterminated one: the rest of its line)."""


# --- values ---------------------------------------------------------------------------------


def is_truthy(value: Any) -> bool:
    """JavaScript truthiness: ``undefined``, ``null``, ``false``, 0, NaN and ``""`` are falsy."""
    if value is UNDEFINED or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return bool(value)
    return True


def to_text(value: Any) -> str:
    """How a value reads when spliced into a string: ``undefined``/``null`` are empty, booleans
    ``true``/``false``, numbers as JavaScript prints them, lists and mappings compact JSON."""
    if value is UNDEFINED or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(_jsonable(value), separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON.stringify sees it: integral floats as ints, NaN/Infinity and
    ``undefined`` in lists as null, ``undefined`` members of mappings left out."""
    if value is UNDEFINED:
        return None
    if isinstance(value, float):
        return _number(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, str) else _js_string(k): _jsonable(v)
            for k, v in value.items()
            if v is not UNDEFINED
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int):
        return value
    return str(value)


def _format_number(value: float) -> str:
    """JavaScript ``Number.prototype.toString()`` of a double."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # value == int(digits) * 10 ** (n - len(digits)): the point sits n digits into ``digits``
    n = int(exponent or 0) - len(fraction) + len(digits)
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        power = n - 1
        exp = f"e{'+' if power >= 0 else '-'}{abs(power)}"
        text = digits + exp if k == 1 else f"{digits[0]}.{digits[1:]}{exp}"
    return sign + text


def _number(value: float) -> int | float:
    """A double as the API returns it: an ``int`` when integral, finite and exactly
    representable (``16.0`` -> 16), else the float."""
    if value.is_integer() and -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
        return int(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_NUMERIC_STRING = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_RADIX_STRING = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)", re.ASCII)
_RADIX = {"x": 16, "o": 8, "b": 2}


def _string_to_number(text: str) -> float:
    """JavaScript ``Number(string)``: blank is 0, anything not numeric is NaN."""
    text = text.strip()
    if not text:
        return 0.0
    if _NUMERIC_STRING.fullmatch(text):
        return float(text)
    if text in ("Infinity", "+Infinity", "-Infinity"):
        return -_INF if text[0] == "-" else _INF
    if _RADIX_STRING.fullmatch(text):
        return float(int(text[2:], _RADIX[text[1].lower()]))
    return _NAN


def _to_number(value: Any) -> float:
    """JavaScript ``Number(value)``."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return _INF if value > 0 else -_INF
    if isinstance(value, float):
        return value
    if value is None:
        return 0.0
    if isinstance(value, str):
        return _string_to_number(value)
    if isinstance(value, list | tuple | Mapping):
        return _to_number(_to_primitive(value))
    return _NAN


def _to_primitive(value: Any) -> Any:
    """JavaScript ``ToPrimitive``: a list becomes its comma-joined text, a mapping
    ``"[object Object]"``; anything else is itself."""
    if isinstance(value, list | tuple | Mapping):
        return _js_string(value)
    return value


def _js_string(value: Any) -> str:
    """JavaScript ``String(value)`` (what ``+`` concatenates), unlike :func:`to_text`."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return ",".join("" if v is None or v is UNDEFINED else _js_string(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return to_text(value)


def _kind(value: Any) -> str:
    """JavaScript ``typeof``, with ``null`` apart."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _strict_equal(a: Any, b: Any) -> bool:
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "object":
        return a is b
    return bool(a == b)


def _loose_equal(a: Any, b: Any) -> bool:
    """JavaScript ``==`` (IsLooselyEqual)."""
    ka, kb = _kind(a), _kind(b)
    if ka == kb:
        return _strict_equal(a, b)
    nullish = ("undefined", "null")
    if ka in nullish or kb in nullish:
        return ka in nullish and kb in nullish
    if ka == "boolean":
        return _loose_equal(1 if a else 0, b)
    if kb == "boolean":
        return _loose_equal(a, 1 if b else 0)
    if ka == "object":
        return _loose_equal(_to_primitive(a), b)
    if kb == "object":
        return _loose_equal(a, _to_primitive(b))
    return _to_number(a) == _to_number(b)  # a number and a string


def _member(value: Any, key: Any) -> Any:
    """``value[key]``: a mapping's key, a list's or string's index (or ``length``); else
    ``undefined``. Never raises."""
    if isinstance(value, Mapping):
        if not isinstance(key, str):
            try:
                if key in value:
                    return value[key]
            except TypeError:  # unhashable
                pass
            key = _js_string(key)
        found = value.get(key, UNDEFINED)
        if found is UNDEFINED and key.isascii() and key.isdigit():
            found = value.get(int(key), UNDEFINED)  # YAML keys may be ints
        return found
    if isinstance(value, str | list | tuple):
        if key == "length":
            return len(value)
        index = _index(key)
        if index is not None and index < len(value):
            return value[index]
    return UNDEFINED


def _index(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 0 else None
    if isinstance(key, float):
        return int(key) if key.is_integer() and key >= 0 else None
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    return None


# --- operators ------------------------------------------------------------------------------


def _add(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        return _number(_to_number(a) + _to_number(b))
    a, b = _to_primitive(a), _to_primitive(b)
    if isinstance(a, str) or isinstance(b, str):
        return _js_string(a) + _js_string(b)
    return _number(_to_number(a) + _to_number(b))


def _subtract(a: Any, b: Any) -> Any:
    return _number(_to_number(a) - _to_number(b))


def _multiply(a: Any, b: Any) -> Any:
    return _number(_to_number(a) * _to_number(b))


def _quotient(x: float, y: float) -> float:
    if y == 0:
        if x == 0 or math.isnan(x):
            return _NAN
        return math.copysign(_INF, x) * math.copysign(1.0, y)
    return x / y


def _divide(a: Any, b: Any) -> Any:
    return _number(_quotient(_to_number(a), _to_number(b)))


def _floor_divide(a: Any, b: Any) -> Any:
    quotient = _quotient(_to_number(a), _to_number(b))
    return _number(float(math.floor(quotient)) if math.isfinite(quotient) else quotient)


def _remainder(a: Any, b: Any) -> Any:
    x, y = _to_number(a), _to_number(b)
    if y == 0 or math.isnan(x) or math.isnan(y) or math.isinf(x):
        return _NAN
    if math.isinf(y):
        return _number(x)
    return _number(math.fmod(x, y))


def _power(a: Any, b: Any) -> Any:
    x, y = _to_number(a), _to_number(b)
    if math.isnan(y):
        return _NAN
    if y == 0:
        return 1
    if math.isnan(x) or (abs(x) == 1 and math.isinf(y)):
        return _NAN
    odd = y.is_integer() and y % 2 == 1
    try:
        return _number(math.pow(x, y))
    except OverflowError:
        return -_INF if x < 0 and odd else _INF
    except ValueError:  # 0 to a negative power, or a negative base to a fractional one
        if x == 0:
            return -_INF if math.copysign(1.0, x) < 0 and odd else _INF
        return _NAN


def _relational(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """JavaScript ``<`` and friends: strings compare as strings, anything else as numbers,
    and NaN compares false."""

    def apply(a: Any, b: Any) -> bool:
        a, b = _to_primitive(a), _to_primitive(b)
        if isinstance(a, str) and isinstance(b, str):
            return compare(a, b)
        x, y = _to_number(a), _to_number(b)
        return not (math.isnan(x) or math.isnan(y)) and compare(x, y)

    return apply


def _contains(item: Any, container: Any) -> bool:
    if isinstance(container, Mapping):
        return _member(container, item) is not UNDEFINED
    if isinstance(container, list | tuple):
        return any(_strict_equal(item, v) for v in container)
    if isinstance(container, str) and (isinstance(item, str) or _is_number(item)):
        return _js_string(item) in container
    return False


_BINARY: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "==": _loose_equal,
    "!=": lambda a, b: not _loose_equal(a, b),
    "===": _strict_equal,
    "!==": lambda a, b: not _strict_equal(a, b),
    "<": _relational(operator.lt),
    ">": _relational(operator.gt),
    "<=": _relational(operator.le),
    ">=": _relational(operator.ge),
    "in": _contains,
    "!in": lambda a, b: not _contains(a, b),
    "+": _add,
    "-": _subtract,
    "*": _multiply,
    "/": _divide,
    "//": _floor_divide,
    "%": _remainder,
    "**": _power,
}


# --- the syntax tree ------------------------------------------------------------------------


class Node:
    """A parsed expression. Nodes are immutable and shared (parses are cached)."""

    __slots__ = ()

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        """The node's value in ``contexts``."""
        raise NotImplementedError

    def children(self) -> tuple[Node, ...]:
        return ()

    def walk(self) -> Iterator[Node]:
        """This node and every node below it."""
        yield self
        for child in self.children():
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class _Literal(Node):
    value: Any

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _Word(Node):
    """A bare word: a context path when ``head`` names a context, else its own text."""

    text: str
    head: str
    path: tuple[str, ...]
    negative: bool

    def resolve(self, contexts: Mapping[str, Any]) -> tuple[bool, Any]:
        """(whether the word is a context path, its value)."""
        head = self.head
        if head == "always" and not self.path:
            return True, True
        if head in contexts and head != _SCHEMA:
            value = contexts[head]
        elif head in DEFAULT_CONTEXTS:
            value = UNDEFINED
        else:
            return False, None
        for name in self.path:
            value = _member(value, name)
        return True, value

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        is_path, value = self.resolve(contexts)
        if not is_path:
            return self.text
        return _number(-_to_number(value)) if self.negative else value


@dataclass(frozen=True, slots=True)
class _SchemaReference(Node):
    """``../name.attr`` (a sibling input's schema) or ``.attr`` (the current input's)."""

    sibling: bool
    path: tuple[str, ...]

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        schema = contexts.get(_SCHEMA)
        if not isinstance(schema, Mapping):
            return UNDEFINED
        if self.sibling:
            value = schema.get("siblings", schema.get("inputs", UNDEFINED))
        else:
            value = schema.get("self", UNDEFINED)
        for name in self.path:
            value = _member(value, name)
        return value


@dataclass(frozen=True, slots=True)
class _Array(Node):
    items: tuple[Node, ...]

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        return [item.evaluate(contexts) for item in self.items]

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class _Object(Node):
    keys: tuple[str, ...]
    values: tuple[Node, ...]

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        return {k: v.evaluate(contexts) for k, v in zip(self.keys, self.values, strict=True)}

    def children(self) -> tuple[Node, ...]:
        return self.values


@dataclass(frozen=True, slots=True)
class _Not(Node):
    operand: Node

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        return not is_truthy(self.operand.evaluate(contexts))

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class _Negate(Node):
    operand: Node

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        return _number(-_to_number(self.operand.evaluate(contexts)))

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class _Binary(Node):
    operator: str
    left: Node
    right: Node

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        return _BINARY[self.operator](self.left.evaluate(contexts), self.right.evaluate(contexts))

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class _Logical(Node):
    """``&&``, ``||`` and ``??``: short-circuit, the result is one of the operands."""

    operator: str
    left: Node
    right: Node

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        left = self.left.evaluate(contexts)
        if self.operator == "&&":
            done = not is_truthy(left)
        elif self.operator == "||":
            done = is_truthy(left)
        else:
            done = left is not None and left is not UNDEFINED
        return left if done else self.right.evaluate(contexts)

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class _Conditional(Node):
    test: Node
    then: Node
    otherwise: Node

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        chosen = self.then if is_truthy(self.test.evaluate(contexts)) else self.otherwise
        return chosen.evaluate(contexts)

    def children(self) -> tuple[Node, ...]:
        return (self.test, self.then, self.otherwise)


@dataclass(frozen=True, slots=True)
class _Member(Node):
    """``target.a.b`` after a non-word target (``(x).a``, ``[1, 2].length``)."""

    target: Node
    path: tuple[str, ...]

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        value = self.target.evaluate(contexts)
        for name in self.path:
            value = _member(value, name)
        return value

    def children(self) -> tuple[Node, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class _Index(Node):
    """``target[key]`` and ``target get key``; with a form schema, ``inputs[name]`` and
    ``inputs.name[attr]`` (a bare word in brackets) read the schema instead."""

    target: Node
    key: Node
    brackets: bool

    def evaluate(self, contexts: Mapping[str, Any]) -> Any:
        target, key = self.target, self.key
        if (
            self.brackets
            and _SCHEMA in contexts
            and isinstance(target, _Word)
            and isinstance(key, _Word)
            and target.head == "inputs"
            and not target.negative
            and not key.resolve(contexts)[0]
        ):
            return _schema_attribute(contexts[_SCHEMA], target.path, key.text)
        return _member(target.evaluate(contexts), key.evaluate(contexts))

    def children(self) -> tuple[Node, ...]:
        return (self.target, self.key)


def _schema_attribute(schema: Any, names: tuple[str, ...], attribute: str) -> Any:
    """The ``attribute`` of the schema of input ``names`` (a group's children are in its
    ``items``); with no names, the schema of the input called ``attribute``."""
    value = _member(schema, "inputs")
    for position, name in enumerate(names):
        value = _member(value if position == 0 else _member(value, "items"), name)
    return _member(value, attribute)


# --- tokens ---------------------------------------------------------------------------------

_PUNCTUATION: Final = frozenset("()[]{},:")
_WORD_END: Final = frozenset("()[]{},'\"")
_OPERATORS: Final = frozenset({*_BINARY, "&&", "||", "??", "?", "!", "get"})
_OPERATOR_CHARACTERS: Final = frozenset("+-*/%<>=!&|?")
_KEYWORDS: Final[dict[str, Any]] = {
    "true": True,
    "false": False,
    "null": None,
    "undefined": UNDEFINED,
}
_NUMBER: Final = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """``word``, ``op``, ``string``, ``punct``, ``not`` (a ``!`` glued to a word) or ``end``."""
    text: str
    """The source text; for a string, its decoded value."""
    offset: int


def _is_name_character(character: str) -> bool:
    return character.isalnum() or character in "_-$"


def _read_string(source: str, start: int) -> tuple[str, int]:
    """The decoded string literal at ``start`` and the offset after it."""
    quote, position = source[start], start + 1
    parts: list[str] = []
    while position < len(source):
        character = source[position]
        if character == quote:
            return "".join(parts), position + 1
        if character == "\\" and position + 1 < len(source):
            escaped = source[position + 1]
            position += 2
            if escaped in ("u", "x"):
                width = 4 if escaped == "u" else 2
                code = source[position : position + width]
                if len(code) == width and all(c in _HEX for c in code):
                    parts.append(chr(int(code, 16)))
                    position += width
                    continue
            parts.append(_ESCAPES.get(escaped, escaped))
            continue
        parts.append(character)
        position += 1
    raise ExpressionError("unterminated string", start)


def _word_end(source: str, start: int) -> int:
    position, length = start, len(source)
    while position < length:
        character = source[position]
        if character.isspace() or character in _WORD_END:
            break
        if character == ":":
            after = source[position + 1 : position + 2]
            if not after or after.isspace() or after in _WORD_END:
                break
        position += 1
    return position


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position, length = 0, len(source)
    while position < length:
        character = source[position]
        if character.isspace():
            position += 1
        elif character in "'\"":
            value, end = _read_string(source, position)
            tokens.append(_Token("string", value, position))
            position = end
        elif character in _PUNCTUATION:
            tokens.append(_Token("punct", character, position))
            position += 1
        else:
            end = _word_end(source, position)
            word = source[position:end]
            if word in _OPERATORS:
                tokens.append(_Token("op", word, position))
            elif character == "!" and word[1] != "=":
                tokens.append(_Token("not", "!", position))  # `!x`: the rest is tokenized next
                end = position + 1
            else:
                tokens.append(_Token("word", word, position))
            position = end
    tokens.append(_Token("end", "", length))
    return tokens


# --- the parser -----------------------------------------------------------------------------

_LEVELS: Final[tuple[frozenset[str], ...]] = (
    frozenset({"||", "??"}),
    frozenset({"&&"}),
    frozenset({"==", "!=", "===", "!=="}),
    frozenset({"<", ">", "<=", ">=", "in", "!in"}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "//", "%"}),
)
_LOGICAL: Final = frozenset({"&&", "||", "??"})
_CLOSING: Final = {"(": ")", "[": "]", "{": "}"}


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end"
    if token.kind == "string":
        return f"the string {token.text!r}"
    return repr(token.text)


class _Parser:
    """Recursive descent over the tokens of one expression; see the module docstring."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.position = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.position]

    def advance(self) -> _Token:
        token = self.tokens[self.position]
        if token.kind != "end":
            self.position += 1
        return token

    def at(self, kind: str, text: str) -> bool:
        token = self.tokens[self.position]
        return token.kind == kind and token.text == text

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ExpressionError("the expression is nested too deeply", self.peek().offset)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExpressionError("empty expression", 0)
        node = self.expression()
        token = self.peek()
        if token.kind != "end":
            raise self.after_operand(token)
        return node

    def after_operand(self, token: _Token) -> ExpressionError:
        """The error for ``token`` where an operator or the end was expected."""
        if token.kind == "word" and set(token.text) <= _OPERATOR_CHARACTERS:
            return ExpressionError(f"unknown operator {token.text!r}", token.offset)
        if token.kind == "punct" and token.text in ")]}":
            return ExpressionError(f"unbalanced {token.text!r}", token.offset)
        if token.kind in ("punct", "op", "not"):
            return ExpressionError(f"unexpected {token.text!r}", token.offset)
        return ExpressionError(
            f"expected an operator before {_describe(token)} (operators need spaces around them)",
            token.offset,
        )

    def expression(self) -> Node:
        self.nest()
        node = self.binary(0)
        if self.at("op", "?"):
            question = self.advance()
            then = self.expression()
            if not self.at("punct", ":"):
                token = self.peek()
                if token.kind == "end":
                    raise ExpressionError("'?' without its ':'", question.offset)
                raise ExpressionError(f"expected ':' before {_describe(token)}", token.offset)
            self.advance()
            node = _Conditional(node, then, self.expression())
        self.depth -= 1
        return node

    def binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.power()
        node = self.binary(level + 1)
        operators = _LEVELS[level]
        while (token := self.peek()).kind == "op" and token.text in operators:
            self.advance()
            right = self.binary(level + 1)
            if token.text in _LOGICAL:
                node = _Logical(token.text, node, right)
            else:
                node = _Binary(token.text, node, right)
        return node

    def power(self) -> Node:
        base = self.unary()
        if not self.at("op", "**"):
            return base
        self.advance()
        self.nest()
        exponent = self.power()
        self.depth -= 1
        return _Binary("**", base, exponent)

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "not" or (token.kind == "op" and token.text in ("!", "-")):
            self.advance()
            self.nest()
            operand = self.unary()
            self.depth -= 1
            return _Negate(operand) if token.text == "-" else _Not(operand)
        return self.postfix(self.primary(), with_get=True)

    def postfix(self, node: Node, *, with_get: bool) -> Node:
        while True:
            token = self.peek()
            if token.kind == "punct" and token.text == "[":
                self.advance()
                key = self.expression()
                self.close(token)
                node = _Index(node, key, brackets=True)
            elif token.kind == "word" and token.text.startswith(".") and len(token.text) > 1:
                self.advance()
                node = _Member(node, tuple(token.text[1:].split(".")))
            elif with_get and token.kind == "op" and token.text == "get":
                self.advance()
                key = self.postfix(self.primary(), with_get=False)
                node = _Index(node, key, brackets=False)
            else:
                return node

    def close(self, opening: _Token) -> None:
        closing = _CLOSING[opening.text]
        token = self.peek()
        if token.kind == "punct" and token.text == closing:
            self.advance()
            return
        if token.kind == "end":
            raise ExpressionError(f"unclosed {opening.text!r}", opening.offset)
        raise ExpressionError(
            f"expected {closing!r} (for the {opening.text!r} at offset {opening.offset})"
            f" before {_describe(token)}",
            token.offset,
        )

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "string":
            return _Literal(token.text)
        if token.kind == "word":
            return _word(token.text)
        if token.kind == "punct" and token.text == "(":
            node = self.expression()
            self.close(token)
            return node
        if token.kind == "punct" and token.text == "[":
            return self.array(token)
        if token.kind == "punct" and token.text == "{":
            return self.object(token)
        if token.kind == "end":
            if self.position == 0:
                raise ExpressionError("empty expression", 0)
            previous = self.tokens[self.position - 1]
            raise ExpressionError(f"missing operand after {previous.text!r}", previous.offset)
        if token.kind == "op":
            raise ExpressionError(f"operator {token.text!r} without a left operand", token.offset)
        raise ExpressionError(f"unexpected {token.text!r}", token.offset)

    def array(self, opening: _Token) -> Node:
        self.nest()
        items: list[Node] = []
        while not self.at("punct", "]"):
            if self.peek().kind == "end":
                break
            items.append(self.expression())
            if not self.at("punct", ","):
                break
            self.advance()
        self.close(opening)
        self.depth -= 1
        return _Array(tuple(items))

    def object(self, opening: _Token) -> Node:
        self.nest()
        keys: list[str] = []
        values: list[Node] = []
        while not self.at("punct", "}"):
            key = self.peek()
            if key.kind == "end":
                break
            if key.kind not in ("string", "word", "op"):
                raise ExpressionError(f"expected a key, found {_describe(key)}", key.offset)
            self.advance()
            if not self.at("punct", ":"):
                found = self.peek()
                raise ExpressionError(f"expected ':' before {_describe(found)}", found.offset)
            self.advance()
            keys.append(key.text)
            values.append(self.expression())
            if not self.at("punct", ","):
                break
            self.advance()
        self.close(opening)
        self.depth -= 1
        return _Object(tuple(keys), tuple(values))


def _word(text: str) -> Node:
    if text in _KEYWORDS:
        return _Literal(_KEYWORDS[text])
    if _NUMBER.fullmatch(text):
        if text.lstrip("-").isdigit():
            value = int(text)
            return _Literal(_number(float(value)) if abs(value) > _SAFE_INTEGER else value)
        return _Literal(_number(float(text)))
    if text.startswith("../") and len(text) > 3 and _is_name_character(text[3]):
        return _SchemaReference(sibling=True, path=tuple(text[3:].split(".")))
    if text.startswith(".") and len(text) > 1 and _is_name_character(text[1]):
        return _SchemaReference(sibling=False, path=tuple(text[1:].split(".")))
    negative = text.startswith("-") and len(text) > 1
    head, *path = (text[1:] if negative else text).split(".")
    return _Word(text, head, tuple(path), negative)


@lru_cache(maxsize=4096)
def _parsed(source: str) -> Node | ExpressionError:
    try:
        return _Parser(source).parse()
    except ExpressionError as error:
        return error
    except RecursionError:
        return ExpressionError("the expression is nested too deeply", 0)


def parse(source: str) -> Node:
    """The syntax tree of ``source``, a bare expression (no delimiters). Raises
    :class:`ExpressionError` when it is malformed. Parses are cached."""
    parsed = _parsed(source)
    if isinstance(parsed, ExpressionError):
        raise ExpressionError(parsed.message, parsed.offset)
    return parsed


def evaluate(source: str, contexts: Mapping[str, Any]) -> Any:
    """The value of the bare expression ``source`` in ``contexts``. Never raises: a malformed
    expression evaluates to its own (stripped) source text."""
    parsed = _parsed(source)
    if isinstance(parsed, ExpressionError):
        return source.strip()
    try:
        return parsed.evaluate(contexts)
    except Exception:  # a safety net (deep trees, odd context objects): never raise
        return source.strip()


# --- delimiters -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    """One delimited expression in a text."""

    start: int
    """Offset of the opening delimiter."""
    inner_start: int
    inner_end: int
    end: int
    """Offset after the closing delimiter (the text's length when unterminated)."""
    opener: str
    terminated: bool


_OPENING: Final = frozenset("([{")
_MATCHING: Final = {")": "(", "]": "[", "}": "{"}


def _skip_string(text: str, start: int) -> int | None:
    """The offset after the quoted string at ``start``; None when it does not end."""
    quote, position = text[start], start + 1
    while position < len(text):
        if text[position] == "\\":
            position += 2
        elif text[position] == quote:
            return position + 1
        else:
            position += 1
    return None


def _find_closer(text: str, start: int, closer: str) -> int | None:
    """Where ``closer`` ends the expression starting at ``start``: outside quotes and outside
    brackets the expression opened; failing that outside quotes only; failing that anywhere."""
    stack: list[str] = []
    position = start
    while position < len(text):
        character = text[position]
        if character in "'\"":
            after = _skip_string(text, position)
            if after is None:
                break
            position = after
            continue
        if character in _OPENING:
            stack.append(character)
        elif character in _MATCHING:
            if stack and stack[-1] == _MATCHING[character]:
                stack.pop()
            elif text.startswith(closer, position):
                return position
        position += 1
    position = start
    while position < len(text):
        character = text[position]
        if character in "'\"":
            after = _skip_string(text, position)
            if after is None:
                break
            position = after
            continue
        if text.startswith(closer, position):
            return position
        position += 1
    found = text.find(closer, start)
    return None if found < 0 else found


_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _opens_expression(text: str, position: int, known: frozenset[str]) -> bool:
    """Whether the ``${`` at ``position`` opens a single-brace expression (not shell text)."""
    after = text[position + 2 : position + 3]
    if after.isspace():
        return True
    match = _IDENTIFIER.match(text, position + 2)
    if match is None or match.group() not in known:
        return False
    following = text[match.end() : match.end() + 1]
    return following in (".", "[", "}") or following.isspace()


@lru_cache(maxsize=4096)
def _scan(text: str, known: frozenset[str]) -> tuple[_Span, ...]:
    spans: list[_Span] = []
    position = 0
    while (brace := text.find("{", position)) >= 0:
        dollar = brace > position and text[brace - 1] == "$"
        double = text.startswith("{", brace + 1)
        if dollar and double:
            start, opener, closer = brace - 1, "${{", "}}"
        elif double:
            start, opener, closer = brace, "{{", "}}"
        elif dollar and _opens_expression(text, brace - 1, known):
            start, opener, closer = brace - 1, "${", "}"
        else:
            position = brace + 1
            continue
        inner_start = start + len(opener)
        end = _find_closer(text, inner_start, closer)
        if end is None:
            spans.append(_Span(start, inner_start, len(text), len(text), opener, False))
            position = inner_start
        else:
            spans.append(_Span(start, inner_start, end, end + len(closer), opener, True))
            position = end + len(closer)
    return tuple(spans)


def _spans(text: str, known_contexts: Collection[str]) -> tuple[_Span, ...]:
    if "{" not in text:
        return ()
    known = known_contexts if isinstance(known_contexts, frozenset) else frozenset(known_contexts)
    return _scan(text, known)


def render(
    text: str, contexts: Mapping[str, Any], *, known_contexts: Collection[str] = DEFAULT_CONTEXTS
) -> Any:
    """``text`` with its expressions evaluated in ``contexts``. A text that is exactly one
    expression (surrounding whitespace aside) gives the expression's typed value; otherwise each
    value is spliced in with :func:`to_text`. Text without expressions comes back as it is.
    Never raises."""
    spans = [span for span in _spans(text, known_contexts) if span.terminated]
    if not spans:
        return text
    first = spans[0]
    if len(spans) == 1 and not text[: first.start].strip() and not text[first.end :].strip():
        return evaluate(text[first.inner_start : first.inner_end], contexts)
    parts: list[str] = []
    position = 0
    for span in spans:
        parts.append(text[position : span.start])
        parts.append(to_text(evaluate(text[span.inner_start : span.inner_end], contexts)))
        position = span.end
    parts.append(text[position:])
    return "".join(parts)


def render_deep(
    value: Any, contexts: Mapping[str, Any], *, known_contexts: Collection[str] = DEFAULT_CONTEXTS
) -> Any:
    """:func:`render` every string inside nested lists and mappings (keys are left alone);
    other values come back as they are."""
    if isinstance(value, str):
        return render(value, contexts, known_contexts=known_contexts)
    if isinstance(value, Mapping):
        return {
            k: render_deep(v, contexts, known_contexts=known_contexts) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        rendered = [render_deep(v, contexts, known_contexts=known_contexts) for v in value]
        return rendered if isinstance(value, list) else tuple(rendered)
    return value


def has_expressions(text: str, *, known_contexts: Collection[str] = DEFAULT_CONTEXTS) -> bool:
    """Whether ``text`` holds at least one delimited expression."""
    return any(span.terminated for span in _spans(text, known_contexts))


def lint(
    text: str, *, known_contexts: Collection[str] = DEFAULT_CONTEXTS
) -> list[ExpressionProblem]:
    """Every malformed or unterminated expression in ``text`` (which has delimiters), with
    offsets into ``text``."""
    problems: list[ExpressionProblem] = []
    for span in _spans(text, known_contexts):
        if not span.terminated:
            line_end = text.find("\n", span.start)
            rest = text[span.start : None if line_end < 0 else line_end]
            closer = "}}" if span.opener.endswith("{{") else "}"
            problems.append(
                ExpressionProblem(f"{span.opener!r} without a closing {closer!r}", span.start, rest)
            )
            continue
        source = text[span.inner_start : span.inner_end]
        parsed = _parsed(source)
        if isinstance(parsed, ExpressionError):
            problems.append(
                ExpressionProblem(parsed.message, span.inner_start + parsed.offset, source.strip())
            )
    return problems


def uses_always(text: str) -> bool:
    """Whether the condition ``text`` refers to ``always`` (``{{ always }}``, or ``always`` in a
    larger expression, or the bare word): its step or job runs after failures too."""
    if text.strip() == "always":
        return True
    for span in _spans(text, DEFAULT_CONTEXTS):
        if not span.terminated:
            continue
        parsed = _parsed(text[span.inner_start : span.inner_end])
        if isinstance(parsed, ExpressionError):
            continue
        for node in parsed.walk():
            if isinstance(node, _Word) and node.text == "always":
                return True
    return False
