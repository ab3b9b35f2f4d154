import warnings

import numpy as np
import pytest

from mlp_lib import MLPClassifier
from mlp_lib.engines.estimator import NotFittedError


def test_fit_predict_score_on_mnist_subset(mnist_train, mnist_test):
    clf = MLPClassifier(
        hidden_layer_sizes=(64,),
        epochs=3,
        learning_rate=0.3,
        batch_size=32,
        random_state=0,
        progress=False,
    )
    assert clf.fit(mnist_train[0][:5000], mnist_train[1][:5000]) is clf
    assert list(clf.classes_) == list(range(10)) and clf.n_features_in_ == 784
    assert len(clf.loss_curve_) == 3 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    proba = clf.predict_proba(mnist_test[0][:100])
    assert proba.shape == (100, 10) and np.allclose(proba.sum(axis=1), 1)
    assert clf.score(*mnist_test) > 0.9
    assert clf.loss(*mnist_test) < 0.4


def test_string_labels_and_per_sample_solver():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-2, 1, (50, 2)), rng.normal(2, 1, (50, 2))])
    y = np.array(["cat"] * 50 + ["dog"] * 50)
    clf = MLPClassifier(
        hidden_layer_sizes=(8,),
        solver="per-sample",
        learning_rate=0.05,
        epochs=5,
        random_state=1,
        dtype="float64",
        progress=False,
    ).fit(X, y)
    assert set(clf.predict(X)) <= {"cat", "dog"} and clf.score(X, y) > 0.95
    with pytest.raises(ValueError, match="labels not seen in fit"):
        clf.loss(X[:2], ["cat", "cow"])


def test_same_random_state_same_model():
    X = np.random.default_rng(0).random((64, 5))
    y = np.arange(64) % 3
    a = MLPClassifier(hidden_layer_sizes=(6,), epochs=2, random_state=4, progress=False).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(6,), epochs=2, random_state=4, progress=False).fit(X, y)
    assert all(np.array_equal(u, v) for u, v in zip(a.model_.weights, b.model_.weights))


def test_get_set_params():
    clf = MLPClassifier(epochs=4)
    params = clf.get_params()
    assert params["epochs"] == 4 and params["hidden_layer_sizes"] == (512, 256, 64)
    assert clf.set_params(epochs=7, learning_rate=0.1) is clf and clf.epochs == 7
    with pytest.raises(ValueError, match="invalid parameter.*epoch_count.*valid: "):
        clf.set_params(epoch_count=3, epochs=9)
    assert clf.epochs == 7
    assert repr(clf) == "MLPClassifier(learning_rate=0.1, epochs=7)"


def test_bad_inputs():
    clf = MLPClassifier(hidden_layer_sizes=(4,), epochs=1, progress=False)
    X, y = np.random.default_rng(0).random((10, 3)), np.arange(10) % 2
    with pytest.raises(NotFittedError, match="not fitted"):
        clf.predict(X)
    with pytest.raises(ValueError, match="requires y"):
        clf.fit(X, None)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.zeros(10))
    with pytest.raises(ValueError, match="continuous"):
        clf.fit(X, np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="NaN or infinity"):
        clf.fit(np.full((10, 3), np.nan), y)
    with pytest.raises(ValueError, match="unknown solver 'adam'"):
        MLPClassifier(solver="adam").fit(X, y)
    clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but MLPClassifier is expecting 3"):
        clf.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="Reshape your data"):
        clf.predict(np.zeros(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y[:, None])
    assert any("column-vector y" in str(w.message) for w in caught)


def test_scikit_learn_estimator_checks():
    """scikit-learn's own checks (the test extra installs scikit-learn, so CI runs them)."""
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            MLPClassifier(hidden_layer_sizes=(32,), epochs=20, progress=False), on_fail=None
        )
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed and len(results) > 40
