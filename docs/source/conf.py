"""Sphinx configuration for the pymc.variational.streaming API pages."""

project = "pymc.variational.streaming"
author = "The PyMC Developers"
copyright = "2026, The PyMC Developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
]

autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
exclude_patterns = ["_build"]
# The example is a script shown with literalinclude, not a page of its own.
source_suffix = {".rst": "restructuredtext"}
html_theme = "alabaster"
nitpicky = False
# Offline builds: no inventories are fetched.
intersphinx_mapping: dict = {}
