"""README.md's "Before"/"After" training loops: run both, as written in the README, on a
tiny problem with the same mini-batches, and compare the learning rate of every step and
the final parameters ("the same numbers")."""
import pathlib
import re

import numpy as np
import pytest

import fastoptim

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def snippet(name: str) -> str:
    """The Python block after ``<!-- snippet: name -->`` in README.md."""
    if not README.is_file():
        pytest.skip("README.md not found (tests run outside a source checkout)")
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no '<!-- snippet: {name} -->' python block"
    return found.group(1)


def _problem():
    """A two-layer tanh network on 2-D points, examples as columns (the course's layout)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 50))
    Y = (X[0:1] * X[1:2] > 0).astype(float)
    parameters = {"W1": rng.standard_normal((4, 2)) * 0.5, "b1": np.zeros((4, 1)),
                  "W2": rng.standard_normal((1, 4)) * 0.5, "b2": np.zeros((1, 1))}
    return X, Y, parameters


def _namespace(X, Y, parameters, record):
    """What both snippets use: the course's helpers (forward, cost, backward) and, for the
    "Before" snippet, ``random_mini_batches`` giving the batches of
    ``fastoptim.minibatches(..., seed=epoch)``. ``backward_propagation`` records the learning
    rate in force (``record``) at every step."""

    def forward_propagation(X_t, p):
        a1 = np.tanh(p["W1"] @ X_t + p["b1"])
        a2 = 1 / (1 + np.exp(-(p["W2"] @ a1 + p["b2"])))
        return a2, (X_t, a1, a2, p)

    def compute_cost(a2, Y_t):
        return float(-np.sum(Y_t * np.log(a2) + (1 - Y_t) * np.log(1 - a2)))

    def backward_propagation(X_t, Y_t, cache):
        X_t, a1, a2, p = cache
        m = X_t.shape[1]
        dz2 = (a2 - Y_t) / m
        dz1 = (p["W2"].T @ dz2) * (1 - a1 ** 2)
        record()
        return {"dW2": dz2 @ a1.T, "db2": dz2.sum(axis=1, keepdims=True),
                "dW1": dz1 @ X_t.T, "db1": dz1.sum(axis=1, keepdims=True)}

    def random_mini_batches(X, Y, mini_batch_size, seed):
        return list(fastoptim.minibatches(X, Y, mini_batch_size, axis=1, seed=seed))

    return dict(np=np, fastoptim=fastoptim, X=X, Y=Y, parameters=parameters,
                forward_propagation=forward_propagation, compute_cost=compute_cost,
                backward_propagation=backward_propagation,
                random_mini_batches=random_mini_batches, mini_batch_size=16, num_epochs=6,
                learning_rate0=0.05, learning_rate=0.05, decay_rate=0.5, cost_total=0.0,
                seed=0)


def _run(name):
    X, Y, parameters = _problem()
    rates = []
    ns = {}
    if name == "before":
        record = lambda: rates.append(ns["learning_rate"])  # noqa: E731
    else:
        record = lambda: rates.append(ns["opt"].lr)          # noqa: E731
    ns.update(_namespace(X, Y, parameters, record))
    exec(compile(snippet(name), f"README.md:{name}", "exec"), ns)
    return rates, ns["parameters"], ns["cost_total"]


def test_before_and_after_use_the_same_rate_every_step_and_end_equal():
    before_rates, before_params, before_cost = _run("before")
    after_rates, after_params, after_cost = _run("after")
    assert len(before_rates) == len(after_rates) == 6 * 4       # 6 epochs, 4 batches each
    assert before_rates == after_rates
    assert len(set(before_rates)) == 5      # epochs 0 and 1 use lr0, then it decays
    assert before_params.keys() == after_params.keys()
    for key in before_params:
        np.testing.assert_allclose(after_params[key], before_params[key], rtol=1e-10,
                                   atol=1e-12, err_msg=key)
    start = _problem()[2]
    assert not np.allclose(after_params["W1"], start["W1"])
    assert after_cost == pytest.approx(before_cost, rel=1e-10)
