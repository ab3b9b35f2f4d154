import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mlp_lib import MLP  # noqa: E402
from mlp_lib.study import experiments, plots  # noqa: E402
from mlp_lib.study.experiments import RunResult  # noqa: E402


def _titled(fig):
    """Every plot has a title with words in it (its axes' or the figure's)."""
    titles = [ax.get_title().strip() for ax in fig.axes] + [fig.get_suptitle().strip()]
    plt.close(fig)
    return any(len(t) > 3 for t in titles)


def test_every_figure_has_title_and_labels():
    rng = np.random.default_rng(0)
    curves = {"a": rng.random((3, 50)), "b": rng.random(50)}
    fig = plots.loss_curves(curves, record_every=100, steps_per_epoch=2000)
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    assert _titled(fig)
    fig = plots.confusion(np.eye(10, dtype=int) * 5)
    assert fig.axes[0].get_xlabel() == "predicted digit" and _titled(fig)
    summary = experiments.summarize(
        [RunResult("relu-he", s, 0.2, 0.95 + s / 100, np.zeros(1), 1.0) for s in range(3)]
    )
    fig = plots.accuracy_bars(summary)
    assert fig.axes[0].get_ylabel() == "test accuracy" and _titled(fig)
    fig = plots.gradient_norms({"x": [1.0, 2.0], "y": [0.5, 3.0]})
    assert fig.axes[0].get_legend() is not None and _titled(fig)
    assert _titled(plots.digit_grid(rng.random((5, 784)), list("abcde"), title="digits"))
    assert _titled(plots.network_diagram([784, 20, 10]))


def test_results_roundtrip(tmp_path):
    results = [RunResult("relu-he", 1, 0.2, 0.95, np.arange(3.0), 12.5, None)]
    path = tmp_path / "sub" / "r.json"
    experiments.save_results(results, path)
    (back,) = experiments.load_results(path)
    assert (back.row, back.seed, back.test_loss, back.test_accuracy) == ("relu-he", 1, 0.2, 0.95)
    assert np.array_equal(back.loss_curve, np.arange(3.0)) and back.diverged_at is None
    made = experiments.load_provenance(path)
    for key in (
        "commit",
        "dirty",
        "date",
        "cpu",
        "cores",
        "python",
        "numpy",
        "scipy",
        "blas",
        "command",
    ):
        assert key in made, key
    assert made["cores"] >= 1 and made["numpy"] == np.__version__ and made["blas"]
    with pytest.raises(FileNotFoundError, match="tasks.py reproduce"):
        experiments.load_results(tmp_path / "missing.json")


def test_confusion_matrix_and_gradient_norms():
    counts = experiments.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], n_classes=3)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    model = MLP([4, 3, 2], "sigmoid", "normal", seed=0)
    x, y = np.random.default_rng(0).random((2, 4)), np.array([0, 1])
    norms = experiments.layer_gradient_norms(model, x, y)
    expected = np.mean(
        [[np.linalg.norm(g) for g in model.gradients(x[i], y[i])[1]] for i in range(2)], axis=0
    )
    assert np.allclose(norms, expected)


def test_the_figures_the_notebooks_describe_have_titles_axes_units_and_colour_bars():
    from mlp_lib.core.schedules import Constant, LinearDecay

    fig = plots.learning_rates(
        {"constant 0.01": Constant(0.01), "linear decay": LinearDecay(0.01, 1e-5, 100)},
        250,
        steps_per_epoch=100,
    )
    ax = fig.axes[0]
    assert "step" in ax.get_xlabel() and "η" in ax.get_ylabel() and _titled(fig)
    rng = np.random.default_rng(0)
    images = rng.random((20, 30))
    models = {
        "sigmoid, N(0, 1)": MLP([30, 16, 10], "sigmoid", "normal", seed=0),
        "ReLU, He": MLP([30, 16, 8, 10], "relu", "he", seed=0),
    }
    fig = plots.activation_histograms(models, images)
    sig, relu = fig.axes
    assert "σ(z)" in sig.get_xlabel() and "max(0, z)" in relu.get_xlabel()
    shares = [t.get_text() for t in relu.get_legend().get_texts()]
    assert len(shares) == 2 and all(s.endswith("zero") for s in shares)
    assert _titled(fig)
    model = MLP([784, 12, 10], seed=0)
    fig = plots.first_layer_weights(model, range(5), n_cols=4)
    bar = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bar) == 1 and "weight" in bar[0].get_ylabel()
    image = fig.axes[0].get_images()[0]
    low, high = image.get_clim()
    assert low == -high == -np.abs(model.weights[0][:, :5]).max()  # symmetric: colour shows sign
    assert _titled(fig)
