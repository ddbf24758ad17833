"""A spec's init recipe (``init: {recipe: NAME, ...}``, :mod:`netspec.init.recipes`) applied to its layers.

Per parameter, after its layer's shapes are known: if the layer writes the initializer key the tensor
follows, the layer wins; else the recipe decides from the tensor's role, kind, fans and repeat index, and
when it does, its initializer replaces what ``defaults`` or ``auto`` gave. What decided each tensor is
recorded (:class:`Decided`) for ``explain``, ``verify`` and ``lock``. muP's base widths come from another
spec file (``init.base``, relative to the spec, inside the repository), compiled for its shapes only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from netspec.errors import Diagnostic, InitializerError
from netspec.init.initializers import get_initializer
from netspec.init.recipes import MuP, Recipe, RecipeParameterError, Tensor, build_recipe
from netspec.spec.imports import load_relative
from netspec.spec.loader import Document, Path, format_path

if TYPE_CHECKING:
    from netspec.nn.layers import Layer, ParamSpec
    from netspec.nn.network import Provenance
    from netspec.spec.imports import Files


@dataclass(frozen=True)
class Decided:
    """A recipe's decision about one tensor: which recipe, for which role, by which rule, with which numbers."""

    recipe: str
    role: str
    rule: str
    values: str = ""

    def text(self) -> str:
        """``recipe gpt2, role residual_out: N(0, (σ/√(2L))²) with σ = 0.02, L = 12``."""
        return f"recipe {self.recipe}, role {self.role}: {self.rule}" + (f" with {self.values}" if self.values else "")


@dataclass
class SpecRecipe:
    """The spec's recipe, the base-width shapes (muP), and what it decided per layer."""

    recipe: Recipe
    base_shapes: dict[str, tuple[int, ...]] | None = None
    width_mult: dict[str, float] = field(default_factory=dict)
    """Tensor -> width multiplier (muP), for every tensor of the network."""

    @property
    def name(self) -> str:
        return self.recipe.name


def load_recipe(doc: Document, files: Files | None, shapes_of: Callable[[Document, Files], dict[str, tuple[int, ...]]]
                ) -> tuple[SpecRecipe | None, list[Diagnostic]]:  # fmt: skip
    """The spec's ``init`` recipe (None without one), or the located errors in it; ``shapes_of`` compiles a muP
    base spec for its parameters' shapes."""
    written = doc.data.get("init")
    if not isinstance(written, dict):
        return None, []
    try:
        recipe = build_recipe(written)
    except RecipeParameterError as exc:  # every bad parameter, each at its value (a missing one: at 'recipe')
        return None, [_at(doc, key if key in written else "recipe", message) for key, message in exc.problems]
    except InitializerError as exc:  # an unknown parameter (named in the message) or recipe
        return None, [_at(doc, next((k for k in written if k != "recipe" and repr(k) in str(exc)), "recipe"), str(exc))]
    spec = SpecRecipe(recipe)
    if isinstance(recipe, MuP) and recipe.base is not None:
        loaded, its_files = load_relative(doc, ("init", "base"), recipe.base, files, "init.base")
        spec.base_shapes = shapes_of(loaded, its_files)
    return spec, []


def _at(doc: Document, key: str, message: str) -> Diagnostic:
    line, col = doc.mark(("init", key))
    return Diagnostic(message, line, col, format_path(("init", key)))


def apply_recipe(
    spec: SpecRecipe,
    layer: Layer,
    params: list[ParamSpec],
    provenance: dict[str, Provenance],
    index: int | None,
    where: Path,
    doc: Document,
) -> tuple[list[ParamSpec], dict[str, Decided], list[Diagnostic]]:
    """The layer's parameters with the recipe's initializers where the layer does not write its own, what the
    recipe decided per parameter, and the located errors (a recipe that needs what the layer lacks)."""
    out: list[ParamSpec] = []
    decided: dict[str, Decided] = {}
    diags: list[Diagnostic] = []
    for p in params:
        tensor = _tensor(spec, layer, p, index)
        multiplier = spec.recipe.width_multiplier(tensor)
        if multiplier is not None:
            spec.width_mult[tensor.name] = multiplier
        prov = provenance.get(p.init_key)
        if (prov is not None and prov.source == "layer") or p.gates is not None or tensor.kind == "other":
            out.append(p)
            continue
        try:
            decision = spec.recipe.decide(tensor)
            if decision is not None:
                p = replace(p, initializer=get_initializer(decision.config))
                decided[p.name] = Decided(spec.name, tensor.role, decision.rule, decision.values)
        except InitializerError as exc:
            line, col = doc.mark(where)
            diags.append(Diagnostic(str(exc), line, col, format_path(where)))
        out.append(p)
    return out, decided, diags


def _tensor(spec: SpecRecipe, layer: Layer, p: ParamSpec, index: int | None) -> Tensor:
    name = f"{layer.name}.{p.name}"
    base = spec.base_shapes.get(name) if spec.base_shapes is not None else None
    if spec.base_shapes is not None and (base is None or len(base) != len(p.shape)):
        base = None  # (reported by check_base)
    return Tensor(name, layer.role_of(p), layer.kind_of(p), tuple(p.shape), p.fans, index, layer.head_dim_of(p), base)


def check_base(spec: SpecRecipe | None, shapes: dict[str, tuple[int, ...]], doc: Document) -> list[Diagnostic]:
    """muP's base spec must hold every tensor of the spec, with the same rank."""
    if spec is None or spec.base_shapes is None:
        return []
    missing = [n for n in shapes if n not in spec.base_shapes]
    ranks = [n for n in shapes if n in spec.base_shapes and len(spec.base_shapes[n]) != len(shapes[n])]
    line, col = doc.mark(("init", "base"))
    diags = []
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        diags.append(Diagnostic(f"the base spec has no tensor {shown} ({len(missing)} of this spec's tensors): it "
                                "must be the same network at other widths", line, col, "init.base"))  # fmt: skip
    for n in ranks[:4]:
        diags.append(Diagnostic(f"{n} has shape {list(shapes[n])} here and {list(spec.base_shapes[n])} in the base "
                                "spec: the ranks differ", line, col, "init.base"))  # fmt: skip
    return diags


def recipe_config(spec: SpecRecipe | None) -> dict[str, Any] | None:
    """The resolved recipe, as the spec would write it (``{recipe: gpt2, std: 0.02, layers: 12}``)."""
    if spec is None:
        return None
    config = spec.recipe.get_config()
    return {"recipe": config.pop("name"), **{k: v for k, v in config.items() if v is not None}}
