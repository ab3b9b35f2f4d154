"""Files: the project's paths, the data sets, users' images, checkpoints.

- ``project``: where the checkout's ``data/``, ``results/`` and notebooks are; the
  version; the cache folder
- ``data``: the IDX reader with checksums, ``load_mnist`` / ``load_dataset``, images to 28x28
- ``fetch``: an installed package's data sets, fetched on first use and verified
- ``checkpoint``: save and load a model and its training state (``.npz``)

May import: ``core`` (a checkpoint holds an ``MLP``), numpy, Pillow, tqdm. Nothing of
the engines, the study or the apps.
"""
