"""Sphinx configuration of fastoptim's documentation: ``python -m sphinx -W docs <out>``.

Pages are Markdown (MyST); the API reference is autodoc on the installed ``fastoptim`` with
numpydoc (the docstrings are in its format); maths renders with MathJax.
"""
import fastoptim

project = "fastoptim"
author = "fastoptim developers"
copyright = "2026, fastoptim developers"
release = version = fastoptim.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
# the docstrings name their parameters in numpydoc's sections; the classes' members are
# listed by autodoc, not again by numpydoc
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
# README sections are included as they are: their links to repository files are not pages
# here, and their headings start below the page title
suppress_warnings = ["myst.xref_missing", "myst.header"]
html_theme = "alabaster"
html_theme_options = {"description": "One optimizer step on NumPy arrays, fused"}
