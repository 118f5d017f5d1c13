#!/usr/bin/env python3
"""DuckDB as the peer of `skyscan-bench query`: the same questions on the
same rows, timed in the same run.

Usage: duckdb_queries.py SPEC.json
SPEC: {"db": path of the DuckDB file (built from "parquet" if absent),
       "parquet": path, "threads": [1, 2], "reps": N,
       "queries": [{"name": ..., "sql": ...}, ...]}
Prints one JSON object: {"version": ..., "load_s": ..., "results":
{name: {threads: {"ms": [..], "rows": [[..], ..]}}}}. Exits 2 (printing
"skip: reason") when DuckDB is not installed.
"""
import json
import os
import sys
import time


def main():
    try:
        import duckdb
    except ImportError as e:
        print(f"skip: {e}")
        sys.exit(2)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    load_s = None
    if not os.path.exists(spec["db"]):
        con = duckdb.connect(spec["db"])
        con.execute(f"SET threads={max(spec['threads'])}")
        start = time.perf_counter()
        con.execute(f"CREATE TABLE Object AS SELECT * FROM read_parquet('{spec['parquet']}')")
        con.execute("CHECKPOINT")
        load_s = time.perf_counter() - start
        con.close()
    con = duckdb.connect(spec["db"], read_only=True)
    results = {}
    for query in spec["queries"]:
        per_threads = {}
        for threads in spec["threads"]:
            con.execute(f"SET threads={threads}")
            rows = con.execute(query["sql"]).fetchall()  # warm-up, and the answer
            times = []
            for _ in range(spec["reps"]):
                start = time.perf_counter()
                con.execute(query["sql"]).fetchall()
                times.append((time.perf_counter() - start) * 1000.0)
            per_threads[str(threads)] = {
                "ms": times,
                "rows": [[None if v is None else (float(v) if isinstance(v, (int, float)) else str(v)) for v in r] for r in rows[:100000]],
                "row_count": len(rows),
                "sum_first": float(sum(r[0] for r in rows if isinstance(r[0], (int, float)))) if rows else 0.0,
            }
        results[query["name"]] = per_threads
    print(json.dumps({"version": duckdb.__version__, "load_s": load_s, "results": results}))


if __name__ == "__main__":
    main()
