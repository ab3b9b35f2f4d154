"""The report's per-sample training loop, as the report writes it (§1.2–§1.4):
its own ``sigmoid``, ``dsigmoid``, ``softmax``, ``CrossEntropy`` and
``dCrossEntropy_lastH_softmax``, one-hot labels, weights created as
``np.random.normal(0, σ, (H_len, X_len))`` creates them (C-ordered, bias in
column 0), ``np.concatenate`` of a 1 before each layer's input, ``np.matmul``
for every product including the full outer products, and ``W -= lr[step] * dL_W``.
Written here for depth L (the report spells out its 4 and 6 layers by hand).
The benchmark's baseline; tests check it trains what mlp_lib trains.

The report does not print its ``ReLU`` and derivative; they are the usual
``max(0, x)`` and ``[x > 0]``.
"""

import numpy as np


def sigmoid(X):
    return 1 / (1 + np.exp(-X))


def dsigmoid(X):
    return sigmoid(X) * (1 - sigmoid(X))


def ReLU(X):  # noqa: N802 (the report's names)
    return np.maximum(X, 0)


def dReLU(X):  # noqa: N802
    return (X > 0) * 1.0


def softmax(X):
    exp_X = np.exp(X)
    sum_exp_X = np.sum(exp_X)
    return exp_X / sum_exp_X


def CrossEntropy(Y, Y_hat):  # noqa: N802
    true_index = np.where(Y == 1)[0][0]
    return -np.log(Y_hat[true_index])


def dCrossEntropy_lastH_softmax(Y, Y_hat):  # noqa: N802
    true_index = np.where(Y == 1)[0][0]
    dCrossEntropy_H = Y_hat
    dCrossEntropy_H[true_index] -= 1
    return dCrossEntropy_H


def report_weights(model):
    """The model's parameters as the report holds them: for each layer a new
    C-ordered ``(n_out, n_in + 1)`` float64 array, bias in column 0 (the layout
    and memory order of ``np.random.normal(0, σ, (H_len, X_len))``)."""
    matrices = []
    for w, b in zip(model.weights, model.biases):
        W = np.empty((w.shape[1], w.shape[0] + 1))
        W[:, 0] = b
        W[:, 1:] = w.T
        matrices.append(W)
    return matrices


def one_hot(labels, n_classes=10):
    """Labels as the report loads them: one-hot rows of uint8."""
    return np.eye(n_classes, dtype=np.uint8)[labels]


def report_train(Ws, train_images, train_labels, lr, activation="relu"):
    """Train the report's matrices ``Ws`` in place for ``len(lr)`` steps, in file
    order (images wrap around); ``train_labels`` one-hot. Returns the losses."""
    act, dact = (ReLU, dReLU) if activation == "relu" else (sigmoid, dsigmoid)
    L = len(Ws)
    losses = np.zeros(len(lr))
    for step in range(len(lr)):
        img, Y = train_images[step % len(train_images)], train_labels[step % len(train_images)]
        Xs, Hs = [], []
        X = np.concatenate((np.array([1]), img))
        for n in range(L):
            Xs.append(X)
            H = np.matmul(Ws[n], X)
            Hs.append(H)
            if n < L - 1:
                X = np.concatenate((np.array([1]), act(H)))
        Y_hat = softmax(H)
        losses[step] = CrossEntropy(Y, Y_hat)
        dL_H = dCrossEntropy_lastH_softmax(Y, Y_hat)
        dL_Ws = [None] * L
        for n in reversed(range(L)):
            dL_X = np.matmul(dL_H, Ws[n])
            dL_Ws[n] = np.matmul(dL_H.reshape(-1, 1), Xs[n].reshape(1, -1))
            if n > 0:
                dL_H = dL_X[1:] * dact(Hs[n - 1])
        for n in reversed(range(L)):
            Ws[n] -= lr[step] * dL_Ws[n]
    return losses
