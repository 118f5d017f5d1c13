#!/usr/bin/env bash
# Installs the peer of `skyscan-bench apdb`: lsst-dax-apdb (with SQLAlchemy,
# pandas, astropy, lsst-sphgeom from PyPI) and pyarrow. Idempotent.
set -euo pipefail
need=()
python3 -c 'import lsst.dax.apdb' 2>/dev/null || need+=(lsst-dax-apdb)
python3 -c 'import pyarrow' 2>/dev/null || need+=(pyarrow)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-apdb: installing ${need[*]}"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${need[@]}"
fi
python3 -c 'import lsst.dax.apdb, pyarrow; print("setup-apdb: lsst-dax-apdb ready")'
