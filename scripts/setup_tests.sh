#!/usr/bin/env bash
# What only the tests need, on top of scripts/setup.sh (run it first): Chromium for the browser
# test, and the demo crate in two more environments, ipykernel 6.29 and Debian's own Python
# (no libpython debug info). Reuses what an earlier run built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[setup] %s\n' "$*"; }
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
PYTHON="${PYTHON:-python3}"
CRATE=examples/rustdemo

missing=()
# the browser test: JupyterLab in Debian's Chromium, driven by Playwright (which brings no browser here)
command -v chromium >/dev/null || missing+=(chromium)
if [ -x /usr/bin/python3 ]; then  # Debian's Python, for the no-debug-info tests; gdb 18 embeds libpython
  /usr/bin/python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
  ls /usr/lib/x86_64-linux-gnu/libpython3*.so.1.0 >/dev/null 2>&1 || missing+=(libpython3-dev)
  # its separate debug info (/usr/lib/debug), for the tests of a Debian Python with python3.X-dbg
  debpy=$(/usr/bin/python3 -c 'import sys; print("python%d.%d-dbg" % sys.version_info[:2])')
  dpkg -s "$debpy" >/dev/null 2>&1 || missing+=("$debpy")
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages for the tests: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"; exit 1
  fi
  say "installing ${missing[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A second environment with ipykernel 6.29 (it routes a thread's output differently from 7.x):
# the pause is tested against both.
IPK6=.venv-ipykernel6
ipk6_stamp=$(stamp_of pyproject.toml $CRATE/Cargo.toml $CRATE/Cargo.lock $(find $CRATE/src -type f | sort))
if [ "$(cat $IPK6/.stamp 2>/dev/null)" != "$ipk6_stamp" ] || ! $IPK6/bin/python -c "import rustdemo, ipykernel" 2>/dev/null; then
  say "building $IPK6 (ipykernel 6.29) for the compatibility tests"
  [ -x $IPK6/bin/python ] || "$PYTHON" -m venv $IPK6
  $IPK6/bin/python -m pip install -q --upgrade pip
  $IPK6/bin/python -m pip install -q "ipykernel==6.29.5" "ipython>=8.12,<9" -e .
  (cd $CRATE && VIRTUAL_ENV="$ROOT/$IPK6" PATH="$ROOT/$IPK6/bin:$ROOT/.venv/bin:$PATH" maturin develop --quiet 2>&1 | grep -vE '^\s*$' | tail -2)
  $IPK6/bin/python -c "import ipykernel, rustdemo; assert ipykernel.__version__.startswith('6.29'); assert rustdemo.compute([1, 2, 3]) == 42"
  echo "$ipk6_stamp" > $IPK6/.stamp
else
  say "$IPK6 up to date"
fi

# A venv of Debian's own /usr/bin/python3, which has no libpython debug info (like conda's and
# Docker's Pythons): the pause, backtraces and crash capture are tested there too.
DEBVENV=.venv-debian
if [ -x /usr/bin/python3 ]; then
  deb_stamp=$(stamp_of pyproject.toml $CRATE/Cargo.toml $CRATE/Cargo.lock $(find $CRATE/src -type f | sort))
  if [ "$(cat $DEBVENV/.stamp 2>/dev/null)" != "$deb_stamp" ] || ! $DEBVENV/bin/python -c "import rustdemo, ipykernel" 2>/dev/null; then
    say "building $DEBVENV ($(/usr/bin/python3 --version), no libpython debug info) for the tests"
    [ -x $DEBVENV/bin/python ] || /usr/bin/python3 -m venv $DEBVENV
    $DEBVENV/bin/python -m pip install -q --upgrade pip
    $DEBVENV/bin/python -m pip install -q -e .
    (cd $CRATE && VIRTUAL_ENV="$ROOT/$DEBVENV" PATH="$ROOT/$DEBVENV/bin:$ROOT/.venv/bin:$PATH" maturin develop --quiet 2>&1 | grep -vE '^\s*$' | tail -2)
    $DEBVENV/bin/python -c "import rustdemo; assert rustdemo.compute([1, 2, 3]) == 42"
    echo "$deb_stamp" > $DEBVENV/.stamp
  else
    say "$DEBVENV up to date"
  fi
fi

# gdb-for-pwndbg links the shared libpython into each venv the first time its gdb runs: do it
# now, as the venv's owner (a later first run as another user could not write the link).
for venv in $IPK6 $DEBVENV; do
  if [ -x "$venv/bin/gdb" ]; then "$venv/bin/gdb" -nx -batch -ex "show version" >/dev/null; fi
done
