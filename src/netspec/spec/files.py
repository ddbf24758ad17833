"""Finding spec files on disk: the paths a command is given, with folders expanded."""

from __future__ import annotations

import os

SUFFIXES = (".yaml", ".yml")


def spec_files(paths: list[str], keep_empty_folders: bool = True) -> list[str]:
    """Spec paths, with each folder expanded to the ``*.yaml``/``*.yml`` files in it (recursively, sorted;
    hidden folders such as ``.git`` are skipped). A folder with none stays in the list as itself (so the
    command can say so) unless ``keep_empty_folders`` is False."""
    out: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            out.append(path)
            continue
        found = []
        for root, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # not .git, .venv, .github
            found += [os.path.join(root, n) for n in names if n.endswith(SUFFIXES)]
        out.extend(sorted(found) or ([path] if keep_empty_folders else []))
    return out
