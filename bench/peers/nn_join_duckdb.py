#!/usr/bin/env python3
"""Near-neighbour peer for `skyscan-bench spatial`: DuckDB counts the pairs
within a radius on the same points with a grid-cell hash join (the careful
way: cells of side >= r, each point joined against the 3x3 cells around it,
then the haversine test), at each requested thread count.

Usage: nn_join_duckdb.py POINTS_FILE ROWS RADIUS_DEG REPEATS THREADS[,THREADS...]
POINTS_FILE holds ROWS little-endian f64 RAs then ROWS f64 declinations.
Prints tab-separated lines: engine, version, threads, best seconds, median
seconds, pairs. The pairs are ordered pairs (a, b), a = b included, with
angular separation < r: what the skyscan kernel returns for the same input.
If DuckDB is missing it prints `skip<TAB>duckdb<TAB>reason`.
"""
import math
import statistics
import sys
import time


def main():
    path, rows, radius, repeats, threads = sys.argv[1:6]
    rows, radius, repeats = int(rows), float(radius), int(repeats)
    try:
        import duckdb
        import numpy as np
        import pyarrow as pa
    except ImportError as e:
        print(f"skip\tduckdb\t{e}")
        return
    data = np.fromfile(path, dtype="<f8")
    if data.size != 2 * rows:
        raise SystemExit(f"{path}: {data.size} values, expected {2 * rows}")
    ra, decl = data[:rows], data[rows:]
    con = duckdb.connect()
    con.register(
        "points_in",
        pa.table({"id": np.arange(rows, dtype=np.int64), "ra": ra, "decl": decl}),
    )
    max_abs_dec = float(np.max(np.abs(decl)))
    # Cell side r in declination and r / cos(max |dec|) in RA: any pair
    # closer than r is in the same or adjacent cells.
    ra_cell = radius / math.cos(math.radians(min(max_abs_dec + radius, 89.0)))
    con.execute(
        f"""
        CREATE TABLE p AS
        SELECT id, ra, decl,
               floor(ra / {ra_cell})::BIGINT AS cx,
               floor(decl / {radius})::BIGINT AS cy
        FROM points_in
        """
    )
    query = f"""
        WITH n AS (
            SELECT id, ra, decl, cx + dx AS ncx, cy + dy AS ncy
            FROM p, (VALUES (-1), (0), (1)) AS tx(dx), (VALUES (-1), (0), (1)) AS ty(dy)
        )
        SELECT count(*) FROM p AS a JOIN n AS b ON a.cx = b.ncx AND a.cy = b.ncy
        WHERE 2 * asin(sqrt(
                  pow(sin(radians(b.decl - a.decl) / 2), 2)
                + cos(radians(a.decl)) * cos(radians(b.decl))
                  * pow(sin(radians(b.ra - a.ra) / 2), 2)))
              < radians({radius})
    """
    for t in threads.split(","):
        con.execute(f"SET threads={int(t)}")
        times = []
        pairs = None
        for _ in range(repeats):
            start = time.perf_counter()
            pairs = con.execute(query).fetchone()[0]
            times.append(time.perf_counter() - start)
        print(
            f"duckdb\t{duckdb.__version__}\t{t}\t{min(times):.6f}\t"
            f"{statistics.median(times):.6f}\t{pairs}"
        )


if __name__ == "__main__":
    main()
