#!/usr/bin/env python3
"""Load-rate peers for `skyscan-bench load`: DuckDB and chDB load the same
Parquet file into their native tables with 2 threads.

Usage: load_peers.py PARQUET WORKDIR THREADS SUM_COLUMN
Prints tab-separated lines: engine, version, seconds, rows, sum, bytes on disk,
CPU seconds (user + system of this process over the load: both engines run
in-process, so their threads are counted; a fairer figure than wall time on a
busy machine).
An engine that is not installed prints `skip<TAB>engine<TAB>reason`.
"""
import os
import resource
import shutil
import sys
import time


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dir_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def duckdb_peer(parquet, workdir, threads, column):
    try:
        import duckdb
    except ImportError as e:
        print(f"skip\tduckdb\t{e}")
        return
    path = os.path.join(workdir, "duck.db")
    if os.path.exists(path):
        os.remove(path)
    con = duckdb.connect(path)
    con.execute(f"SET threads={threads}")
    start = time.perf_counter()
    cpu = cpu_seconds()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{parquet}')")
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    rows, total = con.execute(f'SELECT count(*), sum("{column}") FROM t').fetchone()
    con.close()
    bytes_on_disk = dir_bytes(path)
    if not os.environ.get("SKYSCAN_BENCH_KEEP"):
        # The next engine needs the disk space.
        os.remove(path)
    print(f"duckdb\t{duckdb.__version__}\t{seconds:.4f}\t{rows}\t{total}\t{bytes_on_disk}\t{cpu:.3f}")


def chdb_peer(parquet, workdir, threads, column):
    try:
        import chdb
        from chdb import session
    except ImportError as e:
        print(f"skip\tchdb\t{e}")
        return
    path = os.path.join(workdir, "chdb")
    sess = session.Session(path)
    settings = f"SETTINGS max_threads={threads}"
    sess.query("CREATE DATABASE IF NOT EXISTS b")
    sess.query("DROP TABLE IF EXISTS b.t")
    sess.query(
        f"CREATE TABLE b.t ENGINE = MergeTree ORDER BY tuple() AS "
        f"SELECT * FROM file('{parquet}', Parquet) LIMIT 0"
    )
    start = time.perf_counter()
    cpu = cpu_seconds()
    sess.query(f"INSERT INTO b.t SELECT * FROM file('{parquet}', Parquet) {settings}")
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    out = sess.query(f'SELECT count(), sum("{column}") FROM b.t', "TSV").bytes().decode().split()
    sess.close()
    bytes_on_disk = dir_bytes(path)
    if not os.environ.get("SKYSCAN_BENCH_KEEP"):
        shutil.rmtree(path, ignore_errors=True)
    version = getattr(chdb, "__version__", "?")
    print(f"chdb\t{version}\t{seconds:.4f}\t{out[0]}\t{out[1]}\t{bytes_on_disk}\t{cpu:.3f}")


def main():
    parquet, workdir, threads, column = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    duckdb_peer(parquet, workdir, threads, column)
    chdb_peer(parquet, workdir, threads, column)


if __name__ == "__main__":
    main()
