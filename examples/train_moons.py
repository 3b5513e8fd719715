"""The course's 3-layer network on the "moons" data, trained with fastoptim's optimizers.

The network, the cost and the loop are the course's (examples are columns, parameters in a
dict, mini-batches of 64, learning rate 0.0007); the only change is the update: one line of
fastoptim instead of a hand-written ``update_parameters_with_adam`` (and its state dicts).

    python examples/train_moons.py [num_epochs]        # default 5000, the course's
"""
import sys

import numpy as np

import fastoptim
from fastoptim.train.datasets import make_moons   # scikit-learn's, or the same points without it


def initialize_parameters_he(layers_dims, seed=3):
    rng = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = (rng.standard_normal((layers_dims[l], layers_dims[l - 1]))
                                    * np.sqrt(2 / layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters


def forward_propagation(X, parameters):
    """LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID."""
    z1 = parameters["W1"] @ X + parameters["b1"]
    a1 = np.maximum(z1, 0)
    z2 = parameters["W2"] @ a1 + parameters["b2"]
    a2 = np.maximum(z2, 0)
    z3 = parameters["W3"] @ a2 + parameters["b3"]
    a3 = 1 / (1 + np.exp(-z3))
    return a3, (z1, a1, z2, a2, z3, a3, parameters)


def compute_cost(a3, Y):
    """The cross-entropy summed over the mini-batch (divided by m once per epoch)."""
    return np.sum(-Y * np.log(a3) - (1 - Y) * np.log(1 - a3))


def backward_propagation(X, Y, cache):
    z1, a1, z2, a2, z3, a3, parameters = cache
    m = X.shape[1]
    dz3 = (a3 - Y) / m
    grads = {"dW3": dz3 @ a2.T, "db3": dz3.sum(axis=1, keepdims=True)}
    dz2 = (parameters["W3"].T @ dz3) * (a2 > 0)
    grads["dW2"], grads["db2"] = dz2 @ a1.T, dz2.sum(axis=1, keepdims=True)
    dz1 = (parameters["W2"].T @ dz2) * (a1 > 0)
    grads["dW1"], grads["db1"] = dz1 @ X.T, dz1.sum(axis=1, keepdims=True)
    return grads


def model(X, Y, optimizer, learning_rate=0.0007, mini_batch_size=64, num_epochs=5000,
          decay_rate=0.0, seed=3):
    parameters = initialize_parameters_he([X.shape[0], 5, 2, 1], seed)
    if optimizer == "gd":
        opt = fastoptim.SGD(parameters, lr=learning_rate)
    elif optimizer == "momentum":      # the course's v = beta*v + (1-beta)*dW
        opt = fastoptim.SGD(parameters, lr=learning_rate, momentum=0.9, dampening=0.9)
    elif optimizer == "rmsprop":
        opt = fastoptim.RMSprop(parameters, lr=learning_rate)
    else:
        opt = fastoptim.Adam(parameters, lr=learning_rate, betas=(0.9, 0.999), eps=1e-8)
    decay = fastoptim.schedules.inverse_time_decay(learning_rate, decay_rate)
    rng = np.random.default_rng(seed)     # a new mini-batch order every epoch, reproducible
    costs = []
    for epoch in range(1, num_epochs + 1):
        cost_total = 0.0
        for X_t, Y_t in fastoptim.minibatches(X, Y, mini_batch_size, axis=1, seed=rng):
            a3, cache = forward_propagation(X_t, parameters)
            cost_total += compute_cost(a3, Y_t)
            grads = backward_propagation(X_t, Y_t, cache)
            opt.step({k: grads["d" + k] for k in parameters})     # W1, b1, ... in place
        opt.lr = decay(epoch)              # lr0 / (1 + decay_rate * epoch) for the next epoch
        costs.append(cost_total / X.shape[1])
        if epoch % 1000 == 0:
            print(f"  {optimizer:<8} cost after epoch {epoch}: {costs[-1]:.6f}")
    return parameters, costs


def predict(X, parameters):
    return (forward_propagation(X, parameters)[0] > 0.5).astype(int)


if __name__ == "__main__":
    num_epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    X, y = make_moons(300, noise=0.2, seed=3)          # the course's data
    train_X, train_Y = X.T, y.reshape(1, -1)            # examples as columns
    for name in ("gd", "momentum", "rmsprop", "adam"):
        parameters, costs = model(train_X, train_Y, name, num_epochs=num_epochs)
        acc = np.mean(predict(train_X, parameters) == train_Y)
        print(f"{name:<8} train accuracy {acc:.1%}, final cost {costs[-1]:.4f}")
