"""Benchmark: attaching to a kernel that has a large extension loaded, against raw gdb.

  polars        a Python process that imported polars (its runtime: a 170+ MB release build, no DWARF)
  large debug   one that imported a generated PyO3 crate built with debug info (--classes N
                #[pyclass]es with methods: about 120 MB, 75 MB of it DWARF, at the default 800)

For each, in the same run: `gdb -nx -batch -p PID` (attach, read symbols, detach: the
baseline), our first attach (a new helper process and gdb: NativeDebugger.attach) and a second
attach in the same kernel after `%native_detach` (the helper and its gdb kept). Medians of
--repeats runs, as ratios to the baseline. Targets: first <= 1.2x, second <= 0.5x.

Run: .venv/bin/python bench/attach_bench.py [--classes N] [--repeats R]   (a table, then one JSON line)
The large crate is generated and built once (about a minute at N=800), then reused.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyo3_debug_magic.debugger import NativeDebugger  # noqa: E402
from pyo3_debug_magic.tools import find_gdb  # noqa: E402

TARGET_DIR = ROOT / "examples" / "rustdemo" / "target"  # pyo3 is compiled there already
CLASS = """
#[pyclass]
#[derive(Clone)]
struct Thing{i} {{ #[pyo3(get, set)] a: i64, #[pyo3(get, set)] b: String, items: Vec<f64> }}

#[pymethods]
impl Thing{i} {{
    #[new]
    fn new(a: i64, b: String) -> Self {{ Thing{i} {{ a, b, items: vec![1.0; 3] }} }}
    fn total(&self) -> f64 {{ self.items.iter().sum::<f64>() + self.a as f64 }}
    fn label(&self, prefix: &str) -> String {{ format!("{{prefix}}{{}}{{}}", self.b, self.a) }}
    fn scaled(&self, k: f64) -> Vec<f64> {{ self.items.iter().map(|x| x * k).collect() }}
}}
"""


def large_debug_crate(classes: int) -> Path:
    """The generated crate built with debug info, unpacked where Python can import it."""
    crate = TARGET_DIR / f"bench-bigdebug-{classes}"
    site = crate / "site"
    if (site / "bigdebug").is_dir():
        return site
    (crate / "src").mkdir(parents=True, exist_ok=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "bigdebug"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n'
        '[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\n'
        'pyo3 = { version = "0.23", features = ["extension-module"] }\n\n[profile.dev]\ndebug = true\n')
    (crate / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["maturin>=1.5,<2"]\nbuild-backend = "maturin"\n\n'
        '[project]\nname = "bigdebug"\nversion = "0.1.0"\n\n[tool.maturin]\nfeatures = ["pyo3/extension-module"]\n')
    lock = ROOT / "examples" / "rustdemo" / "Cargo.lock"
    (crate / "Cargo.lock").write_text(lock.read_text().replace('name = "rustdemo"', 'name = "bigdebug"'))
    source = ["use pyo3::prelude::*;\n"] + [CLASS.format(i=i) for i in range(classes)]
    source += ["\n#[pymodule]\nfn bigdebug(m: &Bound<'_, PyModule>) -> PyResult<()> {\n"]
    source += [f"    m.add_class::<Thing{i}>()?;\n" for i in range(classes)] + ["    Ok(())\n}\n"]
    (crate / "src" / "lib.rs").write_text("".join(source))
    print(f"building a PyO3 crate with {classes} classes and debug info (once)...", file=sys.stderr, flush=True)
    with open(ROOT / ".venv" / ".build-lock", "a") as lock:  # the suite's builds share the target folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([str(ROOT / ".venv" / "bin" / "maturin"), "build", "--profile", "dev", "-i", sys.executable,
                        "--out", str(crate / "wheel")], cwd=crate, check=True, capture_output=True,
                       env={**os.environ, "CARGO_TARGET_DIR": str(TARGET_DIR)})
    with zipfile.ZipFile(next((crate / "wheel").glob("bigdebug-*.whl"))) as archive:
        archive.extractall(site)
    return site


def library_size(pid: int, fragment: str) -> int:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if fragment in line:
            return os.path.getsize(line.split(maxsplit=5)[5])
    return 0


def measure(module: str, path: Path | None, repeats: int) -> dict:
    env = {**os.environ, **({"PYTHONPATH": str(path)} if path else {})}
    target = subprocess.Popen([sys.executable, "-c", f"import time, {module}\nprint('ready', flush=True)\n"
                               "time.sleep(3600)"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert target.stdout.readline().strip() == "ready"
        raw, first, second = [], [], []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([find_gdb(), "-nx", "-batch", "-p", str(target.pid)], capture_output=True, timeout=120)
            raw.append(time.perf_counter() - started)
            debugger = NativeDebugger(target.pid)
            try:
                started = time.perf_counter()
                debugger.attach()
                first.append(time.perf_counter() - started)
                debugger.detach()
                started = time.perf_counter()
                debugger.attach()
                second.append(time.perf_counter() - started)
            finally:
                debugger.close()
        fragment = "_polars_runtime" if module == "polars" else "bigdebug"
        return {"library_mb": round(library_size(target.pid, fragment) / 2**20), "raw_s": statistics.median(raw),
                "first_s": statistics.median(first), "second_s": statistics.median(second)}
    finally:
        target.kill()
        target.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("PYO3_DEBUG_MAGIC_BENCH_ROUNDS", "5")))
    options = parser.parse_args()
    cases = {"polars": measure("polars", None, options.repeats),
             "large debug": measure("bigdebug", large_debug_crate(options.classes), options.repeats)}
    print(f"{'extension loaded':<18} {'size':>7} {'gdb -p -batch':>14} {'first':>9} {'ratio':>6} "
          f"{'second':>9} {'ratio':>6}   targets 1.2x / 0.5x")
    result = {"benchmark": "attach", "repeats": options.repeats, "classes": options.classes}
    met = True
    for name, row in cases.items():
        first, second = row["first_s"] / row["raw_s"], row["second_s"] / row["raw_s"]
        met = met and first <= 1.2 and second <= 0.5
        print(f"{name:<18} {row['library_mb']:>5}MB {row['raw_s'] * 1000:>12.0f}ms {row['first_s'] * 1000:>7.0f}ms "
              f"{first:>5.2f}x {row['second_s'] * 1000:>7.0f}ms {second:>5.2f}x")
        result[name.replace(" ", "_")] = {**{k: round(v, 3) for k, v in row.items()},
                                          "first_ratio": round(first, 2), "second_ratio": round(second, 2)}
    result["target_met"] = met
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
