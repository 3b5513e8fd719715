"""A plain NumPy multilayer network, written the way the course writes it.

Examples are **columns**: ``X`` has shape ``(n_x, m)``, ``Y`` has shape ``(n_y, m)``. The
parameters are a dict ``parameters["W1"], parameters["b1"], ...`` with ``W[l]`` of shape
``(n[l], n[l-1])`` and ``b[l]`` of shape ``(n[l], 1)``; the gradients use the course's names
``grads["dW1"], grads["db1"], ...``.

* hidden layers: ``Z = W @ A_prev + b``, ``A = relu(Z)``;
* output layer: sigmoid with binary cross-entropy when ``n_y == 1`` (the "moons" problem),
  softmax with categorical cross-entropy when ``n_y > 1`` (``Y`` one-hot; the digits);
* He initialisation: ``W[l] = randn(n[l], n[l-1]) * sqrt(2 / n[l-1])``, ``b[l] = 0``.

For both outputs the gradient of the mean cost with respect to the output pre-activation is
``dZ[L] = (A[L] - Y) / m``, and every earlier layer follows by the chain rule::

    dW[l] = dZ[l] @ A[l-1].T          db[l] = sum(dZ[l], axis=1)
    dZ[l-1] = (W[l].T @ dZ[l]) * (Z[l-1] > 0)
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["initialize_parameters_he", "forward_propagation", "backward_propagation",
           "compute_cost", "predict", "accuracy"]

Parameters = Dict[str, np.ndarray]
Cache = Tuple[List[np.ndarray], List[np.ndarray]]


def num_layers(parameters: Parameters) -> int:
    """L, the number of weight layers (``W1`` ... ``WL``)."""
    return len(parameters) // 2


def initialize_parameters_he(layers_dims: Sequence[int], seed=0,
                             dtype=np.float64) -> Parameters:
    """He initialisation: ``W[l] = randn(n[l], n[l-1]) * sqrt(2 / n[l-1])``, ``b[l] = 0``.

    Parameters
    ----------
    layers_dims : sequence of int
        ``[n_x, n_1, ..., n_y]``, at least two entries, all ``>= 1``.
    seed : int or numpy.random.Generator
        Seed of ``np.random.default_rng``.
    dtype : float32 or float64
    """
    dims = [int(n) for n in layers_dims]
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(
            f"initialize_parameters_he: layers_dims must hold at least two sizes >= 1 "
            f"(inputs and outputs), got {list(layers_dims)}")
    rng = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(dims)):
        W = rng.standard_normal((dims[l], dims[l - 1])) * np.sqrt(2.0 / dims[l - 1])
        parameters[f"W{l}"] = W.astype(dtype)
        parameters[f"b{l}"] = np.zeros((dims[l], 1), dtype=dtype)
    return parameters


def forward_propagation(X: np.ndarray, parameters: Parameters) -> Tuple[np.ndarray, Cache]:
    """``(A[L], cache)``: ReLU hidden layers, then sigmoid (one output) or softmax (several).

    ``cache`` holds the layer inputs ``A[0] = X, ..., A[L-1]`` and the pre-activations
    ``Z[1], ..., Z[L]`` that :func:`backward_propagation` needs.
    """
    L = num_layers(parameters)
    activations, pre = [X], []
    A = X
    for l in range(1, L + 1):
        Z = parameters[f"W{l}"] @ A + parameters[f"b{l}"]
        pre.append(Z)
        if l < L:
            A = np.maximum(Z, 0)
            activations.append(A)
    return _output(Z), (activations, pre)


def _output(Z: np.ndarray) -> np.ndarray:
    """Sigmoid for one output unit, softmax over the units (rows) otherwise."""
    if Z.shape[0] == 1:
        return 1.0 / (1.0 + np.exp(-Z))
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


def compute_cost(cache: Cache, Y: np.ndarray) -> float:
    """The **sum** over the batch of the cross-entropy (the course's ``cost_total``).

    Sigmoid: ``-(y log a + (1-y) log(1-a))``; softmax: ``-sum_k y_k log a_k``. Both are
    computed from the pre-activation ``Z[L]`` in the overflow-free form (``log a`` never sees
    a rounded-to-zero ``a``), which is the same number. Divide by ``m`` for the mean.
    """
    Z = cache[1][-1]
    if Z.shape[0] == 1:
        # -log(sigmoid(z)) = log(1 + e^-z); -log(1 - sigmoid(z)) = log(1 + e^z)
        return float(np.sum(Y * np.logaddexp(0, -Z) + (1 - Y) * np.logaddexp(0, Z)))
    shifted = Z - Z.max(axis=0, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
    return float(-np.sum(Y * log_softmax))


def backward_propagation(AL: np.ndarray, Y: np.ndarray, cache: Cache,
                         parameters: Parameters) -> Dict[str, np.ndarray]:
    """Gradients of the **mean** cost over the batch: ``grads["dW1"], grads["db1"], ...``.

    ``dZ[L] = (A[L] - Y) / m``; then ``dW[l] = dZ[l] @ A[l-1].T``,
    ``db[l] = sum(dZ[l], axis=1)``, ``dZ[l-1] = (W[l].T @ dZ[l]) * (Z[l-1] > 0)``.
    """
    activations, pre = cache
    L = len(pre)
    m = Y.shape[1]
    grads = {}
    dZ = (AL - Y) / m
    for l in range(L, 0, -1):
        grads[f"dW{l}"] = dZ @ activations[l - 1].T
        grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True)
        if l > 1:
            dZ = (parameters[f"W{l}"].T @ dZ) * (pre[l - 2] > 0)
    return grads


def predict(X: np.ndarray, parameters: Parameters) -> np.ndarray:
    """Predicted class per example (shape ``(m,)``): ``A > 0.5``, or the arg-max unit."""
    AL, _ = forward_propagation(X, parameters)
    if AL.shape[0] == 1:
        return (AL[0] > 0.5).astype(np.int64)
    return AL.argmax(axis=0)


def accuracy(X: np.ndarray, Y: np.ndarray, parameters: Parameters) -> float:
    """Share of examples classified correctly (``Y``: 0/1 row, or one-hot columns)."""
    labels = Y[0] if Y.shape[0] == 1 else Y.argmax(axis=0)
    return float(np.mean(predict(X, parameters) == labels))
