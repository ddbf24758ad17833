"""``netspec import hf``, ``export --to hf`` and ``audit`` from the command line (no transformers needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import netspec
from netspec.cli import main
from netspec.importers.hf import describe
from netspec.importers.hf_spec import spec_text

TINYLLAMA = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
    "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22,
    "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float32",
    "transformers_version": "4.31.0.dev0", "use_cache": False, "vocab_size": 32000,
}  # fmt: skip
GPT2_SMALL = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 768,
              "n_head": 12, "n_layer": 12, "n_positions": 1024, "activation_function": "gelu_new"}  # fmt: skip
TINY = {**TINYLLAMA, "hidden_size": 32, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 50, "max_position_embeddings": 16}  # fmt: skip


@pytest.mark.parametrize(("config", "count"), [(TINYLLAMA, 1_100_048_384), (GPT2_SMALL, 124_439_808)])
def test_imported_specs_have_transformers_parameter_counts(config, count):
    """TinyLlama-1.1B and GPT-2 small: the counts transformers' models report (GPT-2's tied head counted once)."""
    net = netspec.loads(spec_text(describe(config), "m", "config.json"), "m.yaml", max_params=2 * 10**9)
    assert net.num_params == count


@pytest.mark.parametrize("config", [TINYLLAMA, GPT2_SMALL, {**TINY, "attention_bias": True}])
def test_imported_specs_are_in_fmt_layout(tmp_path, config):
    """What `import hf` writes passes `netspec fmt --check` (a repository's pre-commit hook) unchanged."""
    out = tmp_path / "m.yaml"
    assert main(["import", "hf", str(_folder(tmp_path, config)), "-o", str(out)]) == 0
    assert main(["fmt", "--check", str(out)]) == 0


def _folder(tmp_path, config, name="src"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_import_writes_a_spec_that_builds_and_takes_any_length(tmp_path, capsys):
    src = _folder(tmp_path, TINY)
    out = tmp_path / "tiny.yaml"
    assert main(["import", "hf", str(src), "-o", str(out)]) == 0
    assert "LlamaForCausalLM" in capsys.readouterr().out
    net = netspec.load(str(out))
    text = out.read_text()
    assert "n_layers: 2" in text and "recipe: hf_llama" in text and "input: [null]" in text
    params = net.initialize()
    for length in (1, 5, 16):
        logits = net.forward(np.zeros((1, length), np.int64), params)
        assert logits.shape == (1, length, 50)
    assert main(["import", "hf", str(src), "-o", str(out)]) == 2  # exists: --force replaces it
    assert main(["import", "hf", str(src), "-o", str(out), "--force", "--seed", "7"]) == 0
    assert netspec.load(str(out)).seed == 7


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling.rope_type: 'yarn' is not implemented"),
        ({"architectures": ["BertForMaskedLM"]}, "'BertForMaskedLM' is not an architecture netspec imports"),
    ],
)
def test_import_refuses_what_it_cannot_honour(tmp_path, capsys, change, words):
    src = _folder(tmp_path, {**TINY, **change})
    assert main(["import", "hf", str(src), "-o", str(tmp_path / "x.yaml")]) == 1
    assert words in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_import_usage_errors(tmp_path):
    src = _folder(tmp_path, TINY)
    assert main(["import", "hf", str(src), "-o", str(tmp_path / "x.json")]) == 2
    assert main(["import", "hf", str(src), "-o", str(tmp_path / "missing" / "x.yaml")]) == 2
    assert main(["import", "hf", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.yaml")]) == 1


def test_unknown_config_fields_are_carried_and_warned(tmp_path, capsys):
    src = _folder(tmp_path, {**TINY, "my_flag": 3})
    assert main(["import", "hf", str(src), "-o", str(tmp_path / "x.yaml")]) == 0
    assert "my_flag" in capsys.readouterr().err
    assert netspec.load(str(tmp_path / "x.yaml")).spec["x-hf"]["config"]["my_flag"] == 3


def test_export_verify_and_audit_round_trip(tmp_path, capsys):
    """An exported checkpoint verifies (bytes and laws, read back through transformers' names and layouts) and
    passes the audit; one tensor redrawn at the wrong scale fails both, named."""
    src = _folder(tmp_path, TINY)
    spec = tmp_path / "tiny.yaml"
    assert main(["import", "hf", str(src), "-o", str(spec)]) == 0
    out = tmp_path / "ckpt"
    assert main(["export", str(spec), "--to", "hf", "-o", str(out), "--max-shard-size", "40KB"]) == 0
    assert (out / "model.safetensors.index.json").exists() and (out / "config.json").exists()
    assert main(["verify", str(spec), "--weights", str(out)]) == 0
    capsys.readouterr()
    assert main(["audit", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert all(t["passed"] for t in report["tensors"])
    assert "model.layers.1.self_attn.o_proj.weight" in {t["name"] for t in report["tensors"]}
    index = json.loads((out / "model.safetensors.index.json").read_text())
    name = "model.layers.1.self_attn.o_proj.weight"
    shard = out / index["weight_map"][name]
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(shard))
    tensors[name] = tensors[name] * np.float32(10)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    assert main(["verify", str(spec), "--weights", str(out)]) == 1
    assert "layers_2.self_attn.output.weights: not the bytes seed 0 produces" in capsys.readouterr().out
    assert main(["audit", str(out)]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.rstrip().endswith("FAIL")]
    assert [line.split()[0] for line in failed] == [name]


@pytest.mark.parametrize("layout", ["transposed", "concatenated", "as is"])
@pytest.mark.parametrize("run", [1, 5, 6, 7, 64, 1 << 22])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_runs_placed_in_any_order_build_the_stored_tensor(layout, run, rank):
    """Runs of each part's elements (shorter than a row, a row, not dividing the rows, longer than the part;
    the parts interleaved), placed into the stored buffer, give exactly ``to_hf``'s tensor."""
    from netspec.importers.hf_layout import Stored

    rng = np.random.default_rng(5)
    widths = (4, 3, 5) if layout == "concatenated" else (6,)
    arrays = [rng.standard_normal((*(2,) * (rank - 1), w)).astype(np.float32) for w in widths]
    if rank == 1 and layout == "transposed":
        arrays = [rng.standard_normal(6).astype(np.float32)]
    stored = Stored("t", tuple("qkv"[: len(arrays)]), layout)
    shapes = [a.shape for a in arrays]
    expected = stored.to_hf(arrays)
    buffer = np.full(expected.shape, np.nan, np.float32)
    runs = [(i, first, a.reshape(-1)[first:first + run])
            for i, a in enumerate(arrays) for first in range(0, a.size, run)]
    for i, first, values in runs[::2] + runs[1::2]:
        stored.place(buffer, i, shapes, first, values)
    np.testing.assert_array_equal(buffer, expected)


def test_max_params_is_a_flag_of_every_command_that_compiles_a_model(tmp_path, capsys):
    """A model over the default 2e9 parameters (LLaMA-7B's shape) needs --max-params on import, export,
    verify, eval, explain and audit alike; under the limit each refuses with exit 1, naming the flag, and
    import writes nothing."""
    src = _folder(tmp_path, TINY)
    spec = tmp_path / "tiny.yaml"
    assert main(["import", "hf", str(src), "-o", str(spec), "--max-params", "1000"]) == 1
    assert "over the limit of 1,000 (raise --max-params" in capsys.readouterr().err and not spec.exists()
    assert main(["import", "hf", str(src), "-o", str(spec)]) == 0
    out = tmp_path / "ckpt"
    assert main(["export", str(spec), "--to", "hf", "-o", str(out), "--max-params", "1000"]) == 1
    assert not out.exists() or not any(out.iterdir())
    assert main(["export", str(spec), "--to", "hf", "-o", str(out)]) == 0
    ids = tmp_path / "ids.npy"
    np.save(ids, np.zeros((1, 3), np.int64))
    for argv in (["verify", str(spec), "--weights", str(out)], ["eval", str(spec), "--input", str(ids)],
                 ["explain", str(spec)], ["audit", str(out)]):  # fmt: skip
        capsys.readouterr()
        assert main([*argv, "--max-params", "1000"]) == 1, argv
        assert "over the limit of 1,000" in capsys.readouterr().err + capsys.readouterr().out, argv
        assert main([*argv, "--max-params", "100000000"]) == 0, argv
