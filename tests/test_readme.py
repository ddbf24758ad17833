"""The README's recipes work as written: the CI job's lines run here, and the pre-commit hooks do
what the README says (scoped to specs/, every file checked and reported)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def env_with_netspec() -> dict:
    """PATH with this interpreter's scripts folder first, where `pip install` put the netspec command."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def ci_recipe() -> list[str]:
    match = re.search(r"<!-- ci-recipe -->\n```sh\n(.*?)```", README, re.S)
    assert match, "the README's CI recipe block is missing"
    return match.group(1).splitlines()


def test_ci_recipe_runs_as_written(tmp_path):
    lines = ci_recipe()
    assert lines[0].startswith("pip install "), "the first line installs netspec"
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    script = "set -euo pipefail\n" + "\n".join(lines[1:]) + "\n"  # everything after the install line, verbatim
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env_with_netspec(), capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    built = sorted(p.stem for p in (tmp_path / "out").glob("*.npz"))
    assert built == sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))


def test_hooks_are_scoped_to_specs():
    for hook in HOOKS:
        files = re.compile(hook["files"])
        assert files.search("specs/mnist-mlp.yaml") and files.search("specs/sub/model.yml")
        assert not files.search(".github/workflows/ci.yml") and not files.search(".pre-commit-config.yaml")


def test_hooks_check_every_file_and_report_all_failures(tmp_path):
    good = ROOT / "specs" / "glorot-demo-4-5-3.yaml"
    bad1 = tmp_path / "a.yaml"
    bad1.write_text("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, units: 0}\n")
    bad2 = tmp_path / "b.yaml"
    bad2.write_text("netspec: 1\ninput: [4]\nlayers:\n  - {type: dense, unitz: 3}\n")
    for hook in [h for h in HOOKS if h["id"] != "netspec-fmt"]:  # the checks (a formatter does not validate)
        cmd = [*shlex.split(hook["entry"]), str(bad1), str(good), str(bad2)]  # pre-commit appends the file names
        r = subprocess.run(cmd, env=env_with_netspec(), capture_output=True, text=True, timeout=300)
        assert r.returncode == 1, (hook["id"], r.stdout, r.stderr)
        assert "a.yaml" in r.stderr and "b.yaml" in r.stderr, (hook["id"], r.stderr)


def test_fmt_hook_lists_every_file_out_of_layout(tmp_path):
    good = ROOT / "specs" / "glorot-demo-4-5-3.yaml"
    messy = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for path in messy:
        path.write_text("layers: [{units: 2, type: dense}]\ninput: [3]\nnetspec: 1\n")
    hook = next(h for h in HOOKS if h["id"] == "netspec-fmt")
    cmd = [*shlex.split(hook["entry"]), str(messy[0]), str(good), str(messy[1])]
    r = subprocess.run(cmd, env=env_with_netspec(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "a.yaml" in r.stderr and "b.yaml" in r.stderr and "glorot" not in r.stderr


def test_readme_does_not_call_the_articles_by_file_number():
    assert not re.search(r"seed 00\d", README, re.I)


def test_testing_kit_example_runs_as_written():
    match = re.search(r"```python\n(import math\n.*?def test_my_he_is_he\(\):.*?)```", README, re.S)
    assert match, "the README's testing-kit example is missing"
    namespace: dict = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # the README's code, verbatim
    namespace["test_my_he_is_he"]()


def test_every_example_spec_is_in_the_front_pages_table_with_its_parameter_count():
    """The README's example table names every spec in specs/ (a user should find the near-copy of what
    they are about to write) with the count netspec builds: total, and trainable in parentheses."""
    import netspec

    rows = dict(re.findall(r"^\| \[`([\w.-]+\.yaml)`\]\(specs/\1\) \| [^|]+ \| ([\d,]+(?: \([\d,]+\))?) \|", README,
                           re.M))  # fmt: skip
    specs = sorted((ROOT / "specs").glob("*.yaml"))
    assert sorted(rows) == [p.name for p in specs]
    for path in specs:
        net = netspec.load(str(path))
        count = f"{net.num_params:,}" + (f" ({net.num_trainable:,})" if net.num_trainable != net.num_params else "")
        assert rows[path.name] == count, path.name


def test_the_contents_list_names_every_reference_section_in_order():
    """The front page's Contents lists every section after it, in the order they appear (a section added
    to the README goes into the list too), each link the anchor GitHub gives the heading."""
    body = re.sub(r"```.*?```", "", README, flags=re.S)  # headings inside code blocks are not sections
    headings = re.findall(r"^## (.+)$", body, re.M)
    listed = re.findall(r"^\d+\. \[(.+?)\]\(#([\w-]+)\)$", README, re.M)
    after = headings[headings.index("Contents") + 1 :]
    assert [title for title, _ in listed] == after
    for title, anchor in listed:
        assert anchor == re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"), title


def _readme_specs() -> list[tuple[int, str]]:
    """The README's YAML blocks that are specs or parts of one, as spec files: (line, text). A block whose
    top-level keys are all spec keys gets ``netspec: 1`` first if it lacks it; a block of block
    definitions (each a mapping with ``layers``) goes under ``blocks:``; the others (lists of layers, other
    files) are left out."""
    from netspec.spec.schema import build_schema

    top = set(build_schema()["properties"])
    out = []
    for m in re.finditer(r"^( *)```yaml\n(.*?)^\1```", README, re.S | re.M):
        line = README[: m.start()].count("\n") + 2
        text = textwrap.dedent(m.group(2))
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            continue
        if set(data) <= top:
            out.append((line, text if "netspec" in data else "netspec: 1\n" + text))
        elif all(isinstance(v, dict) and "layers" in v for v in data.values()):
            out.append((line, "netspec: 1\nblocks:\n" + textwrap.indent(text, "  ")))
    return out


def test_the_readmes_specs_are_in_fmts_layout():
    """A spec written as the README writes it passes `netspec fmt --check` (the check the README's
    pre-commit hook and CI recipe run): expressions double-quoted as the README writes them, layers
    wrapped as fmt wraps them."""
    from netspec.vcs.fmt import format_text

    found = _readme_specs()
    assert len(found) >= 7, "the README's spec blocks were not found"
    bad = [line for line, text in found if format_text(text, f"README.md:{line}") != text]
    assert not bad, f"README.md blocks at lines {bad} are not in fmt's layout (netspec fmt would rewrite them)"
