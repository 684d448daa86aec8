"""Sphinx configuration of the tutorial site: ``make docs`` builds it into site/.

The pages are MyST Markdown (docs/en, docs/vi, docs/glossary.md); the extension in
docs/_ext/rnnkit_docs runs nothing at build time: it shows what the docs tests recorded
(docs/_generated), writes the notebooks, copies MathJax and checks every internal link.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "rnnkit"
author = "the rnnkit authors"
copyright = "the rnnkit authors, MIT licence"
language = "en"

extensions = ["myst_parser", "sphinx.ext.mathjax", "rnnkit_docs"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_generated",
    "_ext",
    "_static",
    "screenshots",
    "**/.ipynb_checkpoints",
]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True

# MathJax 3 from npm (package.json), copied into the site by the extension: no CDN.
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"chtml": {"scale": 1.0}}

html_theme = "furo"
html_title = "rnnkit: learn recurrent networks"
html_static_path = ["_static"]
html_css_files = ["rnnkit.css"]
html_last_updated_fmt = None
html_search_language = "en-vi"  # rnnkit_docs/search.py: diacritics folded in index and query
html_theme_options = {"navigation_with_keys": True}
