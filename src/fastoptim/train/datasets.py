"""The two data sets of ``fastoptim train``, with examples as columns and a seeded split.

* ``"moons"``: the course's two-class problem, two interleaving half circles with Gaussian
  noise (scikit-learn's ``make_moons``; an exact NumPy copy of its construction is used
  when scikit-learn is not installed).
* ``"digits"``: scikit-learn's 8x8 images of hand-written digits (1797 images, 10 classes),
  which ship inside scikit-learn (no download). Pixels are scaled to ``[0, 1]``.

Every loader returns a :class:`Dataset` whose ``X_*`` have shape ``(n_x, m)`` and whose
``Y_*`` have shape ``(1, m)`` (labels 0/1) or ``(n_classes, m)`` (one-hot).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Dataset", "DATASETS", "load", "make_moons", "load_digits", "train_test_split"]

EXTRA_HINT = 'pip install ".[train]" from a checkout ("fastoptim[train]" once published)'


class Dataset(NamedTuple):
    name: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray


def make_moons(n_samples: int = 300, noise: float = 0.2, seed: int = 3):
    """``(X, y)`` of shapes ``(n_samples, 2)`` and ``(n_samples,)``: two noisy half moons.

    scikit-learn's ``make_moons(n_samples, noise=noise, random_state=seed)`` when it is
    installed. Otherwise the same construction in NumPy, which gives **the same numbers**
    for the same seed (tested when scikit-learn is present): ``n // 2`` points on the upper
    half circle of radius 1 around (0, 0) (label 0) and the rest on the lower half circle
    around (1, 0.5) (label 1), evenly spaced in angle; the points shuffled by
    ``RandomState(seed).shuffle`` of their indices, then Gaussian noise of standard
    deviation ``noise`` drawn from the same ``RandomState``. The course's data are
    ``n_samples=300, noise=0.2, seed=3``.
    """
    try:
        from sklearn.datasets import make_moons as sk_make_moons
    except ImportError:
        return _make_moons_numpy(n_samples, noise, seed)
    return sk_make_moons(n_samples=n_samples, noise=noise, random_state=seed)


def _make_moons_numpy(n_samples: int, noise: float, seed: int):
    """scikit-learn's ``make_moons`` construction, line for line, without scikit-learn."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    generator = np.random.RandomState(seed)
    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(outer), 1 - np.cos(inner)),
                   np.append(np.sin(outer), 1 - np.sin(inner) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    indices = np.arange(n_samples)
    generator.shuffle(indices)
    X, y = X[indices], y[indices]
    X += generator.normal(scale=noise, size=X.shape)
    return X, y


def load_digits():
    """``(X, y)``: scikit-learn's 1797 8x8 digit images (pixels 0-16) and their labels."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise ImportError(
            f"the 'digits' data set ships with scikit-learn, which is not installed "
            f"({exc}); install the training extra: {EXTRA_HINT}") from exc
    digits = sk_load_digits()
    return digits.data, digits.target


def train_test_split(X: np.ndarray, y: np.ndarray, test_size: float = 0.25, seed: int = 0):
    """``(X_train, y_train, X_test, y_test)``: one seeded permutation of the rows (examples)."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"train_test_split: test_size must be in (0, 1), got {test_size!r}")
    m = X.shape[0]
    n_test = max(1, int(round(test_size * m)))
    order = np.random.default_rng(seed).permutation(m)
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def _columns(name, X, y, n_classes, seed, dtype) -> Dataset:
    """Split, then lay out examples as columns; labels as a 0/1 row or one-hot columns."""
    X_tr, y_tr, X_te, y_te = train_test_split(X, y, seed=seed)

    def targets(labels):
        if n_classes == 2:
            return labels.reshape(1, -1).astype(dtype)
        return np.eye(n_classes, dtype=dtype)[:, labels]

    return Dataset(name, np.ascontiguousarray(X_tr.T, dtype=dtype), targets(y_tr),
                   np.ascontiguousarray(X_te.T, dtype=dtype), targets(y_te))


def load(name: str, seed: int = 3, dtype=np.float64) -> Dataset:
    """The data set ``name`` (``"moons"`` or ``"digits"``) split 75/25 with ``seed``.

    moons: 400 points (300 to train, as in the course) from :func:`make_moons` with
    ``noise=0.2``. digits: the 1797 images, pixels divided by 16.
    """
    if name == "moons":
        X, y = make_moons(n_samples=400, noise=0.2, seed=seed)
        return _columns(name, X, y, 2, seed, dtype)
    if name == "digits":
        X, y = load_digits()
        return _columns(name, X / 16.0, y, 10, seed, dtype)
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


DATASETS = ("moons", "digits")
