"""Low-memory Adam state: speed and bytes per parameter, side by side (the code lives in
fastoptim.bench.lowmem, which `fastoptim bench --lowmem` runs too).

    PYTHONPATH=src python bench/lowmem.py [--n 3e7] [--rounds 7] [--bnb-n 1.6e7] [--json F]
                                          [--simd LEVEL] [--search bucket|arithmetic]
"""
from fastoptim.bench.lowmem import main

if __name__ == "__main__":
    main()
