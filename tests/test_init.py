import numpy as np
import pytest

from mlp_lib.core.init import initialize


def test_he_xavier_normal_std_with_bias_in_fan_in():
    sizes = [784, 512, 256]
    for scheme, expected in [
        ("he", [np.sqrt(2 / 785), np.sqrt(2 / 513)]),
        ("xavier", [np.sqrt(2 / (785 + 512)), np.sqrt(2 / (513 + 256))]),
        ("normal", [0.1, 0.1]),
    ]:
        weights, biases = initialize(sizes, scheme, np.random.default_rng(0))
        for w, b, std in zip(weights, biases, expected):
            assert w.std() == pytest.approx(std, rel=0.01)
            assert abs(w.mean()) < 0.01 * std * 10
            assert not b.any()


def test_fan_in_counts_the_bias_input_exactly():
    """n_in + 1, not n_in: the two differ by 0.06% for layer 1, far below what a
    sample standard deviation can tell, so the formula is checked exactly."""
    from mlp_lib.core.init import init_std

    assert init_std("he", 784, 512) == np.sqrt(2 / 785) != np.sqrt(2 / 784)
    assert init_std("xavier", 784, 512) == np.sqrt(2 / (785 + 512)) != np.sqrt(2 / (784 + 512))
    weights, _ = initialize([784, 512], "he", np.random.default_rng(5))
    expected = np.random.default_rng(5).normal(0, np.sqrt(2 / 785), (512, 785))[:, 1:].T
    assert np.array_equal(weights[0], expected)


def test_uniform_is_numpy_default_range():
    weights, biases = initialize([50, 40, 10], "uniform", np.random.default_rng(0))
    for w in weights:
        assert 0 <= w.min() and w.max() < 1 and w.mean() == pytest.approx(0.5, abs=0.02)


def test_same_draws_as_the_reports_code():
    """Layer by layer the report draws (H_len, X_len) and zeroes column 0."""
    rng = np.random.default_rng(42)
    report = []
    for n_in, n_out in [(784, 512), (512, 256), (256, 64), (64, 10)]:
        w = rng.normal(0, np.sqrt(2 / (n_in + 1)), (n_out, n_in + 1))
        w[:, 0] = 0.0
        report.append(w)
    weights, biases = initialize([784, 512, 256, 64, 10], "he", np.random.default_rng(42))
    for w_report, w, b in zip(report, weights, biases):
        assert w.shape == (w_report.shape[1] - 1, w_report.shape[0])
        assert np.array_equal(np.concatenate((b[:, None], w.T), axis=1), w_report)


def test_float32_is_rounded_float64():
    w64, _ = initialize([20, 10], "he", np.random.default_rng(3))
    w32, _ = initialize([20, 10], "he", np.random.default_rng(3), dtype=np.float32)
    assert w32[0].dtype == np.float32 and np.array_equal(w32[0], w64[0].astype(np.float32))


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown init 'glorot'; valid: normal, uniform"):
        initialize([3, 2], "glorot", np.random.default_rng())
