"""The ``"numpy"`` backend: every update written literally, the way the course writes it.

This is the test oracle and the benchmark baseline, so it is short and obviously right, and
it is *naive on purpose*: every sub-expression makes a temporary array, so one step walks
memory many times. The compiled backends do the same arithmetic in one fused pass.

These functions do **no validation**: the public functions in :mod:`fastoptim.functional`
check every argument before any backend runs. They take the user-level hyperparameters
(not precomputed coefficients) and update their array arguments in place
(``x[...] = ...`` / ``x -= ...``), returning ``None``.

Formulas follow ``torch.optim`` (for-loop implementation) with every state buffer starting
at zero. ``g`` below is ``-grad`` when ``maximize`` else ``grad``.
"""
import numpy as np


def _direction(param, grad, weight_decay, maximize):
    """g (negated when maximizing) plus the L2 weight-decay term ``weight_decay * param``."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    return g


def sgd_step(param, grad, *, lr, weight_decay=0.0, maximize=False):
    """``param -= lr * g``."""
    g = _direction(param, grad, weight_decay, maximize)
    param -= lr * g


def momentum_step(param, grad, momentum_buffer, *, lr, momentum=0.9, dampening=0.0, nesterov=False,
                  weight_decay=0.0, maximize=False):
    """``v = momentum*v + (1-dampening)*g``; ``param -= lr * (g + momentum*v if nesterov else v)``."""
    g = _direction(param, grad, weight_decay, maximize)
    momentum_buffer[...] = momentum * momentum_buffer + (1 - dampening) * g
    if nesterov:
        param -= lr * (g + momentum * momentum_buffer)
    else:
        param -= lr * momentum_buffer


def rmsprop_step(param, grad, square_avg, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None,
                 maximize=False, eps_root=0.0):
    """``s = alpha*s + (1-alpha)*g**2``;
    ``param -= lr * g / (sqrt(s - a**2 if centered + eps_root) + eps)``
    (through ``b = momentum*b + g/avg`` when ``momentum > 0``)."""
    g = _direction(param, grad, weight_decay, maximize)
    square_avg[...] = alpha * square_avg + (1 - alpha) * g**2
    if centered:
        grad_avg[...] = alpha * grad_avg + (1 - alpha) * g
        variance = square_avg - grad_avg**2
    else:
        variance = square_avg
    if eps_root != 0:
        avg = np.sqrt(variance + eps_root) + eps
    else:
        avg = np.sqrt(variance) + eps
    if momentum > 0:
        momentum_buffer[...] = momentum * momentum_buffer + g / avg
        param -= lr * momentum_buffer
    else:
        param -= lr * g / avg


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False,
              max_exp_avg_sq=None, maximize=False, eps_root=0.0):
    """Adam with bias correction: ``m_hat = m / (1-beta1**t)``, ``v_hat = v / (1-beta2**t)``,
    ``param -= lr * m_hat / (sqrt(v_hat + eps_root) + eps)``; AdamW decays
    ``param *= 1 - lr*wd`` first."""
    g = -grad if maximize else grad
    if decoupled_weight_decay:
        param *= 1 - lr * weight_decay
    elif weight_decay != 0:
        g = g + weight_decay * param
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g**2
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    m_hat = exp_avg / (1 - beta1**step)
    v_hat = second / (1 - beta2**step)
    param -= lr * m_hat / (np.sqrt(v_hat + eps_root) + eps)


def adagrad_step(param, grad, state_sum, *, step, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 eps=1e-10, maximize=False):
    """``clr = lr / (1 + (t-1)*lr_decay)``; ``G += g**2``; ``param -= clr * g / (sqrt(G) + eps)``."""
    g = _direction(param, grad, weight_decay, maximize)
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g**2
    param -= clr * g / (np.sqrt(state_sum) + eps)


def ewa_update(average, value, *, beta):
    """The exponentially weighted average ``v = beta*v + (1-beta)*theta``."""
    average[...] = beta * average + (1 - beta) * value


def adamax_step(param, grad, exp_avg, exp_inf, *, step, lr=2e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, maximize=False):
    """Adamax: ``m = beta1*m + (1-beta1)*g``; ``u = max(beta2*u, |g| + eps)``;
    ``param -= lr / (1-beta1**t) * m / u``."""
    g = _direction(param, grad, weight_decay, maximize)
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * g
    np.maximum(beta2 * exp_inf, np.abs(g) + eps, out=exp_inf)
    param -= lr / (1 - beta1**step) * exp_avg / exp_inf


def radam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999,
               eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False):
    """Rectified Adam: ``m_hat = m / (1-beta1**t)``; with ``rho_inf = 2/(1-beta2) - 1`` and
    ``rho_t = rho_inf - 2*t*beta2**t / (1-beta2**t)``, when ``rho_t > 5``
    ``param -= lr * m_hat * sqrt(1-beta2**t) / (sqrt(v) + eps) * r`` with the rectification
    ``r = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t))``, else
    ``param -= lr * m_hat``; decoupled decay ``param *= 1 - lr*wd`` first."""
    g = -grad if maximize else grad
    if decoupled_weight_decay:
        param *= 1 - lr * weight_decay
    elif weight_decay != 0:
        g = g + weight_decay * param
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g**2
    m_hat = exp_avg / (1 - beta1**step)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * beta2**step / (1 - beta2**step)
    if rho_t > 5:
        adaptive = np.sqrt(1 - beta2**step) / (np.sqrt(exp_avg_sq) + eps)
        r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        param -= lr * m_hat * adaptive * r
    else:
        param -= lr * m_hat


def lamb_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-6, eps_root=0.0, weight_decay=0.0, maximize=False):
    """LAMB (optax's ``lamb``): Adam's bias-corrected direction plus decoupled decay,
    ``r = m_hat / (sqrt(v_hat + eps_root) + eps) + wd*param``, scaled per array by the trust
    ratio ``||param|| / ||r||`` (1 when either norm is 0): ``param -= lr * trust * r``."""
    g = -grad if maximize else grad
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g**2
    m_hat = exp_avg / (1 - beta1**step)
    v_hat = exp_avg_sq / (1 - beta2**step)
    r = m_hat / (np.sqrt(v_hat + eps_root) + eps)
    if weight_decay != 0:
        r = r + weight_decay * param
    param_norm = np.linalg.norm(param)
    r_norm = np.linalg.norm(r)
    trust = 1.0 if param_norm == 0 or r_norm == 0 else param_norm / r_norm
    param -= lr * trust * r


def lion_step(param, grad, exp_avg, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0,
              maximize=False):
    """Lion: ``u = sign(beta1*m + (1-beta1)*g)``; ``param -= lr * (u + wd*param)``;
    ``m = beta2*m + (1-beta2)*g`` (decoupled weight decay)."""
    g = -grad if maximize else grad
    update = np.sign(beta1 * exp_avg + (1 - beta1) * g)
    if weight_decay != 0:
        update = update + weight_decay * param
    param -= lr * update
    exp_avg[...] = beta2 * exp_avg + (1 - beta2) * g


def nadam_step(param, grad, exp_avg, exp_avg_sq, *, step, mu_product, lr=2e-3, beta1=0.9,
               beta2=0.999, eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
               decoupled_weight_decay=False, maximize=False):
    """NAdam: the momentum schedule ``mu_t = beta1 * (1 - 0.5 * 0.96**(t*momentum_decay))``
    and its running product ``mu_product`` (1 before the first step);
    ``param -= lr*(1-mu_t)/(1-prod_t) * g/denom + lr*mu_{t+1}/(1-prod_{t+1}) * m/denom``
    with ``denom = sqrt(v/(1-beta2**t)) + eps``. Returns the updated ``mu_product``."""
    g = -grad if maximize else grad
    if decoupled_weight_decay:
        param *= 1 - lr * weight_decay
    elif weight_decay != 0:
        g = g + weight_decay * param
    mu = beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = mu_product * mu
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g**2
    denom = np.sqrt(exp_avg_sq / (1 - beta2**step)) + eps
    param -= lr * (1 - mu) / (1 - mu_product) * g / denom
    param -= lr * mu_next / (1 - mu_product * mu_next) * exp_avg / denom
    return mu_product


def adadelta_step(param, grad, square_avg, acc_delta, *, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0, maximize=False):
    """Adadelta: ``v = rho*v + (1-rho)*g**2``; ``delta = sqrt(u + eps) / sqrt(v + eps) * g``;
    ``u = rho*u + (1-rho)*delta**2``; ``param -= lr * delta``."""
    g = _direction(param, grad, weight_decay, maximize)
    square_avg[...] = rho * square_avg + (1 - rho) * g**2
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta[...] = rho * acc_delta + (1 - rho) * delta**2
    param -= lr * delta


def rprop_step(param, grad, prev, step_size, *, step, lr=1e-2, etaminus=0.5, etaplus=1.2,
               step_size_min=1e-6, step_size_max=50.0, maximize=False):
    """Rprop: each step size grows by ``etaplus`` where the gradient kept its sign, shrinks by
    ``etaminus`` where it flipped (and that gradient counts as 0), is clipped to
    ``[step_size_min, step_size_max]``; ``param -= sign(g) * step_size``. The step sizes
    start at ``lr`` (the first step ignores the buffer's content)."""
    g = -grad if maximize else grad
    if step == 1:
        step_size[...] = lr
    agreement = g * prev
    factor = np.where(agreement > 0, etaplus, np.where(agreement < 0, etaminus, 1.0))
    step_size[...] = np.clip(step_size * factor.astype(param.dtype), step_size_min,
                             step_size_max)
    g = np.where(agreement < 0, 0.0, g).astype(param.dtype)
    prev[...] = g
    # torch.sign(NaN) is 0: a NaN gradient moves nothing
    param -= np.nan_to_num(np.sign(g), nan=0.0) * step_size


def asgd_step(param, grad, ax, *, step, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6,
              weight_decay=0.0, maximize=False):
    """ASGD: ``eta = lr / (1 + lambd*lr*(t-1))**alpha``, ``mu = 1 / max(1, t-1-t0)`` (torch
    computes both at the end of the previous step and keeps them as float32 numbers);
    ``param = param*(1 - lambd*eta) - eta*g``; ``ax = param`` while ``mu == 1``, else
    ``ax += mu * (param - ax)``."""
    g = _direction(param, grad, weight_decay, maximize)
    eta = float(np.float32(lr / (1 + lambd * lr * (step - 1))**alpha))
    mu = float(np.float32(1 / max(1, step - 1 - t0)))
    param *= 1 - lambd * eta
    param -= eta * g
    if mu == 1:
        ax[...] = param
    else:
        ax += (param - ax) * mu


def muon_step(param, grad, momentum_buffer, *, lr=1e-3, weight_decay=0.1, momentum=0.95,
              nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5,
              adjust_lr_fn=None):
    """Muon (torch.optim.Muon), for a 2-D ``param``: momentum ``B = B + (1-mu)*(g - B)``;
    ``U = g + mu*(B - g)`` with Nesterov, else ``B``; ``X = U / max(||U||_F, eps)`` (as
    ``U.T`` when ``U`` has more rows than columns); ``ns_steps`` times
    ``A = X X^T``, ``X = a*X + (b*A + c*A A) X``; ``param *= 1 - lr*wd``;
    ``param -= lr * ratio * X`` with ``ratio = sqrt(max(1, rows/cols))`` (``"original"``,
    the default) or ``0.2*sqrt(max(rows, cols))`` (``"match_rms_adamw"``)."""
    a, b, c = ns_coefficients
    momentum_buffer[...] = momentum_buffer + (1 - momentum) * (grad - momentum_buffer)
    update = grad + momentum * (momentum_buffer - grad) if nesterov else momentum_buffer
    rows, cols = param.shape
    X = update.T if rows > cols else update
    X = X / max(np.linalg.norm(X), eps)
    for _ in range(ns_steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    if rows > cols:
        X = X.T
    ratio = 0.2 * np.sqrt(max(rows, cols)) if adjust_lr_fn == "match_rms_adamw" \
        else np.sqrt(max(1.0, rows / cols))
    param *= 1 - lr * weight_decay
    param -= lr * ratio * X


def _torch_lerp(start, end, w):
    """``start = lerp(start, end, w)`` in place, in torch's form: ``start + w*(end - start)``
    for ``|w| < 0.5``, else ``end - (end - start)*(1 - w)`` (exactly ``end`` at ``w = 1``,
    where the first form cancels)."""
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (1 - w)


def adafactor_step(param, grad, row_var, col_var, variance, *, step, lr=1e-2,
                   beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0, weight_decay=0.0,
                   maximize=False):
    """Adafactor (torch 2.13's): the second moment of a >= 2-D array is factored over its
    last two dimensions into a row factor ``row_var`` (shape ``(..., rows, 1)``) and a column
    factor ``col_var`` (``(..., 1, cols)``); a 1-D or 0-D array keeps a full ``variance``.
    With ``w = step**beta2_decay`` (torch's ``1 - beta2_t``):
    ``row_var = lerp(row_var, mean(g**2, -1), w)``, ``col_var = lerp(col_var, mean(g**2, -2), w)``,
    ``v = row_var @ col_var / max(mean(row_var, -2), eps1)`` (or ``variance = lerp(variance,
    g**2, w)``); ``u = g / sqrt(max(v, eps1**2))``;
    ``param = param*(1 - lr*wd) - max(eps2, rms(param)) * min(lr, 1/sqrt(step))
    / max(1, rms(u)/d) * u`` (``rms(param)`` before the decay). ``eps1=None``: the dtype's
    eps. An empty array changes nothing (torch divides by its size, zero)."""
    if param.size == 0:
        return
    g = -grad if maximize else grad
    if eps1 is None:
        eps1 = np.finfo(param.dtype).eps
    w = step**beta2_decay
    rho = min(lr, 1 / step**0.5)
    alpha = max(eps2, np.sqrt(np.mean(param.astype(np.float64) ** 2))) * rho
    if weight_decay != 0:
        param *= 1 - lr * weight_decay
    if param.ndim > 1:
        _torch_lerp(row_var, np.mean(g**2, axis=-1, keepdims=True), w)
        _torch_lerp(col_var, np.mean(g**2, axis=-2, keepdims=True), w)
        v = row_var @ col_var / np.maximum(np.mean(row_var, axis=-2, keepdims=True), eps1)
    else:
        _torch_lerp(variance, g**2, w)
        v = variance
    u = g / np.sqrt(np.maximum(v, eps1 * eps1))
    rms_u = np.sqrt(np.mean(u.astype(np.float64) ** 2))
    param -= (alpha / max(1.0, rms_u / d)) * u
