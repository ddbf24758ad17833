"""The distribution name: free on the package index (``netspec`` is an unrelated project there), used by
every install hint netspec prints and the README shows; the import name and the command stay ``netspec``."""

import re
import subprocess
import sys
from pathlib import Path

from netspec.extras import DISTRIBUTION, install_hint

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # (tomllib is Python 3.11+; netspec supports 3.10)
HINT = re.compile(r"""pip install ["']?([A-Za-z0-9_.-]+)(\[| @)""")


def test_the_distribution_name_is_one_constant():
    assert re.search(r'^name = "(.*)"$', PYPROJECT, re.M)[1] == DISTRIBUTION != "netspec"
    assert re.search(r"^\[project.scripts\]\nnetspec = \"netspec.cli:main\"$", PYPROJECT, re.M)
    assert install_hint("torch") == "pip install 'netspec-nn[torch]'"


def test_every_install_line_names_the_distribution():
    sources = [p for p in sorted((ROOT / "src").rglob("*.py")) if p.name != "extras.py"]  # it names the wrong one
    texts = {p: p.read_text() for p in [ROOT / "README.md", *sources]}
    found = [(p.name, m[1]) for p, text in texts.items() for m in HINT.finditer(text) if m[1] != "."]  # . a checkout
    assert found and all(name == DISTRIBUTION for _, name in found), found
    assert not [p for p, text in texts.items() if "'netspec[" in text or '"netspec[' in text]


def test_python_m_netspec_runs_the_command():
    r = subprocess.run([sys.executable, "-m", "netspec", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("netspec "), r.stderr


def test_ml_dtypes_is_the_bfloat16_extra_not_a_core_dependency():
    core = re.search(r"^dependencies = \[(.*?)\]", PYPROJECT, re.M | re.S)[1]
    assert "numpy" in core and "ml_dtypes" not in core
    for extra in ("bfloat16", "test"):
        assert re.search(rf'^{extra} = \[[^\]]*"ml_dtypes>=', PYPROJECT, re.M | re.S), extra


HALF_SPEC = "netspec: 1\ninput: [4]\ndtype: {dtype}\nlayers:\n  - {{type: dense, units: 3, name: fc}}\n"
WITHOUT_ML_DTYPES = ("import sys; sys.modules['ml_dtypes'] = None; from netspec.cli import main; "
                     "sys.exit(main(sys.argv[1:]))")


def test_without_ml_dtypes_bfloat16_is_the_missing_extra_error_and_float16_works(tmp_path):
    outputs = {}
    for dtype in ("bfloat16", "float16"):
        spec = tmp_path / f"{dtype}.yaml"
        spec.write_text(HALF_SPEC.format(dtype=dtype))
        out = tmp_path / f"{dtype}.safetensors"
        outputs[dtype] = out, subprocess.run([sys.executable, "-c", WITHOUT_ML_DTYPES, "build", str(spec), "-o",
                                              str(out)], capture_output=True, text=True, timeout=120)  # fmt: skip
    (bf16, r), (f16, r16) = outputs["bfloat16"], outputs["float16"]
    assert r.returncode == 1 and install_hint("bfloat16") in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not bf16.exists() and not list(tmp_path.glob(".*"))  # nothing half-written
    assert r16.returncode == 0 and f16.stat().st_size > 3 * 4 * 2, r16.stderr
