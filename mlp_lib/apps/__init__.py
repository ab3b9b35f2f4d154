"""What people run: the command line and the local server.

- ``cli``: ``mlp-lib`` / ``python -m mlp_lib`` (the parser, then one handler per command)
- ``serve``: the local web server: the drawing page, predictions, the playground's API
- ``guard``: who may talk to the server (its own page; a token off loopback)
- ``models``: the models the server answers with, and its default models
- ``predictions``: what the pages show of one prediction
- ``runs``, ``run_settings``, ``run_worker``: the playground's training runs (the manager,
  what a run may ask for, the worker process that trains one, watched live)
- ``commands``: what each command of the command line does
- ``static/``: the pages ``serve`` sends

May import: every layer below (``core``, ``io``, ``engines``, ``study``).
"""
