"""A user's own Numba training loop that calls fastoptim's Adam kernel: no Python per step.

fastoptim's kernels in ``fastoptim.numba_kernels`` are ``@njit`` functions on 1-D arrays
(flatten with ``.ravel()``), with the per-call coefficients of ``kernels.pxd`` as scalars;
pass ``None`` for optional state. They run on ``numba.get_num_threads()`` threads.
"""
import numba
import numpy as np

from fastoptim.numba_kernels import adam_kernel


@numba.njit
def mse_grad(X, y, w, g):
    """g = X.T @ (X @ w - y) / m, the gradient of the loss mean((X @ w - y)**2) / 2."""
    m, k = X.shape
    g[:] = 0.0
    for i in range(m):
        r = -y[i]
        for j in range(k):
            r += X[i, j] * w[j]
        for j in range(k):
            g[j] += X[i, j] * r / m


@numba.njit
def fit(X, y, w, steps, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """``steps`` Adam steps on w (in place), compiled end to end."""
    g, m, v = np.empty_like(w), np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        mse_grad(X, y, w, g)
        adam_kernel(w, g, m, v, None,             # param, grad, exp_avg, exp_avg_sq, no AMSGrad
                    1.0, 0.0, 1.0,                # grad_sign, weight_decay, param_scale
                    beta1, 1.0 - beta1, beta2, 1.0 - beta2,
                    lr / (1.0 - beta1**t),        # step_size
                    1.0 / np.sqrt(1.0 - beta2**t),  # inv_bias_correction2_sqrt
                    eps)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = X @ np.arange(1.0, 6.0)
    w = np.zeros(5)
    fit(X, y, w, 2000, 0.05)
    print("fitted", np.round(w, 3))  # close to [1, 2, 3, 4, 5]
