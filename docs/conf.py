"""Sphinx configuration: MyST Markdown pages, autodoc for the Python API, the furo theme.

Build strictly (warnings fail), as the tests do::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import i2i

project = "i2i"
author = "the i2i developers"
copyright = "2026, the i2i developers"  # noqa: A001 (Sphinx's name)
release = version = i2i.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "**/.pytest_cache"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False

html_theme = "furo"
html_title = f"i2i {release}"
html_static_path = ["_static"]
