"""The published JSON Schema (draft 2020-12) of spec format v1, generated from the registries.

Layer types, initializer names and parameters, and activation names come
from :data:`~netspec.nn.layers.LAYER_TYPES`, :data:`~netspec.init.initializers.INITIALIZERS`
and :data:`~netspec.nn.activations.ACTIVATIONS`, so registered custom names
appear automatically. ``schemas/netspec-v1.schema.json`` is this output for
the built-in registries (a test keeps them equal). Branches are selected with
``if``/``then`` on ``type`` and ``name`` so an error reports only the branch
the user meant.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import fields
from typing import Any

from netspec.init.initializers import INITIALIZERS
from netspec.init.precision import PRECISIONS
from netspec.nn.activations import ACTIVATIONS
from netspec.nn.catalog import LAYER_TYPES
from netspec.registry import Registry

SCHEMA_ID = "https://netspec.dev/schemas/netspec-v1.schema.json"
MAX_SEED = 2**63 - 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SHAPE = {
    "type": "array",
    "minItems": 1,
    "maxItems": 4,
    "items": {"type": ["integer", "null"], "minimum": 1, "maximum": 1 << 31,
              "description": "A size, or null for one known only when the network runs (a sequence length that "
              "varies); layers that need the size refuse null."},
}

JSON_TYPES = {
    "float": {"type": "number"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
}


def _param_types(cls: Any) -> dict[str, Any]:
    """The evaluated type hints of a configurable's fields (strings resolved, with or without
    ``from __future__ import annotations``)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an unresolvable annotation: fall back to the default value's type
        hints = {}
    return {f.name: hints.get(f.name, type(f.default)) for f in fields(cls) if f.name in hints}


def _type_schema(hint: Any) -> dict[str, Any]:
    """JSON Schema of a field type: float, int, bool, str, Literal[...], ``tuple[X, ...]`` and ``list[X]``
    (arrays), and unions of them (``None`` in a union: null)."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        options = [_type_schema(a) for a in args if a is not type(None)]
        if type(None) in args and len(options) > 1:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin in (tuple, list) and typing.get_args(hint):
        return {"type": "array", "items": _type_schema(typing.get_args(hint)[0])}
    return dict(JSON_TYPES.get(getattr(hint, "__name__", ""), {}))


def param_schemas(cls: Any) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each parameter of an initializer or activation class (from its dataclass
    annotations; a plugin's as a built-in's)."""
    hints = _param_types(cls)
    return {
        param: _param_schema(cls, param, default, hints.get(param, type(default)))
        for param, default in cls.parameter_defaults().items()
    }


def _param_schema(cls: Any, param: str, default: Any, hint: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"enum": list(cls.choices[param])} if param in cls.choices else _type_schema(hint)
    schema["description"] = f"{param} of {cls.name} (default {json.dumps(default)})."
    return schema


def _configurable(registry: Registry[Any], kind: str, extra_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """Schema for a name or a {name, ...params} mapping of one registry."""
    names = sorted(registry.names())
    string_names = sorted({*names, *extra_names})
    branches = []
    for canonical in registry:
        cls = registry[canonical]
        props: dict[str, Any] = {
            "name": {"description": f"The {kind} name.", "enum": [canonical, *registry.aliases_of(canonical)]},
            **param_schemas(cls),
        }
        keys = props["name"]["enum"]
        branches.append(
            {
                "if": {"properties": {"name": {"enum": keys}}, "required": ["name"]},
                "then": {"additionalProperties": False, "properties": props},
            }
        )
    return {
        "description": f"An {kind}: a name, or a mapping with 'name' and its parameters.",
        "if": {"type": "string"},
        "then": {"enum": string_names},
        "else": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"description": f"The {kind} name.", "enum": names}},
            "allOf": branches,
        },
    }


def _recipes() -> dict[str, Any]:
    """Schema of the top-level ``init``: ``{recipe: NAME, ...its parameters}``."""
    from netspec.init.recipes import RECIPES

    branches = []
    for name in RECIPES:
        cls = RECIPES[name]
        hints = _param_types(cls)
        summary = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
        props: dict[str, Any] = {"recipe": {"const": name, "description": summary}}
        for param, default in cls.parameter_defaults().items():
            props[param] = {**_param_schema(cls, param, default, hints.get(param, type(default))),
                            **cls.BOUNDS.get(param, {})}  # fmt: skip
            if param in cls.REQUIRED:
                props[param]["description"] = f"{param} of {name} (required)."
        branches.append({"if": {"properties": {"recipe": {"const": name}}, "required": ["recipe"]},
                         "then": {"additionalProperties": False, "required": list(cls.REQUIRED), "properties": props}})
    return {
        "type": "object",
        "required": ["recipe"],
        "description": "An init recipe: assigns each tensor's initializer by its layer's role (below the layer's own "
        "keys, above defaults and auto). {recipe: NAME, ...its parameters}.",
        "properties": {"recipe": {"enum": sorted(RECIPES), "description": "The recipe."}},
        "allOf": branches,
    }  # fmt: skip


REFERENCE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$"
REFERENCE = {"type": "string", "pattern": REFERENCE_PATTERN, "maxLength": 200}
"""A layer reference: a name, or a layer inside a block instance (``stage1.conv2``)."""
EXPRESSION_PATTERN = r"^\$\{.*\}$"
PATTERN_WORDS = {
    NAME_PATTERN: "a name (a letter or _, then letters, digits, _ and -)",
    IDENTIFIER_PATTERN: "an identifier (a letter or _, then letters, digits and _; no -)",
    REFERENCE_PATTERN: "a layer name, or names joined by '.' for a layer inside a block instance (stage1.conv2)",
    EXPRESSION_PATTERN: "an expression ${...}",
}
"""What each pattern of the schema accepts, in words (for error messages)."""


def _inputs_schema(arity: int | tuple[int, int] | None) -> dict[str, Any]:
    """What a layer's ``inputs`` may be: one reference, or a list of the layer's arity."""
    if isinstance(arity, tuple):
        return {
            "description": f"The layer's inputs: one name, or a list of {arity[0]} to {arity[1]} names (see the "
            "layer's description for their roles). Default: the previous layer.",
            "anyOf": [REFERENCE, {"type": "array", "items": REFERENCE, "minItems": arity[0], "maxItems": arity[1]}],
        }
    if arity == 1:
        return {
            "description": "The layer's input: a layer name, or 'input' (the network input; see 'inputs' at the "
            "top for several). Default: the previous layer.",
            "anyOf": [REFERENCE, {"type": "array", "items": REFERENCE, "minItems": 1, "maxItems": 1}],
        }
    count = {"minItems": arity, "maxItems": arity} if arity else {"minItems": 2, "maxItems": 64}
    what = f"exactly {arity}" if arity else "two or more"
    return {"description": f"The layers (or network inputs) it combines: {what} names.", "type": "array",
            "items": REFERENCE, **count}  # fmt: skip


IMPORT_PATH = {"type": "string", "minLength": 1, "maxLength": 1024,
               "description": "A spec file, relative to this one, inside the repository."}  # fmt: skip
IMPORTS = {
    "type": "array",
    "maxItems": 64,
    "description": "Block libraries: other spec files whose blocks this spec uses (a path, or {path, blocks: "
    "[names]} for some of them). Paths stay inside the repository; no absolute paths or URLs.",
    "items": {"oneOf": [IMPORT_PATH, {"type": "object", "additionalProperties": False, "required": ["path"],
                                      "properties": {"path": IMPORT_PATH, "blocks": {
                                          "type": "array", "minItems": 1, "maxItems": 256, "uniqueItems": True,
                                          "description": "The blocks to import (default: all of them).",
                                          "items": {"type": "string", "pattern": NAME_PATTERN}}}}]},
}  # fmt: skip

BLOCK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["layers"],
    "description": "A reusable group of layers. Inside it, 'input' is the instance's input, a whole scalar "
    "value $NAME is replaced by parameter NAME, and the last layer is the instance's output.",
    "properties": {
        "description": {"type": "string", "description": "What the block is (documentation only)."},
        "params": {
            "type": "object",
            "maxProperties": 64,
            "propertyNames": {"pattern": NAME_PATTERN, "maxLength": 64},
            "description": "Parameters: name -> {type, default}.",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["integer", "number", "string", "boolean"], "description": "Value type."},
                    "default": {"description": "Value when an instance does not give one (else it must)."},
                    "description": {"type": "string", "description": "What the parameter means."},
                },
            },
        },
        "layers": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {"type": "object", "description": "A layer, repeat or block instance, checked after $NAME "
                      "substitution in each instance."},
            "description": "The block's layers, in order.",
        },
    },
}  # fmt: skip

BLOCK_USE = {
    "type": "object",
    "required": ["block"],
    "description": "An instance of a block; its other keys are the block's parameters.",
    "properties": {
        "block": {**REFERENCE, "description": "The block to instantiate (a key of the top-level 'blocks')."},
        "name": {**REFERENCE, "description": "Instance name (default <block>_<position>); its layers are "
                 "<instance>.<layer>, and the instance's name means its output."},
        "inputs": _inputs_schema(1),
    },
    "additionalProperties": {"description": "A block parameter (its type is checked against the block's params)."},
}  # fmt: skip


def _layer_defs() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for type_name, cls in LAYER_TYPES.items():
        props = {
            "type": {"const": type_name, "description": cls.description},
            "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 64,
                     "description": "Layer name (default <type>_<position>, 1-based); parameters are <name>.<param>."},
            "inputs": _inputs_schema(cls.ARITY),
            **cls.OPTIONS,
        }  # fmt: skip
        defs[f"layer.{type_name}"] = {
            "type": "object",
            "description": cls.description,
            "additionalProperties": False,
            "required": ["type", *cls.REQUIRED],
            "properties": props,
        }
    return defs


def build_schema() -> dict[str, Any]:
    """The JSON Schema for the current registries."""
    types = list(LAYER_TYPES)
    layer = {
        "type": "object",
        "description": "A layer; 'type' selects which keys it takes.",
        "required": ["type"],
        "properties": {"type": {"enum": types, "description": "Layer type."}},
        "allOf": [
            {"if": {"properties": {"type": {"const": t}}, "required": ["type"]}, "then": {"$ref": f"#/$defs/layer.{t}"}}
            for t in types
        ],
    }
    repeat = {
        "type": "object",
        "description": "Repeats its layers 'repeat' times, in order; names inside get _<k> appended.",
        "additionalProperties": False,
        "required": ["repeat", "layers"],
        "properties": {
            "repeat": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "How many times."},
            "layers": {"$ref": "#/$defs/layers", "description": "The repeated layers."},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "netspec network spec, version 1",
        "description": "A neural-network architecture with its weight initialization. See netspec's README.",
        "type": "object",
        "additionalProperties": False,
        "patternProperties": {"^x-": {"description": "Ignored: a place for YAML anchors reused below."}},
        "required": ["netspec", "layers"],
        "allOf": [
            {"if": {"not": {"required": ["inputs"]}}, "then": {"required": ["input"]}},
            {"if": {"required": ["inputs"]}, "then": {"not": {"required": ["input"]}}},
        ],
        "properties": {
            "netspec": {"const": 1, "description": "Spec format version; must be 1."},
            "name": {"type": "string", "maxLength": 128, "description": "Network name (default: the file stem)."},
            "seed": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_SEED,
                "description": "Seed of every parameter stream (default 0).",
            },
            "rng": {
                "enum": ["block", "block/1", "block/2", "legacy"],
                "description": "'block' (default): one stream per parameter, thread-count independent (stream "
                "version 1: Box-Muller normals); 'block/1', 'block/2': that stream version, pinned ('block/2': "
                "ziggurat normals, exact tail, portable float64 too); "
                "'legacy': one np.random.RandomState for the whole network, as textbook NumPy demos.",
            },
            "dtype": {
                "enum": list(PRECISIONS),
                "description": "Parameter dtype (default float32); bfloat16 and float16 are the float32 values "
                "rounded to nearest even.",
            },
            "names": {
                "enum": ["positional", "explicit"],
                "description": "'positional' (default): unnamed layers are <type>_<position>; 'explicit': every "
                "layer with parameters must have a name, so inserting a layer never renames (and re-seeds) others.",
            },
            "constants": {
                "type": "object",
                "maxProperties": 256,
                "propertyNames": {"pattern": IDENTIFIER_PATTERN, "maxLength": 64},
                "additionalProperties": {"type": "number"},
                "description": "Named numbers that expressions \"${...}\" anywhere in the spec can read: name -> a "
                "number, or an expression over the constants above it.",
            },
            "input": {
                **SHAPE,
                "description": "Input shape without the batch axis, channels last, e.g. [32, 32, 3]; layers "
                "refer to it as 'input'. For several inputs, use 'inputs' instead.",
            },
            "inputs": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 16,
                "propertyNames": {"pattern": NAME_PATTERN, "maxLength": 64},
                "additionalProperties": SHAPE,
                "description": "Several network inputs: name -> shape (without the batch axis). Instead of 'input'.",
            },
            "outputs": {
                "description": "The network's output(s): a layer name or a list of them (default: the last layer).",
                "anyOf": [REFERENCE, {"type": "array", "items": REFERENCE, "minItems": 1, "maxItems": 64}],
            },
            "defaults": {
                "type": "object",
                "additionalProperties": False,
                "description": "Defaults for every layer that has the key.",
                "properties": {
                    "weights": {"$ref": "#/$defs/initializer", "description": "Kernel initializer (default auto)."},
                    "bias": {"$ref": "#/$defs/initializer", "description": "Bias initializer (default zeros)."},
                    "activation": {"$ref": "#/$defs/activation", "description": "Activation (default linear)."},
                },
            },
            "init": {"$ref": "#/$defs/init", "description": "The init recipe, by role (the README's recipe table)."},
            "layers": {"$ref": "#/$defs/layers", "description": "The layers, input to output."},
            "imports": {"$ref": "#/$defs/imports", "description": IMPORTS["description"]},
            "blocks": {
                "type": "object",
                "maxProperties": 256,
                "propertyNames": {"pattern": NAME_PATTERN, "maxLength": 64},
                "additionalProperties": {"$ref": "#/$defs/block"},
                "description": "Reusable, parameterized groups of layers: name -> {params, layers}. A layer entry "
                "{block: NAME, name: ..., PARAM: value} instantiates one.",
            },
        },
        "$defs": {
            "imports": IMPORTS,
            "layers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10_000,
                "items": {
                    "if": {"type": "object", "required": ["repeat"]},
                    "then": {"$ref": "#/$defs/repeat"},
                    "else": {
                        "if": {"type": "object", "required": ["block"]},
                        "then": {"$ref": "#/$defs/block_use"},
                        "else": {"$ref": "#/$defs/layer"},
                    },
                },
            },
            "repeat": repeat,
            "block": BLOCK,
            "block_use": BLOCK_USE,
            "layer": layer,
            **_layer_defs(),
            "initializer": _configurable(INITIALIZERS, "initializer", ("auto", "auto_next")),
            "init": _recipes(),
            "activation": _configurable(ACTIVATIONS, "activation"),
        },
    }


EXPRESSION = {"type": "string", "pattern": EXPRESSION_PATTERN,
              "description": "An expression ${...} over numbers, the constants, the block's parameters and index, "
              "evaluated when the spec is compiled (see the README's Arithmetic)."}  # fmt: skip


def published_schema() -> dict[str, Any]:
    """The schema as editors read it (``netspec schema``, ``schemas/netspec-v1.schema.json``): wherever a number
    is allowed, an expression ``"${...}"`` is too. netspec itself validates with :func:`build_schema` after
    evaluating the expressions (:mod:`netspec.spec.arithmetic`), so the numbers' own bounds still apply."""
    return _with_expressions(build_schema())


def _with_expressions(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_expressions(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: v if k == "if" else _with_expressions(v) for k, v in node.items()}
    written = out.get("type")
    kinds: list[Any] = written if isinstance(written, list) else [written]
    if "integer" in kinds or "number" in kinds:
        description = out.pop("description", None)
        return {"anyOf": [out, EXPRESSION], **({"description": description} if description else {})}
    return out


def schema_json() -> str:
    return json.dumps(published_schema(), indent=2, sort_keys=False) + "\n"
