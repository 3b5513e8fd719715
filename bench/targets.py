"""Print the performance targets for float32 Adam, measured side by side in one run.

    PYTHONPATH=src python bench/targets.py                 # sizes 1e2 1e3 1e5 1e6 1e7
    PYTHONPATH=src python bench/targets.py --repeats 11 --json targets.json

Same as ``fastoptim bench --targets``: the naive reference, torch.optim.Adam(fused=True),
``backend="auto"`` and the memory-traffic loop are timed in interleaved rounds at each size;
then every ratio is printed next to its target:

* n >= 1e7: auto at >= 95% of the speed of the traffic loop (read p, g, m, v; write p, m, v);
* n = 1e6: >= 1.5x torch fused; n = 1e5: >= 3x torch fused;
* n <= 1e3: >= 20x torch fused, >= 5x the naive reference, and about 2 us per call or less.

and the multi-tensor target (an optimizer class over 200 arrays vs one flat adam_step and vs
torch fused).
"""
import sys

from fastoptim.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--targets", *sys.argv[1:]]))
