"""The study: the report's experiments and what the notebooks make of them.

- ``rows``: the report's rows (``ROWS``) and ``run`` (one row, one seed)
- ``experiments``: ``run_many``, summaries and verdicts, results files (and the rows, re-exported)
- ``beyond``: notebook 05's ladder of rungs past the report
- ``jobs``: one row or rung trained on one BLAS thread, and the pool that runs many
- ``sweep``: rows and rungs over seeds and data sets, resumable, local or on Dask
- ``conclusions``: the report's claims, judged on many seeds
- ``exercises``: checks of a student's pieces of backpropagation (the notebooks' exercises)
- ``notebook``: the notebooks' modes and plans
- ``plots``, ``tables``: the notebooks' figures and tables
- ``provenance``: commit, machine and versions of a result

May import: ``core``, ``io`` and ``engines``. Nothing of the apps.
"""
