#!/usr/bin/env bash
# Installs the Python packages skyscan's tests and benchmarks use as external
# ground truth and as peers: lsst-sphgeom (chunk ids of regions), pyarrow
# (Parquet sizes), duckdb (the first peer). Idempotent; quiet when all are present.
set -euo pipefail
need=()
python3 -c 'import lsst.sphgeom' 2>/dev/null || need+=(lsst-sphgeom)
python3 -c 'import pyarrow' 2>/dev/null || need+=(pyarrow)
python3 -c 'import duckdb' 2>/dev/null || need+=(duckdb)
python3 -c 'import numpy' 2>/dev/null || need+=(numpy)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-python: installing ${need[*]}"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${need[@]}"
fi
python3 -c 'import lsst.sphgeom, pyarrow, duckdb, numpy; print("setup-python: lsst-sphgeom, pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__, "ready")'
