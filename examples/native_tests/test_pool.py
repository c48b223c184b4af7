"""Thread pools calling the demo crate while it holds the GIL, the shape of a real parser's
thread-safety test: pyo3_debug_magic's pytest options (`--refcheck`, `--native-crash`,
`--native-break`, `--native-pdb`) must run them to the end. `test_segfault_in_a_pool_worker`
crashes on purpose, in one of the pool's threads."""
from concurrent.futures import ThreadPoolExecutor

import rustdemo

INPUTS = [list(range(n % 40)) for n in range(4000)]


def test_compute_in_a_thread_pool():
    expected = [rustdemo.compute(values) for values in INPUTS]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(rustdemo.compute, values) for values in INPUTS]
        assert [future.result() for future in futures] == expected


def test_segfault_in_a_pool_worker():
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(rustdemo.compute, INPUTS[:100]))
        pool.submit(rustdemo.segfault).result()
