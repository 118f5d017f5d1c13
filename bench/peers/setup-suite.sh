#!/usr/bin/env bash
# Installs the peers of `skyscan-bench suite`: DuckDB, chDB, matplotlib,
# psycopg2 and numpy/pyarrow from PyPI; PostgreSQL 15 with the Q3C extension
# from Debian. Idempotent. A peer that cannot be installed is reported and
# left out (the suite then skips it with the reason); DuckDB is required.
# SKYSCAN_SUITE_NO_APT=1 skips the apt step (machines without root).
set -uo pipefail
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"
}
need=()
python3 -c 'import duckdb' 2>/dev/null || need+=(duckdb)
python3 -c 'import pyarrow' 2>/dev/null || need+=(pyarrow)
python3 -c 'import numpy' 2>/dev/null || need+=(numpy)
python3 -c 'import matplotlib' 2>/dev/null || need+=(matplotlib)
python3 -c 'import psycopg2' 2>/dev/null || need+=(psycopg2-binary)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-suite: pip installing ${need[*]}"
  pip_install "${need[@]}" || echo "setup-suite: pip install of ${need[*]} failed"
fi
# chDB is optional (a large wheel, x86-64/arm64 Linux and macOS only).
python3 -c 'import chdb' 2>/dev/null || pip_install chdb || echo "setup-suite: chdb could not be installed: its peer will be skipped"

pg_bin=/usr/lib/postgresql/15/bin
q3c_ok() { [ -f /usr/share/postgresql/15/extension/q3c.control ]; }
if [ "${SKYSCAN_SUITE_NO_APT:-0}" != 1 ] && { [ ! -x "$pg_bin/postgres" ] || ! q3c_ok; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup-suite: apt installing postgresql-15 postgresql-15-q3c"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-15-q3c >/dev/null 2>&1 \
      || echo "setup-suite: apt-get install postgresql-15-q3c failed: the PostgreSQL peer will be skipped"
  else
    echo "setup-suite: not root or no apt-get: the PostgreSQL + Q3C peer will be skipped"
  fi
fi
python3 -c 'import duckdb; print("setup-suite: duckdb", duckdb.__version__)' || { echo "setup-suite: duckdb is required"; exit 1; }
python3 -c 'import chdb; print("setup-suite: chdb", chdb.__version__)' 2>/dev/null || true
python3 -c 'import matplotlib; print("setup-suite: matplotlib", matplotlib.__version__)' 2>/dev/null || echo "setup-suite: no matplotlib: the report will have no charts"
if [ -x "$pg_bin/postgres" ] && q3c_ok; then echo "setup-suite: PostgreSQL 15 + Q3C ready"; fi
exit 0
