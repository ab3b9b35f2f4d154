"""Sphinx configuration of the notebooks' site (``python3 tasks.py site``).

``tasks.py`` assembles the sources in ``build/site-src/`` (this file, an index generated from
``mlp_lib.study.notebook``, the specification, copies of the committed notebooks) and
builds them with this file into ``site/``. The notebooks are shown as committed,
never re-executed (myst-nb, ``nb_execution_mode = "off"``). The API reference pages
are generated from the library's docstrings (autodoc, with napoleon reading their
numpydoc sections). Everything the pages load is in ``site/``: MathJax comes from
the ``sphinx-mathjax-offline`` package and is copied in, so equations are typeset
without a network.
"""

project = "mlp_lib"
author = "the mlp_lib authors"
copyright = "mlp_lib authors, MIT licence"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# the API reference: members in source order, type hints in the description, numpydoc only
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# myst: $...$ and $$...$$ maths, LaTeX environments, GitHub tables in the
# notebooks' Markdown outputs (the results tables)
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"
nb_render_markdown_format = "myst"
nb_merge_streams = True

# MathJax 3.2 from the sphinx-mathjax-offline package, copied into the site; its SVG output
# draws every glyph itself, so no font is loaded from anywhere (see setup below)
extensions.append("sphinx-mathjax-offline")
html_static_path = ["_static"]
html_css_files = ["site.css"]

html_theme = "sphinx_book_theme"
html_title = "mlp_lib: the notebooks"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "show_navbar_depth": 1,
}
html_show_sourcelink = False
html_favicon = "favicon.svg"
html_context = {"default_mode": "light"}  # the theme's colour mode, fixed (no console error)


def setup(app):
    # after the extensions: sphinx-mathjax-offline points at its CHTML build, whose
    # web fonts a page would fetch; the SVG build has none
    app.config.mathjax_path = "mathjax/tex-svg-full.js"
