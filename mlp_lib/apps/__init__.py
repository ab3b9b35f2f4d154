"""What people run: the command line and the local server.

- ``cli``: ``mlp-lib`` / ``python -m mlp_lib`` (the parser, then one handler per command)
- ``serve``: the local web server: the drawing page, predictions, the playground's API
- ``runs``: the playground's training runs, one worker process each, watched live
- ``static/``: the pages ``serve`` sends

May import: every layer below (``core``, ``io``, ``engines``, ``study``).
"""
