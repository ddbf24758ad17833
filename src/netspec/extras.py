"""The package's distribution name on the package index and the install line of each optional extra.

The import name and the command are ``netspec``; the distribution is ``netspec-nn``, because the name
``netspec`` on the package index belongs to an unrelated project (``pip install 'netspec[torch]'`` would
install it). Every "pip install" hint netspec prints comes from :func:`install_hint`.
"""

from __future__ import annotations

DISTRIBUTION = "netspec-nn"
"""The name to ``pip install``."""


def install_hint(extra: str) -> str:
    """The command that installs netspec with an optional extra: ``pip install 'netspec-nn[torch]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
