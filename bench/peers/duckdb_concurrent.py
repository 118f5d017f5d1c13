#!/usr/bin/env python3
"""DuckDB as the peer of `skyscan-bench shared`: K different queries at
once on one database (a cursor per query, so they run concurrently), as
many rounds as asked.

Usage: duckdb_concurrent.py SPEC.json
SPEC: {"db": path (must exist), "threads": T, "rounds": [[sql, ...], ...]}
Prints JSON: {"version": ..., "rounds": [{"wall_ms": ..., "rows": [[...], ...] per query}]}
"""
import json
import sys
import threading
import time


def main():
    try:
        import duckdb
    except ImportError as e:
        print(f"skip: {e}")
        sys.exit(2)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    con = duckdb.connect(spec["db"], read_only=True)
    con.execute(f"SET threads={spec['threads']}")
    out = []
    for queries in spec["rounds"]:
        results = [None] * len(queries)

        def run(index, sql):
            cursor = con.cursor()
            rows = cursor.execute(sql).fetchall()
            results[index] = [[None if v is None else (float(v) if isinstance(v, (int, float)) else str(v)) for v in r] for r in rows]

        threads = [threading.Thread(target=run, args=(i, q)) for i, q in enumerate(queries)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.append({"wall_ms": (time.perf_counter() - start) * 1000.0, "rows": results})
    print(json.dumps({"version": duckdb.__version__, "rounds": out}))


if __name__ == "__main__":
    main()
