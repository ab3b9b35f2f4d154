"""The maths: everything a network computes, and nothing else.

- ``functional``: activations, softmax, cross-entropy and their derivatives
- ``init``: weight initialisers (normal, uniform, Xavier, He)
- ``model``: ``MLP`` (parameters, forward with a cache, backward), ``evaluate``
- ``blas``: the few matrix products the model and the mini-batch engine share
- ``optim``: SGD (momentum, Nesterov), Adam
- ``schedules``: learning-rate schedules
- ``augment``: random affine distortions of images (notebook 05)
- ``gradcheck``: central-difference gradient checks

May import: numpy and scipy only, and other modules of ``core``. Nothing of
the rest of the project.
"""
