"""The course's network trained with fastoptim: gradients, data, results, parity, CLI, example."""
import os
import runpy
import sys

import numpy as np
import pytest

from fastoptim.cli import main
from fastoptim.train import datasets
from fastoptim.train.network import (accuracy, backward_propagation, compute_cost,
                                     forward_propagation, initialize_parameters_he)
from fastoptim.train.trainer import Trainer
from fastoptim.train.updaters import OPTIMIZERS

from testing_settings import COMPILED_BACKENDS, DTYPES, TOLERANCE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import sklearn  # noqa: F401
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False
try:
    import matplotlib  # noqa: F401
    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False

needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed "
                                   "(the digits data set ships with it)")
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB,
                                      reason="matplotlib is not installed (--plot needs it)")


@pytest.fixture(scope="module")
def moons():
    return datasets.load("moons", seed=3)


def _without(monkeypatch, *modules):
    """Make ``import <module>`` fail, as on a machine without the package."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


# ---- the network ---------------------------------------------------------------------------

def _numerical_gradient(parameters, X, Y, key, eps=1e-6):
    """Centred finite differences of the mean cost with respect to ``parameters[key]``."""
    grad = np.zeros_like(parameters[key])
    p = parameters[key]
    for idx in np.ndindex(p.shape):
        old = p[idx]
        p[idx] = old + eps
        plus = compute_cost(forward_propagation(X, parameters)[1], Y)
        p[idx] = old - eps
        minus = compute_cost(forward_propagation(X, parameters)[1], Y)
        p[idx] = old
        grad[idx] = (plus - minus) / (2 * eps * X.shape[1])
    return grad


@pytest.mark.parametrize("n_y", [1, 4], ids=["sigmoid", "softmax"])
def test_backward_matches_finite_differences(n_y):
    rng = np.random.default_rng(0)
    dims = [3, 5, 4, n_y]
    m = 7
    X = rng.standard_normal((dims[0], m))
    if n_y == 1:
        Y = (rng.random((1, m)) > 0.5).astype(float)
    else:
        Y = np.eye(n_y)[:, rng.integers(0, n_y, m)]
    parameters = initialize_parameters_he(dims, seed=1)
    for l in range(1, len(dims)):       # non-zero biases, so db is checked meaningfully
        parameters[f"b{l}"] += 0.1 * rng.standard_normal(parameters[f"b{l}"].shape)
    AL, cache = forward_propagation(X, parameters)
    grads = backward_propagation(AL, Y, cache, parameters)
    assert sorted(grads) == sorted("d" + k for k in parameters)
    for key in parameters:
        numeric = _numerical_gradient(parameters, X, Y, key)
        analytic = grads["d" + key]
        assert analytic.shape == parameters[key].shape
        err = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic)
                                                    + np.linalg.norm(numeric))
        assert err < 1e-7, (key, err)


def test_cost_is_the_course_cross_entropy():
    rng = np.random.default_rng(1)
    parameters = initialize_parameters_he([2, 3, 1], seed=2)
    X = rng.standard_normal((2, 9))
    Y = (rng.random((1, 9)) > 0.5).astype(float)
    a3, cache = forward_propagation(X, parameters)
    course = np.sum(-np.log(a3) * Y + -np.log(1 - a3) * (1 - Y))
    assert compute_cost(cache, Y) == pytest.approx(course, rel=1e-12)

    parameters = initialize_parameters_he([2, 3, 4], seed=2)
    Y = np.eye(4)[:, rng.integers(0, 4, 9)]
    AL, cache = forward_propagation(X, parameters)
    np.testing.assert_allclose(AL.sum(axis=0), 1.0)
    assert compute_cost(cache, Y) == pytest.approx(-np.sum(Y * np.log(AL)), rel=1e-12)


def test_he_initialisation():
    parameters = initialize_parameters_he([400, 300, 2], seed=0, dtype=np.float32)
    assert list(parameters) == ["W1", "b1", "W2", "b2"]
    assert parameters["W1"].shape == (300, 400) and parameters["b1"].shape == (300, 1)
    assert all(p.dtype == np.float32 for p in parameters.values())
    assert not parameters["b1"].any()
    assert parameters["W1"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    with pytest.raises(ValueError, match="layers_dims"):
        initialize_parameters_he([3], seed=0)


# ---- the data sets -------------------------------------------------------------------------

def test_moons_layout_and_split(moons):
    assert moons.X_train.shape == (2, 300) and moons.Y_train.shape == (1, 300)
    assert moons.X_test.shape == (2, 100) and moons.Y_test.shape == (1, 100)
    assert set(np.unique(moons.Y_train)) == {0.0, 1.0}
    again = datasets.load("moons", seed=3)
    np.testing.assert_array_equal(again.X_train, moons.X_train)
    other = datasets.load("moons", seed=4)
    assert not np.array_equal(other.X_train, moons.X_train)
    # train and test are disjoint and together are the 400 generated points
    X, _ = datasets.make_moons(400, 0.2, seed=3)
    together = np.hstack([moons.X_train, moons.X_test]).T
    assert sorted(map(tuple, together)) == sorted(map(tuple, X))


def test_moons_without_sklearn_is_the_same_construction(monkeypatch):
    if HAVE_SKLEARN:
        from sklearn.datasets import make_moons
        for n, noise, seed in [(300, 0.2, 3), (7, 0.5, 0), (400, 0.2, 11)]:
            X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
            Xn, yn = datasets._make_moons_numpy(n, noise, seed)
            np.testing.assert_array_equal(Xn, X)
            np.testing.assert_array_equal(yn, y)
    with_sklearn = datasets.load("moons", seed=3)
    _without(monkeypatch, "sklearn")
    without = datasets.load("moons", seed=3)
    np.testing.assert_array_equal(without.X_train, with_sklearn.X_train)
    np.testing.assert_array_equal(without.Y_test, with_sklearn.Y_test)


@needs_sklearn
def test_digits_layout():
    d = datasets.load("digits", seed=0, dtype=np.float32)
    assert d.X_train.shape[0] == 64 and d.Y_train.shape[0] == 10
    assert d.X_train.shape[1] + d.X_test.shape[1] == 1797
    assert d.X_train.dtype == np.float32 and d.X_train.flags.c_contiguous
    assert 0.0 <= d.X_train.min() and d.X_train.max() <= 1.0
    np.testing.assert_array_equal(d.Y_train.sum(axis=0), 1.0)


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    _without(monkeypatch, "sklearn")
    with pytest.raises(ImportError, match=r"fastoptim\[train\]"):
        datasets.load("digits")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="moons, digits"):
        datasets.load("mnist")


# ---- training: the course's result and parity with the naive updates ------------------------

def test_adam_beats_gradient_descent_on_moons(moons):
    """The course's comparison: same learning rate, same epochs, same start."""
    gd = Trainer(moons, (5, 2), "gd", 0.0007, seed=1).fit(300).summary()
    adam = Trainer(moons, (5, 2), "adam", 0.0007, seed=1).fit(300).summary()
    assert adam.train_accuracy >= 0.85
    assert adam.train_accuracy >= gd.train_accuracy + 0.15, (gd, adam)
    assert adam.final_cost < gd.final_cost - 0.2


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_trajectory_as_the_naive_updates(optimizer, backend, dtype):
    data = datasets.load("moons", seed=3, dtype=dtype)
    kwargs = dict(batch_size=64, decay_rate=0.3, seed=5)   # decay exercises opt.lr
    fast = Trainer(data, (5, 2), optimizer, 0.01, backend=backend, **kwargs).fit(40)
    naive = Trainer(data, (5, 2), optimizer, 0.01, naive=True, **kwargs).fit(40)
    tol = TOLERANCE[np.dtype(dtype)]
    assert len(fast.costs) == 40
    np.testing.assert_allclose(fast.costs, naive.costs, rtol=tol["rtol"])
    for key in fast.parameters:
        assert fast.parameters[key].dtype == dtype
        np.testing.assert_allclose(fast.parameters[key], naive.parameters[key], **tol,
                                   err_msg=key)
    start = initialize_parameters_he([2, 5, 2, 1], seed=5, dtype=dtype)
    assert not np.allclose(fast.parameters["W1"], start["W1"])    # it did train
    assert fast.updater.lr == pytest.approx(0.01 / (1 + 0.3 * 40))


def test_decay_per_epoch_is_the_course_schedule(moons):
    t = Trainer(moons, (5, 2), "gd", 0.2, decay_rate=1.0)
    seen = []
    for _ in range(4):
        seen.append(t.updater.lr)       # the rate this epoch trains with
        t.run_epoch()
    assert seen == pytest.approx([0.2, 0.1, 0.2 / 3, 0.05])
    assert t.updater.lr == pytest.approx(0.04)
    stairs = Trainer(moons, (5, 2), "gd", 0.2, decay_rate=1.0, decay_interval=3)
    rates = []
    for _ in range(6):
        stairs.run_epoch()
        rates.append(stairs.updater.lr)
    assert rates == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.1, 0.2 / 3])


def test_timing_is_recorded(moons):
    s = Trainer(moons, (5, 2), "adam", 0.001).fit(3).summary()
    assert 0 < s.step_seconds < s.seconds
    assert 0 < s.step_share < 1


# ---- the command line ----------------------------------------------------------------------

def _tiny(*extra):
    return ["train", "--epochs", "3", "--no-progress", *extra]


def test_cli_all_optimizers_on_moons(capsys):
    assert main(_tiny("--dataset", "moons", "--optimizer", "all")) == 0
    out = capsys.readouterr().out
    assert "network 2-5-2-1 (30 parameters, float64)" in out
    table = out[out.index("optimizer"):]
    for name in OPTIMIZERS:
        assert f"\n{name} " in table
    assert "naive time (s)" in table and "update speed-up" in table
    drift = float(out.split("largest relative difference ")[1].rstrip(".\n"))
    assert drift < 1e-9


def test_cli_one_optimizer_markdown_without_comparison(capsys):
    assert main(_tiny("--optimizer", "adam", "--no-compare", "--markdown", "--hidden", "4",
                      "--lr", "0.01", "--decay", "1", "--batch-size", "32",
                      "--dtype", "float32")) == 0
    out = capsys.readouterr().out
    assert "network 2-4-1" in out and "lr0 0.01, decay 1, batch 32" in out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert len(lines) == 3 and lines[2].startswith("| adam |")
    assert "naive" not in lines[0]


def test_cli_plain_progress_bar(capsys, monkeypatch):
    _without(monkeypatch, "tqdm")
    assert main(["train", "--epochs", "3", "--optimizer", "gd", "--no-compare"]) == 0
    err = capsys.readouterr().err
    assert "3/3 epochs" in err and "cost " in err


@needs_sklearn
def test_cli_digits(capsys):
    assert main(_tiny("--dataset", "digits", "--optimizer", "rmsprop", "--hidden", "16")) == 0
    out = capsys.readouterr().out
    assert "network 64-16-10" in out and "\nrmsprop " in out


@needs_matplotlib
def test_cli_plot(tmp_path, capsys):
    path = tmp_path / "curves.png"
    assert main(_tiny("--plot", str(path))) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved {path}" in capsys.readouterr().out


def test_cli_plot_without_matplotlib_fails_before_training(tmp_path, capsys, monkeypatch):
    _without(monkeypatch, "matplotlib")
    assert main(_tiny("--plot", str(tmp_path / "c.png"))) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "--plot needs matplotlib" in err and 'pip install ".[train]"' in err
    assert not (tmp_path / "c.png").exists()


def test_cli_digits_without_sklearn_names_the_extra(capsys, monkeypatch):
    _without(monkeypatch, "sklearn")
    assert main(_tiny("--dataset", "digits")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "scikit-learn" in err and 'pip install ".[train]"' in err


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--lr", "-1"], ["--hidden", "0"],
                                  ["--optimizer", "sgd"], ["--batch-size", "x"],
                                  ["--seed", "-1"], ["--seed", str(2 ** 32)]])
def test_cli_rejects_bad_arguments(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *args])
    assert exc.value.code == 2
    assert args[0] in capsys.readouterr().err


# ---- the copy-paste example ----------------------------------------------------------------

def test_example_script_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train_moons.py", "40"])
    runpy.run_path(os.path.join(ROOT, "examples", "train_moons.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "gd" in out and "adam" in out and "train accuracy" in out
