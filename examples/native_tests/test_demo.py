"""A small suite against the demo crate for pyo3_debug_magic's pytest options
(`pytest --native-crash`, `--native-break`, `--native-pdb`). `test_segfault` and `test_abort`
crash on purpose: run them with `--native-crash` and `-n 2` or `--forked` to see the run go on."""
import rustdemo


def test_compute():
    assert rustdemo.compute([1, 2, 3]) == 42


def test_segfault():
    rustdemo.segfault()


def test_square_after():
    assert rustdemo.square(7) == 49


def test_abort():
    rustdemo.abort()


def test_callback_error():
    assert rustdemo.call_python(lambda value: value // 0, 3) == 0


def test_panic():
    rustdemo.panic_now("the demo panics")
