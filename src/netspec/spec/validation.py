"""Schema validation of a loaded document, as located diagnostics.

jsonschema errors are translated into messages for people: unknown keys
point at the key with a 'did you mean', unknown names (layer types,
initializers, activations) suggest the closest known one, and the errors of
if/then branches the user did not mean are dropped.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

import jsonschema

from netspec.errors import Diagnostic
from netspec.registry import did_you_mean
from netspec.spec.loader import Document, Path, format_path
from netspec.spec.schema import build_schema


@lru_cache(maxsize=1)
def _validator_for(versions: tuple[int, int]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(build_schema())


def validator() -> jsonschema.Draft202012Validator:
    from netspec.init.initializers import INITIALIZERS
    from netspec.nn.activations import ACTIVATIONS

    return _validator_for((INITIALIZERS.version, ACTIVATIONS.version))


def validate(doc: Document) -> list[Diagnostic]:
    """Every schema error of ``doc``, located and worded for people, after its expressions are evaluated
    (:func:`netspec.spec.arithmetic.resolve`: their errors come first; an expression evaluated only at
    expansion is not judged here).

    Names are checked against the registries as they are: installed plugins
    are discovered at the entry points (the CLI, :func:`netspec.load`, or
    :func:`netspec.plugins.load_plugins`), not here.
    """
    from netspec.spec.arithmetic import arithmetic, resolve

    diags = resolve(doc)
    arith = arithmetic(doc)
    candidates = {p for p, e in arith.values.items() if isinstance(e.value, float) and e.value.is_integer()}
    for path in integer_paths(doc.data, candidates):
        arith.values[path] = replace(arith.values[path], value=int(arith.values[path].value))
        set_at(doc.data, path, arith.values[path].value)
    skip = {format_path(p) for p in arith.deferred | arith.failed}
    written = {format_path(p): e for p, e in arith.values.items()}
    schema = [d for d in _validate(doc) if d.path not in skip]
    return sorted(diags + [from_expression(d, written) for d in schema], key=lambda d: d.sort_key)


def from_expression(d: Diagnostic, written: dict[str, Any]) -> Diagnostic:
    """``d`` naming the expression its value came from, if it came from one."""
    found = written.get(d.path)
    return replace(d, message=f"{d.message} (the value of {found.text})") if found is not None else d


def set_at(data: Any, path: Path, value: Any) -> None:
    """``data[path[0]][path[1]]... = value``."""
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


@lru_cache(maxsize=8)
def _strict_validator(definition: str | None, versions: tuple[int, int]) -> jsonschema.Validator:
    """The schema (or one of its definitions) with 'integer' meaning a Python int only (jsonschema
    accepts 3.0 as an integer)."""
    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)
    )
    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)
    schema = build_schema()
    return strict(schema if definition is None else {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


def integer_paths(value: Any, candidates: set[Path], definition: str | None = None, base: Path = ()) -> set[Path]:
    """Of ``candidates`` (where ``value``, standing at ``base``, holds an integral float from an expression),
    the paths where the schema requires an integer: their values become ints."""
    if not candidates:
        return set()
    from netspec.init.initializers import INITIALIZERS
    from netspec.nn.activations import ACTIVATIONS

    checker = _strict_validator(definition, (INITIALIZERS.version, ACTIVATIONS.version))
    found: set[Path] = set()
    stack = list(checker.iter_errors(value))
    while stack:
        error: Any = stack.pop()
        stack.extend(error.context or [])
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        path = (*base, *error.absolute_path)
        if error.validator == "type" and "integer" in kinds and path in candidates:
            found.add(path)
    return found


def _validate(doc: Document) -> list[Diagnostic]:
    return _diagnostics(validator().iter_errors(doc.data), doc, ())


def _diagnostics(errors: Any, doc: Document, base: Path) -> list[Diagnostic]:
    out: dict[tuple[Any, ...], Diagnostic] = {}
    for error in errors:
        for d in _translate(error, doc, base):
            out.setdefault((d.line, d.column, d.message), d)
    return sorted(out.values(), key=lambda d: d.sort_key)


@lru_cache(maxsize=8)
def _fragment_validator(definition: str, versions: tuple[int, int]) -> jsonschema.Draft202012Validator:
    schema = build_schema()
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


def validate_fragment(doc: Document, value: Any, definition: str, base: Path) -> list[Diagnostic]:
    """Schema errors of ``value`` (e.g. a block's layers after parameter substitution) against
    ``$defs/<definition>``, located as if ``value`` stood at ``base`` in ``doc``."""
    from netspec.init.initializers import INITIALIZERS
    from netspec.nn.activations import ACTIVATIONS

    checker = _fragment_validator(definition, (INITIALIZERS.version, ACTIVATIONS.version))
    return _diagnostics(checker.iter_errors(value), _Fragment(doc, value, base), base)


class _Fragment(Document):
    """A document view whose data is a substituted fragment but whose positions are the original's."""

    def __init__(self, doc: Document, value: Any, base: Path):
        super().__init__(_nest(base, value), doc.source, doc.text, doc.marks, doc.key_marks)


def _nest(base: Path, value: Any) -> Any:
    """``value`` placed at ``base`` inside empty containers, so paths from the root reach it."""
    for part in reversed(base):
        value = {part: value} if isinstance(part, str) else [None] * part + [value]
    return value


def _what(path: Path, schema_path: list[Any]) -> str:
    """What kind of value sits at ``path`` (for messages)."""
    tail = [p for p in path if isinstance(p, str)][-2:]
    if tail and tail[-1] == "name" and len(tail) == 2:
        tail = tail[:1]
    last = tail[-1] if tail else ""
    if last == "activation":
        return "activation"
    if last in ("weights", "bias"):
        return "initializer"
    if last == "type":
        return "layer type"
    return "value"


def _expected_type(schema: dict[str, Any]) -> str:
    types = schema.get("type", "value")
    names = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
             "array": "a list", "object": "a mapping", "null": "null"}  # fmt: skip
    return " or ".join(names.get(t, str(t)) for t in (types if isinstance(types, list) else [types]))


def _translate(validation_error: jsonschema.ValidationError, doc: Document, base: Path = ()) -> list[Diagnostic]:
    error: Any = validation_error  # its fields are typed "or Unset"; every one is set for iter_errors' errors
    path: Path = (*base, *error.absolute_path)
    where = format_path(path)
    line, col = doc.mark(path)
    v, instance = error.validator, error.instance
    what = _what(path, list(error.absolute_schema_path))

    if v == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in instance if k not in allowed]
        owner = _owner(doc, path)
        diags = []
        for key in extra:
            kl, kc = doc.mark((*path, key), key=True)
            hint = did_you_mean(key, allowed)
            msg = f"unknown key {key!r}{owner}{hint}"
            diags.append(Diagnostic(msg, kl, kc, format_path((*path, key)), hint=f"allowed keys: {', '.join(allowed)}"))
        return diags
    if v in ("enum", "const"):
        options = error.validator_value if v == "enum" else [error.validator_value]
        if path and path[-1] == "netspec":
            msg = f"unsupported spec version {instance!r}; this netspec reads version 1"
            return [Diagnostic(msg, line, col, where)]
        hint = did_you_mean(str(instance), [str(o) for o in options])
        shown = ", ".join(map(str, options)) if len(options) <= 16 else f"{len(options)} names; see `netspec schema`"
        if what == "value":
            return [Diagnostic(f"{instance!r} is not one of {shown}{hint}", line, col, where)]
        return [Diagnostic(f"unknown {what} {instance!r}{hint}", line, col, where, hint=f"expected one of: {shown}")]
    if v == "required":
        missing = [k for k in error.validator_value if k not in instance and not _misspelled(k, instance, error.schema)]
        hint = "or 'inputs' (name -> shape) for several network inputs" if missing == ["input"] and not path else ""
        return [Diagnostic(f"missing required key {k!r}{_owner(doc, path)}", line, col, where, hint=hint)
                for k in missing]  # fmt: skip
    if v == "not" and not path:
        kl, kc = doc.mark(("input",), key=True)
        return [Diagnostic("give either 'input' (one network input) or 'inputs' (several), not both", kl, kc, "input")]
    if v == "anyOf" and path and path[-1] in ("inputs", "outputs"):
        return [Diagnostic(f"{_show(instance)} is not valid here: expected a layer name or a list of names", line,
                           col, where)]  # fmt: skip
    if v == "type":
        return [Diagnostic(f"expected {_expected_type(error.schema)}, got {_show(instance)}", line, col, where)]
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return [
            Diagnostic(f"{_show(instance)} is out of range: must be {op} {error.validator_value}", line, col, where)
        ]
    if v in ("minItems", "maxItems"):
        op = "at least" if v == "minItems" else "at most"
        return [Diagnostic(f"expected {op} {error.validator_value} item(s), got {len(instance)}", line, col, where)]
    if v == "oneOf":
        return [Diagnostic(f"{_show(instance)} is not valid here: expected {accepts(error.schema)}", line, col, where)]
    if "propertyNames" in error.relative_schema_path:  # a key's fault: point at the key
        path = (*path, instance)
        where = format_path(path)
        line, col = doc.mark(path, key=True)
    if v == "pattern":
        return [Diagnostic(f"{_show(instance)} is not {_pattern_words(error.validator_value)}", line, col, where)]
    if v in ("maxLength", "minLength"):
        op = "at most" if v == "maxLength" else "at least"
        msg = f"{_show(instance)} is {len(instance)} characters long; {op} {error.validator_value} allowed"
        return [Diagnostic(msg, line, col, where)]
    return [Diagnostic(error.message, line, col, where)]


TYPE_WORDS = {"integer": ("an integer", "integers"), "number": ("a number", "numbers"),
              "string": ("a string", "strings"), "boolean": ("a boolean (true or false)", "booleans"),
              "object": ("a mapping", "mappings"), "null": ("null", "nulls")}  # fmt: skip
"""A JSON Schema type in words: (one, several)."""


def accepts(schema: dict[str, Any]) -> str:
    """What ``schema`` accepts, in words, read from the schema itself (so a message cannot contradict it):
    ``'valid' or 'same', an integer, or a list of 1 to 3 items, each an integer or a list of 2 integers``."""
    branches = schema.get("oneOf", schema.get("anyOf"))
    if isinstance(branches, list):
        return _either([accepts(b) for b in branches])
    if "enum" in schema:
        return _either([_literal(v) for v in schema["enum"]])
    if "const" in schema:
        return _literal(schema["const"])
    if "pattern" in schema:
        return _pattern_words(schema["pattern"])
    types = schema.get("type")
    if types == "array":
        items = schema.get("items")
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        count = (f"{lo} " if lo == hi else f"{lo} to {hi} ") if lo is not None and hi is not None else (
            f"at least {lo} " if lo else f"at most {hi} " if hi is not None else "")  # fmt: skip
        if not isinstance(items, dict):
            return f"a list of {count}items"
        simple = items.get("type") if set(items) <= {"type", "minimum", "maximum", "description"} else None
        if isinstance(simple, str) and simple in TYPE_WORDS:
            return f"a list of {count}{TYPE_WORDS[simple][1]}"
        return f"a list of {count}items, each {accepts(items)}"
    if types == "object" and schema.get("required"):
        return "a mapping with " + " and ".join(repr(k) for k in schema["required"])
    names = types if isinstance(types, list) else [types]
    return _either([TYPE_WORDS[t][0] if t in TYPE_WORDS else str(t) for t in names if t is not None]) or "a value"


def _either(options: list[str]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + f"{',' if len(options) > 2 else ''} or " \
        + options[-1]  # fmt: skip


def _literal(value: Any) -> str:
    return repr(value) if isinstance(value, str) else "null" if value is None else str(value).lower()


def _pattern_words(pattern: str) -> str:
    from netspec.spec.schema import PATTERN_WORDS

    return PATTERN_WORDS.get(pattern, f"a string matching {pattern}")


def _misspelled(key: str, instance: dict[str, Any], schema: dict[str, Any]) -> bool:
    """True if an unknown key of ``instance`` is a close misspelling of the missing ``key``: the unknown-key
    message already says 'did you mean {key}', so one mistake gets one message."""
    if schema.get("additionalProperties") is not False:  # unknown keys are not reported here
        return False
    allowed = list(schema.get("properties", {}))
    return any(did_you_mean(k, allowed) == did_you_mean(key, [key]) for k in instance if k not in allowed)


def _owner(doc: Document, path: Path) -> str:
    node = doc.data
    for part in path:
        node = node[part]
    if isinstance(node, dict) and isinstance(node.get("type"), str) and path and path[0] == "layers":
        return f" for a {node['type']} layer"
    if isinstance(node, dict) and isinstance(node.get("name"), str) and path and path[-1] in ("weights", "bias"):
        return f" for initializer {node['name']!r}"
    return ""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"string {value!r}"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)
