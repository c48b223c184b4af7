#!/usr/bin/env bash
# Sets up everything the demo needs, and reuses what an earlier run built: system packages
# (gdb, binutils, libdw1) when missing, the virtualenv .venv with this package and its test
# extras, and the demo PyO3 crate examples/rustdemo built with debug info.
# scripts/setup_tests.sh adds what only the tests need.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[setup] %s\n' "$*"; }

missing=()
command -v gdb >/dev/null || missing+=(gdb)
command -v c++filt >/dev/null || missing+=(binutils)
command -v cc >/dev/null || missing+=(gcc)
# elfutils' libdw: %%native_profile --threads unwinds threads without Python with it
ldconfig -p 2>/dev/null | grep -q "libdw.so.1 " || missing+=(libdw1)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"; exit 1
  fi
  say "installing ${missing[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { say "cargo not found: install Rust from https://rustup.rs"; exit 1; }

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
VPY="$ROOT/.venv/bin/python"

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

deps_stamp=$(stamp_of pyproject.toml)
if [ "$(cat .venv/.deps-stamp 2>/dev/null)" != "$deps_stamp" ]; then
  say "installing pyo3_debug_magic and its test dependencies into .venv"
  "$VPY" -m pip install -q --upgrade pip
  "$VPY" -m pip install -q -e ".[test]"
  echo "$deps_stamp" > .venv/.deps-stamp
else
  say "python dependencies up to date"
fi

CRATE=examples/rustdemo
crate_stamp=$(stamp_of $CRATE/Cargo.toml $CRATE/Cargo.lock $CRATE/pyproject.toml $(find $CRATE/src -type f | sort))
if [ "$(cat .venv/.rustdemo-stamp 2>/dev/null)" != "$crate_stamp" ] || ! "$VPY" -c "import rustdemo" 2>/dev/null; then
  say "building the demo crate with debug info (maturin develop)"
  (cd $CRATE && VIRTUAL_ENV="$ROOT/.venv" PATH="$ROOT/.venv/bin:$PATH" maturin develop --quiet 2>&1 | grep -vE '^\s*$' | tail -3)
  "$VPY" -c "import rustdemo; assert rustdemo.compute([1, 2, 3]) == 42"
  echo "$crate_stamp" > .venv/.rustdemo-stamp
else
  say "demo crate up to date"
fi

# gdb-for-pwndbg links the shared libpython into each venv the first time its gdb runs: do it
# now, as the venv's owner (a later first run as another user could not write the link).
for venv in .venv; do
  if [ -x "$venv/bin/gdb" ]; then "$venv/bin/gdb" -nx -batch -ex "show version" >/dev/null; fi
done
