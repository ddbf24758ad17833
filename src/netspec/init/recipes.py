"""Initialization recipes: which initializer each tensor gets, by the *role* of its layer, as the code that
defines each recipe does it.

A spec names one recipe at the top (``init: {recipe: gpt2, std: 0.02, layers: "${n_layers}"}``); each
layer has a role (``role:``, else its type's default, below). For every parameter the recipe returns an
initializer config, or nothing (the tensor keeps what it would have had). Precedence, highest first: the
layer's own initializer key, the recipe, ``defaults:``, ``auto``. A recipe decides from:

* the tensor's role and kind (``kernel``, ``table`` of an embedding, ``bias``, ``gain`` and ``shift`` of a
  norm; other tensors, such as recurrent kernels and batch-norm statistics, are never decided);
* its fans (netspec's input-major layout: a dense kernel ``(fan_in, fan_out)``; an embedding table
  ``(vocab, dim)``);
* ``index``, the 1-based index of the innermost ``repeat`` the layer is in (the layer index ℓ = index - 1
  of the recipes that scale with depth);
* the recipe's own parameters (σ, L, ...), which may be expressions over the spec's constants.

Every recipe below states its formula and the code or paper it follows; where implementations of the
same name disagree, the docstring says which one it is. The decisions are initializer configs (``normal``,
``truncated_normal``, ``glorot_normal``, ``variance_scaling``, ``zeros``, ...), so ``explain``, lock files
and ``verify`` see the resolved numbers: ``verify`` checks each tensor against its own recipe-scaled law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from netspec.errors import InitializerError
from netspec.init import fans
from netspec.init.fans import Fans
from netspec.registry import Configurable, Registry, check_number

ROLES: dict[str, str] = {
    "embedding": "a token or position table (the default of embedding layers)",
    "hidden": "any other kernel (the default of dense and convolution layers)",
    "query": "an attention query projection (attention's default for its query kernel)",
    "key": "an attention key projection (attention's default for its key kernel)",
    "value": "an attention value projection (attention's default for its value kernel)",
    "residual_in": "a layer inside a residual branch before its last: GPT-2's c_fc, Llama's w1 (gate_proj), "
    "fc1, a ResNet block's first convolution",
    "residual_up": "the ungated half of a gated MLP: Llama's w3 (up_proj)",
    "residual_out": "the last layer of a residual branch, writing into the residual stream: GPT-2's c_proj, "
    "Llama's wo and w2 (down_proj), fc2, a ResNet block's last convolution (attention's default for its output "
    "kernel)",
    "readout": "the output layer: a language-model head, a classifier",
    "gate": "a gate on a residual branch: a norm whose γ scales the branch (the last batch norm of a ResNet "
    "block), or a kernel that does (ReZero's α)",
    "norm": "a normalization layer's γ and β (the default of norm layers)",
}
KINDS = ("kernel", "table", "bias", "gain", "shift")
"""The tensors a recipe decides: kernels, embedding tables, biases, a norm's γ (gain) and β (shift)."""

RECIPES: Registry[type[Recipe]] = Registry("init recipe")


class RecipeError(InitializerError):
    """A recipe cannot decide a tensor (a parameter it needs is missing, or the layer is in no repeat)."""


class RecipeParameterError(InitializerError):
    """A recipe's parameters are wrong: ``problems`` lists (parameter, message), every one found."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class Tensor:
    """What a recipe sees of one parameter."""

    name: str
    role: str
    kind: str
    shape: tuple[int, ...]
    fans: Fans
    index: int | None = None
    """The 1-based index of the innermost repeat the layer is in (None outside any)."""
    head_dim: int | None = None
    """The attention layer's key_dim, for its projections."""
    base_shape: tuple[int, ...] | None = None
    """The same tensor's shape in the base-width spec (muP)."""


@dataclass(frozen=True)
class Decision:
    """A recipe's initializer for one tensor, the rule it applied and with which numbers."""

    config: dict[str, Any]
    rule: str
    values: str = ""


ZEROS: dict[str, Any] = {"name": "zeros"}
ONES: dict[str, Any] = {"name": "ones"}


def normal(std: float) -> dict[str, Any]:
    return {"name": "normal", "mean": 0.0, "std": std}


def truncated(std: float, cutoff: float) -> dict[str, Any]:
    """N(0, std²) cut at ±cutoff·std (no variance correction: PyTorch's ``trunc_normal_(std, a=-c·std, b=c·std)``)."""
    return {"name": "truncated_normal", "mean": 0.0, "std": std, "lower": -cutoff, "upper": cutoff}


def _g(value: float) -> str:
    return f"{value:.6g}"


@dataclass(frozen=True)
class Recipe(Configurable):
    """Base class: the fields are the recipe's parameters; :meth:`decide` is its rule."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    """Parameters a spec must give (the others have defaults)."""
    SOURCE: ClassVar[str] = ""
    """The code or paper it follows (one line, for the README table)."""
    RULES: ClassVar[dict[str, str]] = {}
    """Role (or tensor kind) -> formula, for the README table and ``netspec explain``."""

    def decide(self, t: Tensor) -> Decision | None:
        """The initializer of ``t``, or None when the recipe leaves it to ``defaults`` and ``auto``."""
        raise NotImplementedError

    def width_multiplier(self, t: Tensor) -> float | None:
        """The tensor's width multiplier, for recipes that define one (muP)."""
        return None

    BOUNDS: ClassVar[dict[str, dict[str, Any]]] = {}
    """Parameter -> its bounds as JSON Schema (:data:`POSITIVE`, :func:`at_least`): published in the schema,
    so a spec's value out of them is reported at the parameter, and checked when the recipe is built."""

    def __post_init__(self) -> None:
        """Every parameter out of its bounds, every required one missing and every broken cross-parameter rule,
        at once (RecipeParameterError, each problem with its parameter)."""
        problems = [(key, problem) for key, bounds in self.BOUNDS.items()
                    if (problem := _out_of_bounds(key, getattr(self, key), bounds))]  # fmt: skip
        problems += [(key, f"init recipe {self.name!r} needs {key!r}") for key in self.REQUIRED
                     if getattr(self, key) is None]  # fmt: skip
        problems += self._rules()
        if problems:
            raise RecipeParameterError(problems)

    def _rules(self) -> list[tuple[str, str]]:
        """Problems of rules that involve the parameters' kinds or several parameters: (parameter, message)."""
        return []

    def depth_index(self, t: Tensor) -> int:
        """The 0-based layer index ℓ = index - 1 (RecipeError outside any repeat)."""
        if t.index is None:
            raise RecipeError(f"recipe {self.name!r} scales {t.name} ({t.role}) by its layer index ℓ, but its layer "
                              "is in no repeat: put the blocks in a 'repeat' (index is ℓ + 1)")  # fmt: skip
        return t.index - 1


POSITIVE: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
"""A parameter's bounds: a number > 0."""


def at_least(least: int) -> dict[str, Any]:
    """A parameter's bounds: an integer >= ``least``."""
    return {"type": "integer", "minimum": least}


def _out_of_bounds(name: str, value: Any, bounds: dict[str, Any]) -> str:
    """What is wrong with ``value`` for ``bounds`` ("" if nothing; None is left to REQUIRED)."""
    if value is None:
        return ""
    if bounds["type"] == "integer":
        least = bounds.get("minimum", 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            kind = "a positive integer" if least == 1 else f"an integer >= {least}"
            return f"{name} must be {kind}, got {value!r}"
        return ""
    try:
        check_number(name, value, positive="exclusiveMinimum" in bounds)
    except InitializerError as exc:
        return str(exc)
    return ""


def _linear_defaults(t: Tensor) -> Decision | None:
    """Biases 0, a norm's γ 1 and β 0 (what every recipe here does for them)."""
    if t.kind == "bias":
        return Decision(ZEROS, "0")
    if t.kind == "gain":
        return Decision(ONES, "1")
    if t.kind == "shift":
        return Decision(ZEROS, "0")
    return None


@RECIPES.register
@dataclass(frozen=True)
class GPT2(Recipe):
    """GPT-2: every kernel and embedding table N(0, σ²), σ = ``std`` (0.02); each residual output projection
    (role ``residual_out``: attn.c_proj and mlp.c_proj) N(0, (σ/√(2L))²), L = ``layers``; biases 0, norms
    γ 1, β 0.

    Follows transformers ``models/gpt2/modeling_gpt2.py``, ``GPT2PreTrainedModel._init_weights``:
    ``normal_(std=initializer_range)`` on every Linear/Conv1D and Embedding, then every ``c_proj.weight``
    ``normal_(std=initializer_range / sqrt(2 * n_layer))`` (the GPT-2 paper: "scale the weights of
    residual layers at initialization by 1/√N", two residual layers per block); karpathy/nanoGPT
    ``model.py`` does the same.
    """

    std: float = 0.02
    layers: int | None = None
    name = "gpt2"
    REQUIRED = ("layers",)
    SOURCE = "transformers `modeling_gpt2.py` `_init_weights`; karpathy/nanoGPT `model.py`"
    RULES = {"residual_out": "N(0, (σ/√(2L))²)", "every other kernel, embedding": "N(0, σ²), σ = 0.02",
             "bias, norm": "0; γ 1, β 0"}  # fmt: skip

    BOUNDS = {"std": POSITIVE, "layers": at_least(1)}

    def decide(self, t: Tensor) -> Decision | None:
        assert self.layers is not None
        if t.kind in ("kernel", "table"):
            if t.role == "residual_out":
                std = self.std / math.sqrt(2 * self.layers)
                return Decision(normal(std), "N(0, (σ/√(2L))²)", f"σ = {_g(self.std)}, L = {self.layers}")
            return Decision(normal(self.std), "N(0, σ²)", f"σ = {_g(self.std)}")
        return _linear_defaults(t)


@RECIPES.register
@dataclass(frozen=True)
class HFLlama(Recipe):
    """Hugging Face's default initialization (Llama, Mistral, Qwen2 and most decoder models): every kernel
    and embedding table N(0, σ²), σ = ``std`` (``initializer_range``, 0.02), whatever its role; biases 0,
    norms γ 1, β 0. An embedding's padding row (``pad_token_id``) is then 0: the layer's ``padding_idx``.

    Follows transformers ``modeling_utils.py``, ``PreTrainedModel._init_weights`` (5.x; Llama's
    ``LlamaPreTrainedModel`` keeps it): ``init.normal_(std=initializer_range)`` on every ``nn.Linear`` and
    ``nn.Embedding`` weight, ``zeros_`` on their biases and on the embedding's ``padding_idx`` row, ``ones_``
    on every RMSNorm/LayerNorm weight. No depth scaling: a model trained from ``from_config`` starts so.
    """

    std: float = 0.02
    name = "hf_llama"
    SOURCE = "transformers `modeling_utils.py` `PreTrainedModel._init_weights` (Llama, Mistral, Qwen2)"
    RULES = {"every kernel, embedding": "N(0, σ²), σ = initializer_range (0.02)", "bias, norm": "0; γ 1, β 0"}

    BOUNDS = {"std": POSITIVE}

    def decide(self, t: Tensor) -> Decision | None:
        if t.kind in ("kernel", "table"):
            return Decision(normal(self.std), "N(0, σ²)", f"σ = {_g(self.std)}")
        return _linear_defaults(t)


@RECIPES.register
@dataclass(frozen=True)
class Megatron(Recipe):
    """Megatron-LM: ``init_method_normal(σ)``, N(0, σ²), σ = ``init_method_std`` (0.02), for every kernel
    and embedding table; ``scaled_init_method_normal(σ, L, multiplier)``, N(0, σ²/(multiplier·L)),
    L = ``num_layers``, multiplier 2, for the output layers (role ``residual_out``: the attention's
    ``linear_proj`` and the MLP's ``linear_fc2``); biases 0, norms γ 1, β 0.

    Follows NVIDIA/Megatron-LM ``megatron/core/utils.py`` (``init_method_normal``,
    ``scaled_init_method_normal``) and ``megatron/core/transformer/transformer_config.py`` (the output
    layers take ``output_layer_init_method``; embeddings ``embedding_init_method_std``, by default
    ``init_method_std``); EleutherAI/gpt-neox ``megatron/model/init_functions.py``. The same numbers as
    ``gpt2``, with Megatron's names.
    """

    init_method_std: float = 0.02
    num_layers: int | None = None
    multiplier: float = 2.0
    name = "megatron"
    REQUIRED = ("num_layers",)
    SOURCE = "NVIDIA/Megatron-LM `megatron/core/utils.py` `scaled_init_method_normal`"
    RULES = {"residual_out": "N(0, σ²/(multiplier·L))",
             "every other kernel, embedding": "N(0, σ²), σ = init_method_std",
             "bias, norm": "0; γ 1, β 0"}  # fmt: skip

    BOUNDS = {"init_method_std": POSITIVE, "multiplier": POSITIVE, "num_layers": at_least(1)}

    def decide(self, t: Tensor) -> Decision | None:
        assert self.num_layers is not None
        sigma = self.init_method_std
        if t.kind in ("kernel", "table"):
            if t.role == "residual_out":
                std = sigma / math.sqrt(self.multiplier * self.num_layers)
                values = f"σ = {_g(sigma)}, multiplier = {_g(self.multiplier)}, L = {self.num_layers}"
                return Decision(normal(std), "N(0, σ²/(multiplier·L))", values)
            return Decision(normal(sigma), "N(0, σ²)", f"σ = {_g(sigma)}")
        return _linear_defaults(t)


@RECIPES.register
@dataclass(frozen=True)
class OlmoMitchell(Recipe):
    """OLMo's ``mitchell`` init: every kernel TN(σ, ±3σ) with σ = 1/√d_in, d_in its fan_in (att_proj,
    ff_proj, the output head: d_model; attn_out: d_model; ff_out: the MLP width), each residual output
    (role ``residual_out``) further ÷ √(2(ℓ+1)), ℓ the 0-based layer index; embedding tables σ = 1/√dim;
    the cut is at ±3σ relative to σ, with no variance correction; biases 0, norms γ 1, β 0.

    Follows allenai/OLMo ``olmo/initialization.py`` (``init_weights``, ``InitFnType.mitchell``:
    ``std = 1/sqrt(d)``, ``/ sqrt(2 * (layer_id + 1))`` when a layer id is given, ``trunc_normal_(a=-3std,
    b=3std)``) and ``olmo/model.py`` (``OLMoBlock.reset_parameters``: ``attn_out`` 1/√(2·d_model·(ℓ+1)),
    ``ff_out`` 1/√(2·ff_out.in_features·(ℓ+1)); ``wte`` and ``wpe`` 1/√d_model). ``cutoff`` is OLMo's
    ``init_cutoff_factor`` (3).
    """

    cutoff: float = 3.0
    name = "olmo_mitchell"
    SOURCE = "allenai/OLMo `olmo/initialization.py` `init_weights` (mitchell), `olmo/model.py`"
    RULES = {"residual_out": "TN(σ, ±3σ), σ = 1/√(2·d_in·(ℓ+1))", "every other kernel": "TN(σ, ±3σ), σ = 1/√d_in",
             "embedding": "TN(σ, ±3σ), σ = 1/√dim", "bias, norm": "0; γ 1, β 0"}  # fmt: skip

    BOUNDS = {"cutoff": POSITIVE}

    def decide(self, t: Tensor) -> Decision | None:
        if t.kind == "table":
            dim = t.shape[-1]
            return Decision(truncated(1 / math.sqrt(dim), self.cutoff), "TN(σ, ±3σ), σ = 1/√dim", f"dim = {dim}")
        if t.kind == "kernel":
            d = t.fans.fan_in
            if t.role == "residual_out":
                layer = self.depth_index(t)
                std = 1 / math.sqrt(2 * d * (layer + 1))
                return Decision(truncated(std, self.cutoff), "TN(σ, ±3σ), σ = 1/√(2·d_in·(ℓ+1))",
                                f"d_in = {d}, ℓ = {layer}")  # fmt: skip
            return Decision(truncated(1 / math.sqrt(d), self.cutoff), "TN(σ, ±3σ), σ = 1/√d_in", f"d_in = {d}")
        return _linear_defaults(t)


@RECIPES.register
@dataclass(frozen=True)
class LlamaDepth(Recipe):
    """Llama with depth init (torchtitan ``depth_init``, OLMo-core ``InitMethod.llama_depth``): token
    embeddings N(0, 1); wq, wk, wv, w1 (roles ``query``, ``key``, ``value``, ``residual_in``, and any other
    kernel) TN(σ, ±3σ), σ = ``std`` (0.02); **wo, w2 and w3** (roles ``residual_out`` and ``residual_up``)
    TN(σ/√(2(ℓ+1)), ±3σ), ℓ the 0-based layer index; the output head (role ``readout``) TN(d^-½, ±3σ), d its
    fan_in (d_model); biases 0, norms γ 1.

    Follows allenai/OLMo-core ``nn/transformer/init.py`` (``init_linear``: ``trunc_normal_`` at ±3σ;
    ``init_feed_forward``: w3 and then w2 at ``std / sqrt(2 * (block_idx + 1))``; ``init_final_w_out``:
    ``d_model ** -0.5``; ``init_embeddings``: ``normal_`` std 1) and ``nn/attention`` ``init_weights`` (w_out
    the same depth scaling); pytorch/torchtitan ``models/llama3`` (``_depth_init``: ``depth_scaled_std(0.02,
    layer_id)`` for wo, w2 and w3) applies the same scaling but cuts its ``trunc_normal_`` at torch's default
    *absolute* ±2 (no cut at σ = 0.02), where OLMo-core and this recipe cut at ±3σ. karpathy/llama2.c#579
    questions the w3 rule.
    """

    std: float = 0.02
    cutoff: float = 3.0
    name = "llama_depth"
    SOURCE = ("allenai/OLMo-core `nn/transformer/init.py` (`llama_depth`); pytorch/torchtitan `models/llama3` "
              "`_depth_init`")  # fmt: skip
    RULES = {"residual_out, residual_up": "TN(σ/√(2(ℓ+1)), ±3σ)", "embedding": "N(0, 1)",
             "readout": "TN(d^-½, ±3σ)", "every other kernel": "TN(σ, ±3σ), σ = 0.02",
             "bias, norm": "0; γ 1, β 0"}  # fmt: skip

    BOUNDS = {"std": POSITIVE, "cutoff": POSITIVE}

    def decide(self, t: Tensor) -> Decision | None:
        if t.kind == "table":
            return Decision(normal(1.0), "N(0, 1)")
        if t.kind == "kernel":
            if t.role in ("residual_out", "residual_up"):
                layer = self.depth_index(t)
                std = self.std / math.sqrt(2 * (layer + 1))
                return Decision(truncated(std, self.cutoff), "TN(σ/√(2(ℓ+1)), ±3σ)",
                                f"σ = {_g(self.std)}, ℓ = {layer}")  # fmt: skip
            if t.role == "readout":
                d = t.fans.fan_in
                return Decision(truncated(d**-0.5, self.cutoff), "TN(d^-½, ±3σ)", f"d = {d}")
            return Decision(truncated(self.std, self.cutoff), "TN(σ, ±3σ)", f"σ = {_g(self.std)}")
        return _linear_defaults(t)


@RECIPES.register
@dataclass(frozen=True)
class T5(Recipe):
    """T5 (Mesh TensorFlow's init, as transformers has it): f = ``factor`` (T5's ``initializer_factor``, 1);
    embedding tables and the untied output head (role ``readout``) N(0, f²); the query projection N(0,
    f²/(d·d_kv)), d its fan_in (d_model), d_kv the head width (the attention layer's key_dim, else the
    recipe's ``key_dim``); every other kernel N(0, f²/d_in), d_in its fan_in: k and v f²/d_model, o
    f²/(H·d_kv), wi f²/d_model, wo f²/d_ff; norms γ = f, β 0; biases 0.

    Follows transformers ``models/t5/modeling_t5.py``, ``T5PreTrainedModel._init_weights`` (``shared``
    and ``lm_head`` ``normal_(std=factor * 1.0)``; ``T5DenseActDense.wi`` ``factor * d_model ** -0.5``,
    ``wo`` ``factor * d_ff ** -0.5``; ``T5Attention.q`` ``factor * (d_model * key_value_proj_dim) ** -0.5``,
    ``k``, ``v`` ``factor * d_model ** -0.5``, ``o`` ``factor * (n_heads * key_value_proj_dim) ** -0.5``;
    ``T5LayerNorm.weight`` ``factor * 1.0``).
    """

    factor: float = 1.0
    key_dim: int | None = None
    name = "t5"
    SOURCE = "transformers `models/t5/modeling_t5.py` `_init_weights`"
    RULES = {"query": "N(0, f²/(d·d_kv))", "embedding, readout": "N(0, f²)", "every other kernel": "N(0, f²/d_in)",
             "norm": "γ f, β 0", "bias": "0"}  # fmt: skip

    BOUNDS = {"factor": POSITIVE, "key_dim": at_least(1)}

    def decide(self, t: Tensor) -> Decision | None:
        f = self.factor
        if t.kind == "table" or (t.kind == "kernel" and t.role == "readout"):
            return Decision(normal(f), "N(0, f²)", f"f = {_g(f)}")
        if t.kind == "kernel":
            d = t.fans.fan_in
            if t.role == "query":
                d_kv = t.head_dim or self.key_dim
                if d_kv is None:
                    raise RecipeError(f"recipe 't5' scales the query kernel {t.name} by its head width d_kv: give the "
                                      "recipe key_dim (an attention layer gives its own)")  # fmt: skip
                std = f / math.sqrt(d * d_kv)
                return Decision(normal(std), "N(0, f²/(d·d_kv))", f"f = {_g(f)}, d = {d}, d_kv = {d_kv}")
            return Decision(normal(f / math.sqrt(d)), "N(0, f²/d_in)", f"f = {_g(f)}, d_in = {d}")
        if t.kind == "gain":
            return Decision({"name": "constant", "value": f}, "γ = f", f"f = {_g(f)}")
        return _linear_defaults(t)


@RECIPES.register
@dataclass(frozen=True)
class DeepNet(Recipe):
    """DeepNet (DeepNorm's init): the feed-forward layers, the value and the output projections (roles
    ``residual_in``, ``residual_up``, ``residual_out``, ``value``) Xavier normal with gain β = (8N)^(-1/4),
    N = ``layers`` (an encoder-only or decoder-only stack); query and key Xavier normal with gain 1.
    Other tensors are left to the spec.

    Follows Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers" (2022), Figure 2's pseudocode
    (``xavier_normal_(w, gain=β)`` for ffn, v_proj and out_proj; gain 1 for q_proj and k_proj; β =
    (8N)^(-1/4) encoder- or decoder-only). microsoft/torchscale ``architecture/encoder.py`` applies the same
    β differently: it divides its default init (Xavier uniform, q/k/v with gain 1/√2; fc1, fc2 PyTorch's
    ``nn.Linear`` default) of ``fc1``, ``fc2``, ``out_proj`` and ``v_proj``, biases included, by (8N)^(1/4).
    The residual scaling α = (2N)^(1/4) of DeepNorm is part of the forward pass, not of the init.
    """

    layers: int | None = None
    name = "deepnet"
    REQUIRED = ("layers",)
    SOURCE = "Wang et al. 2022, DeepNet (Fig. 2); microsoft/torchscale `architecture/encoder.py`"
    RULES = {"residual_in, residual_up, residual_out, value": "Xavier normal, gain β = (8N)^(-1/4)",
             "query, key": "Xavier normal, gain 1"}  # fmt: skip

    BOUNDS = {"layers": at_least(1)}

    def decide(self, t: Tensor) -> Decision | None:
        assert self.layers is not None
        if t.kind != "kernel":
            return None
        if t.role in ("residual_in", "residual_up", "residual_out", "value"):
            beta = (8 * self.layers) ** -0.25
            return Decision({"name": "glorot_normal", "gain": beta}, "Xavier normal, gain β = (8N)^(-1/4)",
                            f"N = {self.layers}, β = {_g(beta)}")  # fmt: skip
        if t.role in ("query", "key"):
            return Decision({"name": "glorot_normal", "gain": 1.0}, "Xavier normal, gain 1")
        return None


@RECIPES.register
@dataclass(frozen=True)
class Fixup(Recipe):
    """Fixup: in each residual branch of m layers (``branch_layers``, 2 for a basic block, 3 for a
    bottleneck), the layers before the last (role ``residual_in``) He normal with fan_out, N(0, 2/fan_out),
    scaled by L^(-1/(2m-2)), L = ``layers`` (the number of residual branches); the last layer of each branch
    (role ``residual_out``) 0; the classifier (role ``readout``) 0, weight and bias. Other layers (the stem,
    projection shortcuts) keep their own initializers; Fixup's scalar biases and multipliers have no netspec
    layer.

    Follows hongyi-zhang/Fixup ``cifar/models/fixup_resnet_cifar.py`` and
    ``imagenet/models/fixup_resnet_imagenet.py`` (``normal_(conv.weight, std=sqrt(2 / (out_channels *
    kernel area))) * num_layers ** (-0.5)`` for a basic block's conv1, ``** (-0.25)`` for a bottleneck's
    conv1 and conv2; the last conv and ``fc`` constant 0; the ImageNet model's downsample convs He normal,
    fan_out) and Zhang, Dauphin and Ma, "Fixup Initialization" (ICLR 2019).
    """

    layers: int | None = None
    branch_layers: int = 2
    name = "fixup"
    REQUIRED = ("layers",)
    SOURCE = "hongyi-zhang/Fixup `cifar/models/fixup_resnet_cifar.py`, `imagenet/models/fixup_resnet_imagenet.py`"
    RULES = {"residual_in": "N(0, 2/fan_out) · L^(-1/(2m-2))", "residual_out": "0", "readout": "0 (and its bias)"}

    BOUNDS = {"layers": at_least(1), "branch_layers": at_least(2)}

    def decide(self, t: Tensor) -> Decision | None:
        assert self.layers is not None
        m = self.branch_layers
        if t.role == "residual_in" and t.kind == "kernel":
            scale = 2.0 * self.layers ** (-1.0 / (m - 1))  # variance: (L^(-1/(2m-2)))² = L^(-1/(m-1))
            config = {"name": "variance_scaling", "scale": scale, "mode": "fan_out", "distribution": "normal"}
            return Decision(config, "N(0, 2/fan_out) · L^(-1/(2m-2))", f"L = {self.layers}, m = {m}")
        if t.role in ("residual_out", "readout") and t.kind == "kernel":
            return Decision(ZEROS, "0")
        if t.role in ("residual_in", "residual_out", "readout") and t.kind == "bias":
            return Decision(ZEROS, "0")
        return None


@RECIPES.register
@dataclass(frozen=True)
class ZeroResidual(Recipe):
    """Zero residual: every gate on a residual branch (role ``gate``: a norm's γ, or a kernel) starts at 0,
    so each block starts as the identity. Other tensors are left to the spec.

    Follows torchvision ``models/resnet.py`` (``zero_init_residual``: the last batch norm's weight of each
    block ``constant_(0)``), timm's ``zero_init_last`` and ReZero (Bachlechner et al. 2020,
    majumderb/rezero: the residual weight α initialized to 0).
    """

    name = "zero_residual"
    SOURCE = "torchvision `models/resnet.py` `zero_init_residual`; majumderb/rezero"
    RULES = {"gate": "0 (a norm's γ, or a kernel)"}

    def decide(self, t: Tensor) -> Decision | None:
        if t.role == "gate" and t.kind in ("gain", "kernel"):
            return Decision(ZEROS, "0")
        return None


@RECIPES.register
@dataclass(frozen=True)
class SmallInit(Recipe):
    """small_init (Nguyen and Salazar, "Transformers without Tears", 2019): every kernel and embedding table
    N(0, 2/(5d)), d = ``width`` (the model width); with ``layers`` (L) the residual outputs (role
    ``residual_out``) take GPT-NeoX's ``wang_init``, N(0, (2/(L·√d))²); biases 0, norms γ 1, β 0.

    Follows EleutherAI/gpt-neox ``megatron/model/init_functions.py`` (``small_init_init_method``: ``std =
    sqrt(2 / (5 * dim))``; ``wang_init_method``: ``std = 2 / n_layers / sqrt(dim)``, dim the hidden size);
    LitGPT's pretraining uses the same √(2/(5d)).
    """

    width: int | None = None
    layers: int | None = None
    name = "small_init"
    REQUIRED = ("width",)
    SOURCE = "EleutherAI/gpt-neox `megatron/model/init_functions.py` (`small_init`, `wang_init`)"
    RULES = {"every kernel, embedding": "N(0, 2/(5d))", "residual_out (with layers)": "N(0, (2/(L√d))²)",
             "bias, norm": "0; γ 1, β 0"}  # fmt: skip

    BOUNDS = {"width": at_least(1), "layers": at_least(1)}

    def decide(self, t: Tensor) -> Decision | None:
        assert self.width is not None
        d = self.width
        if t.kind in ("kernel", "table"):
            if t.role == "residual_out" and self.layers is not None:
                std = 2 / (self.layers * math.sqrt(d))
                return Decision(normal(std), "N(0, (2/(L√d))²)", f"L = {self.layers}, d = {d}")
            return Decision(normal(math.sqrt(2 / (5 * d))), "N(0, 2/(5d))", f"d = {d}")
        return _linear_defaults(t)


@RECIPES.register
@dataclass(frozen=True)
class MuP(Recipe):
    """muP's initialization: each tensor's width multiplier m is its main width over the same tensor's in
    the base-width spec ``base`` (a spec file; without one every m is 1); hidden kernels (two width
    dimensions) N(0, σ²/m), σ = ``std`` (0.02); kernels and tables with one width dimension N(0, σ²); the
    output layer (role ``readout``) and the query projection (role ``query``) 0; biases 0, norms γ 1, β 0.
    Each tensor's m is written to the weights file's metadata (``netspec_width_mult``), for an optimizer
    that divides hidden learning rates by it. The forward half of muP (1/d attention, the readout's 1/m
    output multiplier) is the model's, not the init's.

    Follows microsoft/mup: ``mup/infshape.py`` (a dimension is a width if it differs from the base;
    ``width_mult`` = dim / base_dim of the last width dimension in PyTorch's layout, the fan_in of a
    ``Linear``), ``mup/init.py`` (``normal_``: std × width_mult^(-1/2) for tensors with two width
    dimensions), ``mup/layer.py`` (``MuReadout(readout_zero_init=True)``) and its README (the output layer
    and the query matrix initialized to 0, as ``examples/Transformer/model.py`` does).
    """

    std: float = 0.02
    base: str | None = None
    name = "mup"
    SOURCE = "microsoft/mup `mup/init.py`, `mup/infshape.py`, `mup/layer.py` (MuReadout)"
    RULES = {"readout, query": "0", "hidden (two width dims)": "N(0, σ²/m)",
             "one width dim, embedding": "N(0, σ²)", "bias, norm": "0; γ 1, β 0"}  # fmt: skip

    BOUNDS = {"std": POSITIVE}

    def _rules(self) -> list[tuple[str, str]]:
        if self.base is not None and not isinstance(self.base, str):
            return [("base", f"base must be a spec file's path, got {self.base!r}")]
        return []

    def decide(self, t: Tensor) -> Decision | None:
        if t.kind in ("kernel", "table"):
            if t.role in ("readout", "query") and t.kind == "kernel":
                return Decision(ZEROS, "0")
            widths, m = _width_dims(t)
            if widths >= 2:
                return Decision(normal(self.std / math.sqrt(m)), "N(0, σ²/m)", f"σ = {_g(self.std)}, m = {_g(m)}")
            return Decision(normal(self.std), "N(0, σ²)", f"σ = {_g(self.std)}, m = {_g(m)}")
        return _linear_defaults(t)

    def width_multiplier(self, t: Tensor) -> float | None:
        return _width_dims(t)[1]


def _width_dims(t: Tensor) -> tuple[int, float]:
    """How many of the tensor's dimensions are widths (differ from the base), and its width multiplier: the
    last width dimension's size over its base size, in PyTorch's layout (muP's ``InfShape.width_mult``)."""
    if t.base_shape is None:
        return 0, 1.0
    dims, base = t.shape, t.base_shape
    if t.kind == "kernel":  # PyTorch's layout, the torch exporter's rule; tables and vectors as they are
        dims, base = fans.torch_layout(dims), fans.torch_layout(base)
    widths = [(d, b) for d, b in zip(dims, base, strict=True) if d != b]
    return len(widths), (widths[-1][0] / widths[-1][1] if widths else 1.0)


def build_recipe(written: dict[str, Any]) -> Recipe:
    """A recipe from the spec's ``init`` mapping (``{recipe: NAME, ...parameters}``).

    Raises:
        InitializerError: an unknown recipe or parameter, or an invalid value.
    """
    return RECIPES.build({"name": written.get("recipe"), **{k: v for k, v in written.items() if k != "recipe"}})
