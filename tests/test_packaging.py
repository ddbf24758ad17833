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
