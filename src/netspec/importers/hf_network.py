"""A network compiled from a spec that ``netspec import hf`` wrote, read back as the
:class:`~netspec.importers.hf.HFModel` it is (for ``export --to hf``, ``verify`` and ``audit`` of checkpoints).

The architecture is named by ``x-hf.architecture``; everything else (widths, heads, norms, rotary, tie,
biases) comes from the compiled layers, so a spec edited after its import (more layers, other widths)
exports the model it now describes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError
from netspec.importers.hf import FAMILY_MODEL_TYPE, HFModel

if TYPE_CHECKING:
    from netspec.nn.network import CompiledLayer, Network


class HFExportError(NetspecError):
    """The network is not laid out as a Hugging Face architecture netspec exports."""


def model_of(net: Network) -> HFModel:
    """The :class:`HFModel` the network is (see the module doc).

    Raises:
        HFExportError: no ``x-hf.architecture``, or a layer the architecture needs is missing or differs.
    """
    meta = net.spec.get("x-hf")
    arch = meta.get("architecture") if isinstance(meta, dict) else None
    if arch not in FAMILY_MODEL_TYPE:
        raise HFExportError(f"{net.source}: --to hf exports specs laid out as `netspec import hf` writes them; "
                            f"x-hf.architecture must name one of {', '.join(sorted(FAMILY_MODEL_TYPE))}"
                            f"{f' (it says {arch!r})' if arch else ''}")  # fmt: skip
    assert isinstance(meta, dict)
    config = meta.get("config")
    carried: dict[str, Any] = config if isinstance(config, dict) else {}
    layers = {cl.name: cl for cl in net.layers}
    reader = _Reader(net, layers)
    return reader.gpt2(arch, carried) if arch == "GPT2LMHeadModel" else reader.llama(arch, carried)


class _Reader:
    def __init__(self, net: Network, layers: dict[str, CompiledLayer]):
        self.net = net
        self.layers = layers

    def layer(self, name: str, kind: str) -> CompiledLayer:
        cl = self.layers.get(name)
        if cl is None or cl.layer.type != kind:
            found = f"a {cl.layer.type} layer" if cl else "no such layer"
            raise HFExportError(f"{self.net.source}: the architecture needs a {kind} layer named {name!r} ({found})")
        return cl

    def count(self, prefix: str, inner: str) -> int:
        n = 0
        while f"{prefix}_{n + 1}.{inner}" in self.layers:
            n += 1
        if n == 0:
            raise HFExportError(f"{self.net.source}: no decoder layers ({prefix}_1.{inner} ...)")
        return n

    def option(self, cl: CompiledLayer, key: str, default: Any = None) -> Any:
        return cl.layer.options.get(key, default)

    def llama(self, arch: str, carried: dict[str, Any]) -> HFModel:
        embed = self.layer("embed_tokens", "embedding")
        attn = self.layer("layers_1.self_attn", "multi_head_attention")
        gate = self.layer("layers_1.mlp.gate_proj", "dense")
        norm = self.layer("norm", "rms_norm")
        head = self.layer("lm_head", "dense")
        heads = self.option(attn, "heads")
        rotary = self.option(attn, "rotary") or {}
        qkv_bias, out_bias = _attention_biases(attn)
        return HFModel(
            architecture=arch, family="llama", model_type=FAMILY_MODEL_TYPE[arch],
            vocab=self.option(embed, "vocab"), d=self.option(embed, "dim"),
            n_layers=self.count("layers", "self_attn"), heads=heads, kv_heads=self.option(attn, "kv_heads", heads),
            head_dim=self.option(attn, "key_dim"), d_ff=self.option(gate, "units"),
            max_positions=int(carried.get("max_position_embeddings", 2048)),
            activation=gate.layer.activation.get_config() if gate.layer.activation.parameters() else
            gate.layer.activation.name,
            norm_eps=_epsilon(norm), std=_std(self.net), tie=bool(self.option(head, "tie")),
            rope_theta=float(rotary.get("theta", 10000.0)), rope_fraction=float(rotary.get("fraction", 1.0)),
            qkv_bias=qkv_bias, out_bias=out_bias, mlp_bias=bool(self.option(gate, "use_bias", True)),
            pad_token_id=self.option(embed, "padding_idx"), dtype=self.net.dtype, carried=carried,
        )  # fmt: skip

    def gpt2(self, arch: str, carried: dict[str, Any]) -> HFModel:
        wte = self.layer("wte", "embedding")
        wpe = self.layer("wpe", "positional_embedding")
        attn = self.layer("h_1.attn", "multi_head_attention")
        fc = self.layer("h_1.mlp.c_fc", "dense")
        ln = self.layer("ln_f", "layer_norm")
        head = self.layer("lm_head", "dense")
        heads = self.option(attn, "heads")
        return HFModel(
            architecture=arch, family="gpt2", model_type="gpt2", vocab=self.option(wte, "vocab"),
            d=self.option(wte, "dim"), n_layers=self.count("h", "attn"), heads=heads, kv_heads=heads,
            head_dim=self.option(attn, "key_dim"), d_ff=self.option(fc, "units"),
            max_positions=self.option(wpe, "length"), activation=fc.layer.activation.get_config(),
            norm_eps=_epsilon(ln), std=_std(self.net), tie=bool(self.option(head, "tie")),
            qkv_bias=True, out_bias=True, mlp_bias=True, dtype=self.net.dtype, carried=carried,
        )  # fmt: skip


def _epsilon(norm: CompiledLayer) -> float:
    return float(norm.layer.epsilon)  # type: ignore[attr-defined]


def _attention_biases(attn: CompiledLayer) -> tuple[bool, bool]:
    names = {p.name for p in attn.params}
    return "query.bias" in names, "output.bias" in names


def _std(net: Network) -> float:
    """``initializer_range``: the recipe's std (0.02 when the spec states none)."""
    init = net.spec.get("init")
    std = init.get("std") if isinstance(init, dict) else None
    return float(std) if isinstance(std, (int, float)) and not isinstance(std, bool) else 0.02
