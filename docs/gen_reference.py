"""Generate ``docs/reference/hooks.md`` from the SDK's docstrings.

The hookspecs in :mod:`corral_sdk.hookspecs` are the reference documentation of the plugin API
(CONVENTIONS 1); this script renders them, the registration records of :mod:`corral_sdk.records`
and the feature enums of :mod:`corral_sdk.features` as Markdown, so the site never drifts from
the code.

    uv run python docs/gen_reference.py          # rewrite docs/reference/hooks.md
    uv run python docs/gen_reference.py --check  # exit 1 when the committed file is stale

Rendering is deliberately simple and deterministic: hooks are grouped by the ``# --- <group>``
comments of the hookspecs module, in source order; reST markup is turned into Markdown
(``:param x:`` lines become a list, ``Example::`` blocks become fenced code, roles and double
backquotes become code spans).
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import itertools
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from corral_sdk import features, hookspecs, records

__all__ = ["OUTPUT", "check", "generate", "hookspec_functions", "main", "render_docstring"]

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "reference" / "hooks.md"
REGENERATE = "uv run python docs/gen_reference.py"
SPEC_ATTRIBUTE = f"{hookspecs.PROJECT_NAME}_spec"

_SECTION = re.compile(r"^#\s*---\s*(?P<title>[^-].*?)\s*-*\s*$")
_DEF = re.compile(r"^def\s+(?P<name>\w+)\s*\(")
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(?P<target>[^`]+)`")
_FIELD = re.compile(
    r"^:(?P<kind>param|return|returns|raises?)(?:\s+(?P<name>[\w.]+))?:\s*(?P<text>.*)$"
)


# --- finding things -----------------------------------------------------------------------------


def hookspec_functions() -> list[Callable[..., Any]]:
    """Every function of :mod:`corral_sdk.hookspecs` marked as a hookspec, in source order."""
    found = [
        value
        for value in vars(hookspecs).values()
        if inspect.isfunction(value) and hasattr(value, SPEC_ATTRIBUTE)
    ]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def hook_groups() -> list[tuple[str, list[Callable[..., Any]]]]:
    """Hooks grouped by the ``# --- <group> ---`` comments that precede them in the module."""
    source = inspect.getsource(hookspecs)
    group_of: dict[str, str] = {}
    current = "Other hooks"
    for line in source.splitlines():
        if match := _SECTION.match(line):
            current = match["title"].strip()
            current = current[:1].upper() + current[1:]
        elif match := _DEF.match(line):
            group_of[match["name"]] = current
    groups: dict[str, list[Callable[..., Any]]] = {}
    for function in hookspec_functions():
        groups.setdefault(group_of.get(function.__name__, "Other hooks"), []).append(function)
    return list(groups.items())


def attribute_docstrings(cls: type) -> dict[str, str]:
    """The string literal written right after each class attribute (PEP 257 attribute
    docstrings), for ``cls`` and its bases, the nearest class winning."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in {"builtins", "enum", "msgspec"}:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in itertools.pairwise(body):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            elif isinstance(node, ast.AnnAssign):
                target = node.target
            else:
                continue
            if (
                isinstance(target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[target.id] = inspect.cleandoc(following.value.value)
    return docs


def raw_annotations(cls: type) -> dict[str, str]:
    """Field annotations as written in the source (the modules use postponed annotations)."""
    annotations: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, value in inspect.get_annotations(klass).items():
            annotations[name] = value if isinstance(value, str) else inspect.formatannotation(value)
    return annotations


# --- rendering reST-ish docstrings --------------------------------------------------------------


def inline(text: str) -> str:
    """reST inline markup to Markdown: roles and double backquotes become code spans."""

    def role(match: re.Match[str]) -> str:
        target = match["target"]
        if target.startswith("~"):
            target = target[1:].rsplit(".", 1)[-1]
        return f"`{target}`"

    return _ROLE.sub(role, text).replace("``", "`")


def _blocks(lines: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Split a cleaned docstring into ``("text" | "field" | "code", lines)`` blocks."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if _FIELD.match(line):
            block = [line]
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
                block.append(lines[i])
                i += 1
            yield "field", block
            continue
        block = []
        while i < len(lines) and lines[i].strip() and not _FIELD.match(lines[i]):
            block.append(lines[i])
            i += 1
        if block[-1].rstrip().endswith("::"):
            yield "text", block
            code: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                code.append(lines[i])
                i += 1
            yield "code", textwrap.dedent("\n".join(code)).strip("\n").splitlines()
            continue
        yield "text", block


def _language(code: list[str]) -> str:
    first = code[0].strip() if code else ""
    return "toml" if first.startswith("[") else "python"


def render_docstring(doc: str | None) -> str:
    """Markdown for a reST-ish docstring: paragraphs, a parameter list, returns, code blocks."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: list[str] = []
    in_params = False
    for kind, block in _blocks(lines):
        if kind == "code":
            out.append(f"```{_language(block)}\n" + "\n".join(block) + "\n```")
            in_params = False
            continue
        if kind == "text":
            in_params = False
            text = " ".join(part.strip() for part in block)
            if text.endswith("::"):
                text = text[:-2].rstrip()
                if not text or text.lower() == "example":
                    out.append("**Example**")
                    continue
                text += ":"
            out.append(inline(text))
            continue
        match = _FIELD.match(block[0])
        assert match is not None
        text = inline(" ".join([match["text"].strip(), *(part.strip() for part in block[1:])]))
        if match["kind"] == "param":
            item = f"- `{match['name']}`: {text}"
            if in_params:
                out[-1] += "\n" + item
            else:
                out += ["**Parameters**", item]
                in_params = True
            continue
        in_params = False
        title = "Returns" if match["kind"].startswith("return") else "Raises"
        out.append(f"**{title}:** {text}")
    return "\n\n".join(out).strip()


def signature(function: Callable[..., Any]) -> str:
    """``def name(param: Type, ...) -> Return: ...`` with annotations as written."""
    sig = inspect.signature(function, eval_str=False)
    params = []
    for param in sig.parameters.values():
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}"
        params.append(text)
    result = ""
    if sig.return_annotation is not inspect.Signature.empty:
        result = f" -> {_annotation(sig.return_annotation)}"
    return f"def {function.__name__}({', '.join(params)}){result}: ..."


def _annotation(value: Any) -> str:
    return value if isinstance(value, str) else inspect.formatannotation(value)


def _calling(function: Callable[..., Any]) -> str:
    options = getattr(function, SPEC_ATTRIBUTE)
    parts = [
        "first non-`None` result wins (`firstresult`)"
        if options.get("firstresult")
        else "every implementation is called"
    ]
    if options.get("historic"):
        parts.append("historic: plugins registered later are called too")
    return "; ".join(parts)


def _summary(doc: str | None) -> str:
    return _cell(inspect.cleandoc(doc or "").split("\n\n", 1)[0])


# --- the page -----------------------------------------------------------------------------------


def _hooks_section() -> list[str]:
    out = ["## Hooks", ""]
    groups = hook_groups()
    out += ["| Hook | Group | Summary |", "| --- | --- | --- |"]
    for group, functions in groups:
        for function in functions:
            name = function.__name__
            out.append(f"| [`{name}`](#{name}) | {group} | {_summary(function.__doc__)} |")
    out.append("")
    for group, functions in groups:
        out += [f"### {group} hooks", ""]
        for function in functions:
            out += [
                f"#### `{function.__name__}`",
                "",
                "```python",
                "@hookspec",
                signature(function),
                "```",
                "",
                f"*Calling:* {_calling(function)}.",
                "",
                render_docstring(function.__doc__),
                "",
            ]
    return out


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.default is not msgspec.NODEFAULT:
        return f"`{field.default!r}`"
    if field.default_factory is not msgspec.NODEFAULT:
        return f"`{getattr(field.default_factory, '__name__', 'factory')}()`"
    return "required"


def _cell(doc: str) -> str:
    """A docstring as one table cell: one line, pipes outside code spans escaped."""
    parts = inline(" ".join(doc.split())).split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _records_section() -> list[str]:
    out = [
        "## Registration records",
        "",
        render_docstring(records.__doc__),
        "",
        "Import them from `corral_sdk.plugin` (or `corral_sdk.records`).",
        "",
    ]
    classes = [
        getattr(records, name)
        for name in records.__all__
        if isinstance(getattr(records, name), type)
        and issubclass(getattr(records, name), records.Registration)
    ]
    for cls in sorted(classes, key=lambda c: inspect.getsourcelines(c)[1]):
        docs = attribute_docstrings(cls)
        annotations = raw_annotations(cls)
        kind = vars(cls).get("kind")
        out += [f"### `{cls.__name__}`", ""]
        if kind and cls is not records.Registration:
            out += [f"*Kind:* `{kind}`", ""]
        out += [render_docstring(cls.__doc__), ""]
        fields = msgspec.structs.fields(cls)
        if cls is not records.Registration:
            common = set(records.Registration.__struct_fields__)
            fields = tuple(f for f in fields if f.name not in common)
            out += ["The fields of [`Registration`](#registration), and:", ""]
        out += ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for field in fields:
            type_text = annotations.get(field.name, "")
            description = _cell(docs.get(field.name, ""))
            out.append(f"| `{field.name}` | `{type_text}` | {_default(field)} | {description} |")
        out.append("")
    return out


def _features_section() -> list[str]:
    out = ["## Features", "", render_docstring(features.__doc__), ""]
    enums = [
        getattr(features, name)
        for name in features.__all__
        if isinstance(getattr(features, name), type)
        and issubclass(getattr(features, name), enum.Enum)
    ]
    for cls in sorted(enums, key=lambda c: inspect.getsourcelines(c)[1]):
        name = cls.__name__
        docs = attribute_docstrings(cls)
        out += [f"### `{name}`", "", render_docstring(cls.__doc__), ""]
        out += ["| Member | Value | Description |", "| --- | --- | --- |"]
        for member in cls:
            description = _cell(docs.get(member.name, ""))
            out.append(f"| `{member.name}` | `{member.value}` | {description} |")
        out.append("")
    return out


def generate() -> str:
    """The full text of ``docs/reference/hooks.md``."""
    lines = [
        "<!-- GENERATED by docs/gen_reference.py from corral_sdk; do not edit by hand. -->",
        f"<!-- Regenerate with: {REGENERATE} -->",
        "",
        "# Hook reference",
        "",
        render_docstring(hookspecs.__doc__),
        "",
        "Implement a hook by defining a function with its name in your plugin module and marking "
        "it with `corral_sdk.plugin.hookimpl`. An implementation may accept fewer parameters than "
        "the spec lists.",
        "",
        *_hooks_section(),
        *_records_section(),
        *_features_section(),
    ]
    text = "\n".join(line.rstrip() for line in "\n".join(lines).splitlines())
    return ruff_format(re.sub(r"\n{3,}", "\n\n", text).strip() + "\n")


def ruff_format(markdown: str) -> str:
    """``markdown`` as ``ruff format`` leaves it: ruff formats the Python code blocks of Markdown
    files, so the committed page must already be in that shape or the formatter and ``--check``
    would undo each other. Runs the repository's own ruff, with its settings."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(OUTPUT), "-"],
        input=markdown,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"ruff format failed on the generated reference:\n{result.stderr}")
    return result.stdout


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check(path: Path | None = None) -> str | None:
    """``None`` when ``path`` (default :data:`OUTPUT`) holds exactly what :func:`generate`
    returns, else why not."""
    path = path or OUTPUT
    expected = generate()
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{_shown(path)} does not exist; run `{REGENERATE}`"
    if current != expected:
        return f"{_shown(path)} is out of date with corral_sdk; run `{REGENERATE}`"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the file differs from what is generated"
    )
    args = parser.parse_args(argv)
    if args.check:
        problem = check()
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"{_shown(OUTPUT)} is up to date")
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(generate(), encoding="utf-8")
    print(f"wrote {_shown(OUTPUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
