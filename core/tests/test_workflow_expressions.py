"""The workflow expression language (spec §6): operators, delimiters, quirks, contexts."""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import pytest

from corral_core.workflows.expressions import (
    DEFAULT_CONTEXTS,
    UNDEFINED,
    ExpressionError,
    ExpressionProblem,
    evaluate,
    has_expressions,
    is_truthy,
    lint,
    parse,
    render,
    render_deep,
    to_text,
    uses_always,
)

# Every operator example of spec §6.2, with the exact result (and its type).
OPERATOR_EXAMPLES: list[tuple[str, Any]] = [
    ("true && 'truthy value'", "truthy value"),
    ("'truthy value' && true", True),
    ("0 && true", 0),
    ("'truthy value' && false", False),
    ("false || 'any value'", "any value"),
    ("'truthy value' || 'any value'", "truthy value"),
    ("1 == true", True),
    ("1 != true", False),
    ("1 === true", False),
    ("1 !== true", True),
    ("'a' > 'b'", False),
    ("1.5 < 1", False),
    ("1.0 >= 1", True),
    ("false <= true", True),
    ("'a' + 'b'", "ab"),
    ("1 + 1.5", 2.5),
    ("1 - 1.5", -0.5),
    ("4 * 4", 16),
    ("9 / 4", 2.25),
    ("2 ** 4", 16),
    ("4 // 3", 1),
    ("'hello' ?? 'default'", "hello"),
    ("undefined ?? 'default'", "default"),
    ('["a", "b"] get 1', "b"),
    ('{"a": "c", "b": "d"} get a', "c"),
    ("'ab' get 0", "a"),
    ('"a" in ["a", "b"]', True),
    ('"b" in {"a": "c", "b": "d"}', True),
    ('"d" in {"a": "c", "b": "d"}', False),
    ("!false", True),
    ('"hello" !in ["hello", "goodbye"]', False),
    ("true && (true || true) && false", False),
    ("10 / (2 + 8)", 1),
    ("true && false ? 'a' : 'b'", "b"),
    ("'truthy value' ? 'a' : 'b'", "a"),
]


@pytest.mark.parametrize(("source", "expected"), OPERATOR_EXAMPLES)
def test_operator_examples_of_the_guide(source: str, expected: Any) -> None:
    result = evaluate(source, {})
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("source", "expected"), OPERATOR_EXAMPLES)
@pytest.mark.parametrize("delimiters", [("${ ", " }"), ("${{ ", " }}"), ("{{ ", " }}")])
def test_every_delimiter_style_gives_the_same_typed_value(
    source: str, expected: Any, delimiters: tuple[str, str]
) -> None:
    opening, closing = delimiters
    result = render(f"{opening}{source}{closing}", {})
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),  # * binds tighter than +
        ("2 * 3 ** 2", 18),  # ** tighter than *
        ("2 ** 3 ** 2", 512),  # ** is right-associative
        ("10 - 4 - 3", 3),  # - is left-associative
        ("1 + 2 == 3", True),  # arithmetic tighter than equality
        ("1 < 2 == true", True),  # relational tighter than equality
        ("false || true && false", False),  # && tighter than ||
        ("null ?? false || 'x'", "x"),
        ("true ? 1 : false ? 2 : 3", 1),  # the ternary is right-associative
        ("false ? 1 : false ? 2 : 3", 3),
        ("!true || true", True),  # unary ! tighter than ||
        ('["a", "b"] get 0 + "c"', "ac"),  # get tighter than +
        ("-2 * 3", -6),
        ("- (2 + 3)", -5),
        ("!(1 == 1)", False),
        ("!!'x'", True),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("-7 // 2", -4),
        ("1 + '2'", "12"),
        ("'3' * '4'", 12),
        ("'a' + undefined", "aundefined"),
        ("'a' + null", "anull"),
        ("'a' + [1, 2]", "a1,2"),
        ("true + 1", 2),
        ("null + 1", 1),
        ("'1' == 1", True),
        ("'1' === 1", False),
        ("null == undefined", True),
        ("null === undefined", False),
        ("null == 0", False),
        ("'' == 0", True),
        ("[1] == 1", True),
        ("'b' > 'a'", True),
        ("'10' < '9'", True),  # strings compare as strings
        ("'10' < 9", False),  # otherwise as numbers
        ("undefined < 1", False),
        ("'ell' in 'hello'", True),
        ("1 in [1, 2]", True),
        ("true in [1, 2]", False),  # membership is strict
        ("[1, 2, 3].length", 3),
        ("[1, [2, 3]][1][0]", 2),
        ('{"a": {"b": 1}}.a.b', 1),
        ('{"a": {"b": 1}} get a get b', 1),
        ("{a: 1, 'b c': 2} get a", 1),
        ("[1, 2, 3] get 5", UNDEFINED),
        ("'ab' get 5", UNDEFINED),
        ("1.2.3", "1.2.3"),
        ("-1.5", -1.5),
        ("2.0", 2),
        ("'it\\'s'", "it's"),
        ('"tab\\there"', "tab\there"),
        ("'\\u00e9'", "\u00e9"),
        ("null", None),
        ("undefined", UNDEFINED),
        ("[]", []),
        ("{}", {}),
        ("[1, 'a', true, null]", [1, "a", True, None]),
        ('{"a": [1, {"b": 2}], c: "d"}', {"a": [1, {"b": 2}], "c": "d"}),
    ],
)
def test_more_javascript_semantics(source: str, expected: Any) -> None:
    result = evaluate(source, {})
    assert result == expected
    assert type(result) is type(expected)


def test_division_by_zero_follows_javascript() -> None:
    assert evaluate("1 / 0", {}) == math.inf
    assert evaluate("-1 / 0", {}) == -math.inf
    assert math.isnan(evaluate("0 / 0", {}))
    assert math.isnan(evaluate("1 % 0", {}))
    assert math.isnan(evaluate("'x' * 2", {}))
    assert to_text(evaluate("1 / 0", {})) == "Infinity"
    assert to_text(evaluate("0 / 0", {})) == "NaN"
    assert evaluate("9 ** 9 ** 9", {}) == math.inf  # no huge integers


def test_loose_and_strict_equality_of_objects_is_identity() -> None:
    contexts = {"inputs": {"a": [1], "b": [1]}}
    assert evaluate("inputs.a == inputs.a", contexts) is True
    assert evaluate("inputs.a === inputs.a", contexts) is True
    assert evaluate("inputs.a == inputs.b", contexts) is False


# --- quirks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ 1 + 1 }}", 2),
        ("{{ 1+1 }}", "1+1"),
        ("{{ 2*3 }}", "2*3"),
        ("{{ a==b }}", "a==b"),
        ("{{ hello }}", "hello"),
        ("{{ -foo }}", "-foo"),
        ("{{ https://example.com/x }}", "https://example.com/x"),
    ],
)
def test_operators_need_spaces_and_bare_words_are_text(text: str, expected: Any) -> None:
    result = render(text, {})
    assert result == expected
    assert type(result) is type(expected)
    assert lint(text) == []


@pytest.mark.parametrize(
    ("source", "offset", "message"),
    [
        ("1 +", 2, "missing operand after '+'"),
        ("(1 + 2", 0, "unclosed '('"),
        ("1 +* 2", 2, "unknown operator '+*'"),
        ("1 + 2)", 5, "unbalanced ')'"),
        ("[1, 2", 0, "unclosed '['"),
        ("{'a' 1}", 5, "expected ':'"),
        ("'open", 0, "unterminated string"),
        ("a ? b", 2, "'?' without its ':'"),
        ("hello world", 6, "expected an operator"),
        ("* 2", 0, "without a left operand"),
        ("", 0, "empty expression"),
    ],
)
def test_a_malformed_expression_never_raises_and_evaluates_to_its_text(
    source: str, offset: int, message: str
) -> None:
    assert evaluate(f" {source} ", {}) == source
    assert render(f"{{{{ {source} }}}}", {}) == source
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert caught.value.offset == offset
    assert message in caught.value.message


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    source = "(" * 500 + "1" + ")" * 500
    assert evaluate(source, {}) == source
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse(source)
    assert evaluate("!" * 500 + "x", {}) == "!" * 500 + "x"


def test_lint_reports_where_the_problem_is() -> None:
    text = "echo {{ 1 + }} x"
    [problem] = lint(text)
    assert problem == ExpressionProblem("missing operand after '+'", 10, "1 +")
    assert text[problem.offset] == "+"
    assert text.index("{{") < problem.offset < text.index("}}")
    assert render(text, {}) == "echo 1 + x"


def test_lint_reports_every_problem_with_offsets_into_the_text() -> None:
    text = "a ${ (1 + 2 } b ${{ 1 +* 2 }} c {{ 1 + 1 }}"
    problems = lint(text)
    assert [(p.message, p.offset, p.expression) for p in problems] == [
        ("unclosed '('", text.index("("), "(1 + 2"),
        ("unknown operator '+*'", text.index("+*"), "1 +* 2"),
    ]


@pytest.mark.parametrize("opener", ["{{", "${{"])
def test_lint_reports_an_unterminated_opener(opener: str) -> None:
    text = f"echo ok\necho {opener} inputs.x\necho done"
    [problem] = lint(text)
    assert problem.offset == text.index(opener)
    assert problem.expression == f"{opener} inputs.x"
    assert "without a closing '}}'" in problem.message
    assert render(text, {"inputs": {"x": 1}}) == text
    assert not has_expressions(text)


def test_lint_is_quiet_for_good_text() -> None:
    assert lint("echo ${ inputs.x } $HOME ${HOME} {{ 'a}}b' }} ${{ [1, [2]] }}") == []
    assert lint("no expressions at all") == []


# --- delimiters and interpolation -----------------------------------------------------------

CONTEXTS: dict[str, Any] = {
    "inputs": {
        "x": "X",
        "port": 8080,
        "base_value": 10,
        "flag": False,
        "list": ["a", "b"],
        "obj": {"k": "v", "n": 1.5},
        "should-run": True,
        "username": "ann",
    },
    "needs": {"job1": {"outputs": {"PORT": "3001"}, "steps": {"s": {"outputs": {"V": "1.2"}}}}},
    "matrix": {"os": "ubuntu", "version": 2},
    "sessions": {"expose": "session-42"},
    "org": {"FOO": "bar"},
}


@pytest.mark.parametrize(
    "text",
    ["${ inputs.x }", "${{ inputs.x }}", "{{ inputs.x }}", "${inputs.x}", "{{inputs.x}}"],
)
def test_all_delimiter_styles_interpolate(text: str) -> None:
    assert render(text, CONTEXTS) == "X"
    assert render(f"a-{text}-b", CONTEXTS) == "a-X-b"
    assert has_expressions(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a-${ inputs.x }-b", "a-X-b"),
        ("echo ${matrix.os} v${matrix.version}", "echo ubuntu v2"),
        ("${ inputs.port }:${ inputs.x }", "8080:X"),
        ("echo ${ needs.job1.outputs.PORT }", "echo 3001"),
        ("${needs.job1.steps.s.outputs.V}", "1.2"),
        ("'{{ sessions.expose }}'", "'session-42'"),
        ("{{ org.FOO }}", "bar"),
        ("${ inputs.obj }", {"k": "v", "n": 1.5}),
        ("obj=${ inputs.obj }", 'obj={"k":"v","n":1.5}'),
        ("list=${ inputs.list }", 'list=["a","b"]'),
        ("${ inputs.flag } ${ inputs.port }", "false 8080"),
        ("${{ inputs.should-run }}", True),
        ("${{ inputs.list.1 }}", "b"),
        ("${{ inputs.list[0] }}", "a"),
        ("${{ inputs.obj[k] }}", "v"),  # a bare word in brackets is a key, without a schema
        ('${{ inputs.obj["n"] * 2 }}', 3),
        ("${{ !inputs.flag }}", True),
        ('${{ "~/path/to/directory/" + inputs.username }}', "~/path/to/directory/ann"),
        ("${{ inputs.port == 8080 ? 'yes' : 'no' }}", "yes"),
        ("${ inputs.x } and {{ inputs.x }} and ${{ inputs.x }}", "X and X and X"),
        ("{{ inputs.x }}{{ inputs.x }}", "XX"),
    ],
)
def test_rendering(text: str, expected: Any) -> None:
    result = render(text, CONTEXTS)
    assert result == expected
    assert type(result) is type(expected)


def test_a_whole_scalar_keeps_its_type() -> None:
    contexts = {"inputs": {"base_value": 10}}
    result = render("${{ inputs.base_value * 2 }}", contexts)
    assert result == 20 and type(result) is int
    assert render("  {{ inputs.base_value }}\n", contexts) == 10
    assert render("x{{ inputs.base_value * 2 }}", contexts) == "x20"
    assert render("${ 9 / 4 }", {}) == 2.25
    assert render("${ true }", {}) is True


def test_missing_paths_are_undefined_whole_and_empty_embedded() -> None:
    assert render("{{ inputs.nope }}", CONTEXTS) is UNDEFINED
    assert render("${ inputs.nope.deeper[0] }", CONTEXTS) is UNDEFINED
    assert render("echo ${ inputs.nope }!", CONTEXTS) == "echo !"
    assert render("{{ needs.other.outputs.X }}", {}) is UNDEFINED
    assert render("a{{ matrix.os }}b", {}) == "ab"  # a known context absent from the contexts
    assert evaluate("inputs.nope ?? 'fallback'", CONTEXTS) == "fallback"


def test_shell_text_reaches_the_shell_unchanged() -> None:
    run = 'echo $HOME ${HOME} ${VAR:-x} ${#arr[@]} ${!ref} "$OUTPUTS" > $OUTPUTS ${inputs:-d}'
    assert render(run, CONTEXTS) == run
    assert not has_expressions(run)
    assert lint(run) == []
    mixed = "echo PORT=${ inputs.port } >> $OUTPUTS; cd ${HOME}/${inputs.x}"
    assert render(mixed, CONTEXTS) == "echo PORT=8080 >> $OUTPUTS; cd ${HOME}/X"


def test_known_contexts_decide_which_dollar_braces_are_expressions() -> None:
    assert render("${env.X}", {"env": {"X": "1"}}) == "${env.X}"
    assert render("${env.X}", {"env": {"X": "1"}}, known_contexts={"env"}) == "1"
    assert render("${ env.X }", {"env": {"X": "1"}}) == "1"  # a space always opens one
    assert not has_expressions("${inputs.x}", known_contexts=())
    assert has_expressions("{{ anything }}", known_contexts=())
    assert sorted(DEFAULT_CONTEXTS) == ["always", "inputs", "matrix", "needs", "org", "sessions"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{{ {"a": "c", "b": "d"} get a }}', "c"),
        ('{{ {"a": {"b": {"c": 1}}} }}', {"a": {"b": {"c": 1}}}),
        ('x{{ {"a": {"b": 1}}.a.b }}y', "x1y"),
        ('${ {"a": 1} get a }', 1),
        ("${{ [[1], [2, [3]]] }}", [[1], [2, [3]]]),
        ("{{ 'a}}b' }}", "a}}b"),
        ('{{ "}" + "{" }}', "}{"),
        ("${ '}' }", "}"),
        ("<{{ 'x' }}>", "<x>"),
    ],
)
def test_delimiters_inside_quotes_and_brackets_do_not_close(text: str, expected: Any) -> None:
    assert render(text, {}) == expected
    assert lint(text) == []


def test_render_deep_renders_strings_inside_and_leaves_keys_alone() -> None:
    value = {
        "${ inputs.x }": ["${ inputs.port }", "v${ matrix.version }", 3, None],
        "nested": {"k": ("{{ inputs.flag }}",), "plain": "text"},
    }
    assert render_deep(value, CONTEXTS) == {
        "${ inputs.x }": [8080, "v2", 3, None],
        "nested": {"k": (False,), "plain": "text"},
    }
    assert render_deep(5, CONTEXTS) == 5


# --- contexts -------------------------------------------------------------------------------

FORM_SCHEMA: dict[str, Any] = {
    "field_1": {"type": "number"},
    "field_2": {"type": "string", "default": "{{ inputs.field_1 }}"},
    "field_7": {"type": "string", "default": "{{ .type }}"},
    "advanced_setting": {"type": "string", "hidden": True},
    "group": {"type": "group", "items": {"child": {"type": "boolean"}}},
}


def form_contexts(current: str) -> dict[str, Any]:
    return {
        "inputs": {"field_1": 42, "advanced_setting": "x"},
        "$schema": {"inputs": FORM_SCHEMA, "self": FORM_SCHEMA[current]},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ inputs.field_1 }}", 42),  # field_2: the value
        ("{{ inputs[field_1] }}", {"type": "number"}),  # field_3: the schema object
        ("{{ inputs.field_1[type] }}", "number"),  # field_4: an attribute of the schema
        ("{{ ../field_1 }}", {"type": "number"}),  # field_5: a sibling's schema
        ("{{ ../field_1.type }}", "number"),  # field_6: its attribute
        ("{{ .type }}", "string"),  # field_7: its own type
        ("${{ inputs.advanced_setting[hidden] }}", True),
        ("{{ inputs[field_1].type }}", "number"),
        ("{{ inputs.group.child[type] }}", "boolean"),
        ("{{ inputs[nope] }}", UNDEFINED),
        ("{{ ../nope.type }}", UNDEFINED),
        ('{{ inputs["field_1"] }}', 42),  # a string in brackets is a value key
    ],
)
def test_schema_references_of_the_guide(text: str, expected: Any) -> None:
    assert render(text, form_contexts("field_7")) == expected


def test_schema_references_without_a_schema() -> None:
    contexts = {"inputs": {"field_1": {"type": 7}}}
    assert render("{{ inputs[field_1] }}", contexts) == {"type": 7}
    assert render("{{ inputs.field_1[type] }}", contexts) == 7
    assert render("{{ ../field_1 }}", contexts) is UNDEFINED
    assert render("{{ .type }}", contexts) is UNDEFINED
    assert render("{{ $schema }}", form_contexts("field_7")) == "$schema"  # not readable


def test_always() -> None:
    assert render("{{ always }}", {}) is True
    assert is_truthy(render("${{ always }}", {}))
    assert uses_always("{{ always }}")
    assert uses_always("${ always }")
    assert uses_always("${{ always && inputs.x }}")
    assert uses_always("always")
    assert not uses_always("${{ inputs.always }}")
    assert not uses_always("${ inputs.should-run }")
    assert not uses_always("{{ 'always' }}")
    assert not uses_always("{{ always + }}")


def test_contexts_can_be_any_names_passed_in() -> None:
    assert evaluate("steps.a.outputs.b", {"steps": {"a": {"outputs": {"b": 1}}}}) == 1
    assert evaluate("steps.a", {}) == "steps.a"  # not a context: its own text
    assert evaluate("-inputs.n", {"inputs": {"n": 3}}) == -3


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (UNDEFINED, ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (16, "16"),
        (2.0, "2"),
        (-0.0, "0"),
        (2.25, "2.25"),
        (-0.5, "-0.5"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (1.5e-10, "1.5e-10"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (math.nan, "NaN"),
        ("text", "text"),
        ([1, "a", None, True], '[1,"a",null,true]'),
        ({"a": [1, 2.0], "b": {"c": "é"}}, '{"a":[1,2],"b":{"c":"é"}}'),
        ({"a": UNDEFINED, "b": math.nan}, '{"b":null}'),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (UNDEFINED, False),
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (math.nan, False),
        ("", False),
        (True, True),
        (-1, True),
        ("0", True),
        ("false", True),
        ([], True),
        ({}, True),
    ],
)
def test_is_truthy(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_undefined_is_a_falsy_singleton() -> None:
    assert not UNDEFINED
    assert repr(UNDEFINED) == "undefined"
    assert copy.deepcopy(UNDEFINED) is UNDEFINED
    assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED
    assert evaluate("undefined", {}) is UNDEFINED


def test_parses_are_cached_and_shared() -> None:
    assert parse("inputs.x + 1") is parse("inputs.x + 1")
    contexts = {"inputs": {"x": 1}}
    assert evaluate("inputs.x + 1", contexts) == 2
    assert evaluate("inputs.x + 1", {"inputs": {"x": "a"}}) == "a1"


def test_text_without_expressions_comes_back_as_it_is() -> None:
    assert render("plain", {}) == "plain"
    assert render("{ not: one }", {}) == "{ not: one }"
    assert not has_expressions("{ single } $x ${Y}")
