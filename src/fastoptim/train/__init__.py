"""The course's NumPy network trained with fastoptim: ``fastoptim train``.

* :mod:`~fastoptim.train.network`: forward, cost and backward of a multilayer network
  (``parameters["W1"]``, examples as columns, He initialisation, ReLU, sigmoid/softmax);
* :mod:`~fastoptim.train.datasets`: the "moons" and "digits" data sets, split with a seed;
* :mod:`~fastoptim.train.updaters`: the update step, by fastoptim or by the course's naive loop;
* :mod:`~fastoptim.train.trainer`: the training loop (mini-batches, decay per epoch, timing);
* :mod:`~fastoptim.train.command`: the ``fastoptim train`` command line; ``plot``, ``progress``.

scikit-learn, matplotlib and tqdm are optional: ``pip install "fastoptim[train]"``.
"""
