#!/usr/bin/env bash
# The whole test suite: set up as the demo does, plus what only the tests need, then run pytest (extra args pass through
# to both phases): what shares nothing on four workers (pytest-xdist; the tests mostly wait, so
# four fit two cores), then alone the tests marked
# `serial` (they measure time or change a shared file).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" || exit $?
bash "$ROOT/scripts/setup_tests.sh" || exit $?
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
status=0
"$PY" -m pytest -n "${PYO3_DEBUG_MAGIC_TEST_WORKERS:-4}" --dist load --phase parallel "$@" || status=$?
"$PY" -m pytest --phase serial "$@"
serial=$?
[ $status -eq 5 ] && status=0   # 5: a filter left no test in that phase
[ $serial -eq 5 ] && serial=0
[ $status -ne 0 ] && exit $status
exit $serial
