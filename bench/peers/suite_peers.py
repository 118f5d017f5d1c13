#!/usr/bin/env python3
"""Peers of `skyscan-bench suite`: DuckDB (native tables and Parquet), chDB
(MergeTree tables) and PostgreSQL 15 + Q3C, on the same Parquet files, in
the same run. `bench/peers/setup-suite.sh` installs them.

Usage: suite_peers.py MODE SPEC.json   (prints one JSON object on stdout)

Modes:
  pg-start  {"dir": D}: initdb in D (as user postgres when run as root),
            start on 127.0.0.1 at a free port, CREATE EXTENSION q3c;
            prints {"port": P, "version": V} or {"skip": reason}.
  pg-stop   {"dir": D}: pg_ctl stop -m fast (idempotent).
  load      {"object_parquet", "source_parquet", "work": dir, "threads",
             "engines": [...], "pg_port"}: builds each engine's tables,
            timed; prints {"engines": {name: {"version", "seconds",
            "index_seconds", "rows", "bytes"} | {"skip": reason}}}.
  run       {"engines": [...], "threads", "work", "pg_port", "queries":
            [{"id", "reps", "sql": {engine: sql}}]}: each query once for
            its answer (the warm-up), then `reps` timed runs; prints
            {"results": {engine: {id: {"ms": [...], "rows": [...],
            "row_count": n} | {"error": msg}}}, "skipped": {engine: reason}}.
  mix       {"engine", "threads", "work", "pg_port", "clients",
             "per_client", "lv": [sql], "hv": [sql]}: `clients` threads
            each run `per_client` LV queries (round robin over "lv"), first
            alone, then while one thread per HV query runs it in a loop;
            prints {"idle_ms": [...], "loaded_ms": [...], "hv_runs": n}.

SQL uses {Object} and {Source} for the table names; each engine substitutes
its own. Integers stay integers in the JSON (object ids exceed 2^53).
"""
import decimal
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
MAX_ROWS_SHIPPED = 200_000


def value(v):
    if v is None or isinstance(v, (bool, int, str)):
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else str(v)
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return str(v)


def rows_out(rows):
    return [[value(v) for v in r] for r in rows[:MAX_ROWS_SHIPPED]]


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


# ---------------------------------------------------------------- engines


class DuckNative:
    name = "duckdb"

    def __init__(self, spec):
        import duckdb

        self.version = duckdb.__version__
        self.con = duckdb.connect(os.path.join(spec["work"], "duck.db"), read_only=True)
        self.con.execute(f"SET threads={spec['threads']}")

    def sql(self, text):
        return text.replace("{Object}", "Object").replace("{Source}", "Source")

    def cursor(self):
        return self.con.cursor()

    def query(self, text, cursor=None):
        return (cursor or self.con).execute(self.sql(text)).fetchall()


class DuckParquet(DuckNative):
    name = "duckdb-parquet"

    def __init__(self, spec):
        import duckdb

        self.version = duckdb.__version__
        self.con = duckdb.connect()
        self.con.execute(f"SET threads={spec['threads']}")
        self.con.execute(f"CREATE VIEW Object AS SELECT * FROM read_parquet('{spec['object_parquet']}')")
        self.con.execute(f"CREATE VIEW Source AS SELECT * FROM read_parquet('{spec['source_parquet']}')")


class Chdb:
    name = "chdb"

    def __init__(self, spec):
        import chdb
        from chdb import session

        self.version = getattr(chdb, "__version__", "?")
        self.sess = session.Session(os.path.join(spec["work"], "chdb"))
        self.settings = (
            f" SETTINGS max_threads={spec['threads']}, output_format_json_quote_64bit_integers=0,"
            " output_format_json_quote_denormals=1"
        )

    def sql(self, text):
        return text.replace("{Object}", "b.Object").replace("{Source}", "b.Source")

    def cursor(self):
        return None

    def query(self, text, cursor=None):
        out = self.sess.query(self.sql(text) + self.settings, "JSONCompact").bytes()
        if not out:
            return []
        return json.loads(out)["data"]


class Postgres:
    name = "postgres"

    def __init__(self, spec):
        import psycopg2

        self.psycopg2 = psycopg2
        self.port = spec.get("pg_port")
        if not self.port:
            raise RuntimeError("PostgreSQL is not running")
        self.con = self.connect()
        cur = self.con.cursor()
        cur.execute("SHOW server_version")
        self.version = cur.fetchone()[0]

    def connect(self):
        con = self.psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        con.autocommit = True
        return con

    def sql(self, text):
        return text.replace("{Object}", "Object").replace("{Source}", "Source")

    def cursor(self):
        return self.connect().cursor()

    def query(self, text, cursor=None):
        cur = cursor or self.con.cursor()
        cur.execute(self.sql(text))
        return cur.fetchall()


ENGINES = {"duckdb": DuckNative, "duckdb-parquet": DuckParquet, "chdb": Chdb, "postgres": Postgres}


def open_engines(spec):
    opened, skipped = {}, {}
    for name in spec["engines"]:
        try:
            opened[name] = ENGINES[name](spec)
        except Exception as e:  # a missing module or server: skip with the reason
            skipped[name] = f"{type(e).__name__}: {e}"
    return opened, skipped


# ---------------------------------------------------------------- PostgreSQL server


def as_postgres(args):
    """Runs a PostgreSQL binary; as root through runuser (postgres refuses root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, capture_output=True, text=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PG_WATCHDOG = """
import os, subprocess, sys, time
suite, pg_bin, data = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pid_file = os.path.join(data, "postmaster.pid")
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while os.path.exists(pid_file) and alive(suite):
    time.sleep(1)
if os.path.exists(pid_file):
    cmd = [pg_bin + "/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, capture_output=True)
"""


def pg_start(spec):
    d = spec["dir"]
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        return {"skip": f"{PG_BIN}/postgres not installed (bench/peers/setup-suite.sh installs it)"}
    if not os.path.exists("/usr/share/postgresql/15/extension/q3c.control"):
        return {"skip": "the q3c extension is not installed (Debian package postgresql-15-q3c)"}
    os.makedirs(d, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
    data = os.path.join(d, "data")
    r = as_postgres([f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
    if r.returncode != 0:
        return {"skip": f"initdb failed: {r.stderr.strip()[-400:]}"}
    port = free_port()
    # A benchmark server: no durability (fsync off) so loads are not disk
    # bound, caches sized for the machine, parallel workers as threads.
    # wal_level=minimal: a table created and filled in one transaction
    # writes no WAL (the disk is shared and small; 8 GB of WAL would not fit).
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {d} -c fsync=off -c synchronous_commit=off"
        " -c full_page_writes=off -c shared_buffers=2GB -c work_mem=256MB -c maintenance_work_mem=1GB"
        " -c max_connections=200 -c max_parallel_workers_per_gather=2 -c effective_cache_size=8GB"
        " -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=1GB -c jit=off"
    )
    r = as_postgres([f"{PG_BIN}/pg_ctl", "-D", data, "-l", os.path.join(d, "log"), "-o", options, "-w", "start"])
    if r.returncode != 0:
        log = open(os.path.join(d, "log")).read()[-400:] if os.path.exists(os.path.join(d, "log")) else ""
        return {"skip": f"pg_ctl start failed: {r.stderr.strip()[-300:]} {log}"}
    with open(os.path.join(d, "port"), "w") as f:
        f.write(str(port))
    # The suite stops the server when it ends, but not when it is killed:
    # a detached watchdog stops it once the suite's process is gone.
    subprocess.Popen(
        [sys.executable, "-c", PG_WATCHDOG, str(os.getppid()), PG_BIN, data],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, close_fds=True,
    )
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        con.autocommit = True
        cur = con.cursor()
        cur.execute("CREATE EXTENSION IF NOT EXISTS q3c")
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'q3c'")
        q3c = cur.fetchone()[0]
        con.close()
    except Exception as e:
        pg_stop(spec)
        return {"skip": f"PostgreSQL started but is not usable: {e}"}
    return {"port": port, "version": f"{version} + q3c {q3c}"}


def pg_stop(spec):
    data = os.path.join(spec["dir"], "data")
    if os.path.exists(os.path.join(data, "postmaster.pid")):
        r = as_postgres([f"{PG_BIN}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
        return {"stopped": r.returncode == 0, "message": r.stderr.strip()[-300:]}
    return {"stopped": True, "message": "not running"}


# ---------------------------------------------------------------- load


PG_TYPES = {
    "int8": "smallint", "int16": "smallint", "int32": "integer", "int64": "bigint",
    "float": "real", "double": "double precision", "bool": "boolean", "string": "text", "large_string": "text",
}


def load_duckdb(spec):
    import duckdb

    path = os.path.join(spec["work"], "duck.db")
    if os.path.exists(path):
        os.remove(path)
    con = duckdb.connect(path)
    con.execute(f"SET threads={spec['threads']}")
    start = time.perf_counter()
    con.execute(f"CREATE TABLE Object AS SELECT * FROM read_parquet('{spec['object_parquet']}')")
    con.execute(f"CREATE TABLE Source AS SELECT * FROM read_parquet('{spec['source_parquet']}')")
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    # ART indexes on the keys, as a user would add for lookups.
    con.execute("CREATE INDEX object_id ON Object(objectId)")
    con.execute("CREATE INDEX source_object ON Source(objectId)")
    con.execute("CHECKPOINT")
    index_seconds = time.perf_counter() - start
    rows = con.execute("SELECT (SELECT count(*) FROM Object) + (SELECT count(*) FROM Source)").fetchone()[0]
    con.close()
    return {"version": duckdb.__version__, "seconds": seconds, "index_seconds": index_seconds, "rows": rows,
            "bytes": dir_bytes(path)}


def load_chdb(spec):
    import chdb
    from chdb import session

    path = os.path.join(spec["work"], "chdb")
    shutil.rmtree(path, ignore_errors=True)
    sess = session.Session(path)
    sess.query("CREATE DATABASE IF NOT EXISTS b")
    start = time.perf_counter()
    for table, key in (("Object", "objectId"), ("Source", "objectId")):
        parquet = spec[f"{table.lower()}_parquet"]
        # Sorted by objectId: the primary index serves lookups and light curves.
        # old_parts_lifetime: merged-away parts leave the shared disk soon.
        sess.query(f"CREATE TABLE b.{table} ENGINE = MergeTree ORDER BY {key} "
                   f"SETTINGS old_parts_lifetime = 10 AS "
                   f"SELECT * FROM file('{parquet}', Parquet) LIMIT 0")
        sess.query(f"INSERT INTO b.{table} SELECT * FROM file('{parquet}', Parquet) "
                   f"SETTINGS max_threads={spec['threads']}, max_insert_threads={spec['threads']}")
    sess.query("OPTIMIZE TABLE b.Object FINAL")
    sess.query("OPTIMIZE TABLE b.Source FINAL")
    seconds = time.perf_counter() - start
    out = sess.query("SELECT (SELECT count() FROM b.Object) + (SELECT count() FROM b.Source)", "TSV").bytes()
    # The active parts only: the parts OPTIMIZE merged away stay in the
    # directory until the background cleanup removes them.
    size = sess.query("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = 'b'",
                      "TSV").bytes()
    sess.close()
    return {"version": getattr(chdb, "__version__", "?"), "seconds": seconds, "index_seconds": 0.0,
            "rows": int(out.decode().split()[0]), "bytes": int(size.decode().split()[0])}


def load_postgres(spec):
    import io

    import duckdb
    import psycopg2
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    port = spec.get("pg_port")
    if not port:
        raise RuntimeError("PostgreSQL is not running")
    con = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    cur = con.cursor()
    duck = duckdb.connect()
    duck.execute(f"SET threads={spec['threads']}")
    seconds = 0.0
    for table in ("Object", "Source"):
        parquet = spec[f"{table.lower()}_parquet"]
        schema = pq.read_schema(parquet)
        columns = ", ".join(f"{f.name} {PG_TYPES[str(f.type)]}" for f in schema)
        # Created and filled in one transaction: with wal_level=minimal no WAL.
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"CREATE TABLE {table} ({columns})")
        # PostgreSQL reads no Parquet: CSV made by pyarrow from DuckDB's
        # batches (not timed), streamed through memory (no CSV file on the
        # shared disk), then COPY (timed). Source comes in objectId order,
        # the order CLUSTER on its objectId index would give, without
        # CLUSTER's second copy of the table on disk.
        order = " ORDER BY objectId" if table == "Source" else ""
        reader = duck.execute(f"SELECT * FROM read_parquet('{parquet}'){order}").to_arrow_reader(500_000)
        for batch in reader:
            buf = io.BytesIO()
            pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
            buf.seek(0)
            start = time.perf_counter()
            cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", buf)
            seconds += time.perf_counter() - start
        start = time.perf_counter()
        con.commit()
        seconds += time.perf_counter() - start
    con.autocommit = True
    start = time.perf_counter()
    cur.execute("ALTER TABLE Object ADD PRIMARY KEY (objectId)")
    cur.execute("CREATE INDEX object_q3c ON Object (q3c_ang2ipix(ra, decl))")
    cur.execute("CLUSTER Object USING object_q3c")
    cur.execute("CREATE INDEX source_object ON Source (objectId)")
    cur.execute("ANALYZE")
    index_seconds = time.perf_counter() - start
    cur.execute("SELECT (SELECT count(*) FROM Object) + (SELECT count(*) FROM Source)")
    rows = cur.fetchone()[0]
    cur.execute("SELECT pg_total_relation_size('object') + pg_total_relation_size('source')")
    size = cur.fetchone()[0]
    cur.execute("SHOW server_version")
    version = cur.fetchone()[0]
    con.close()
    return {"version": version, "seconds": seconds, "index_seconds": index_seconds, "rows": rows, "bytes": size}


def load(spec):
    loaders = {"duckdb": load_duckdb, "chdb": load_chdb, "postgres": load_postgres}
    out = {}
    for name in spec["engines"]:
        if name == "duckdb-parquet":
            import duckdb

            out[name] = {"version": duckdb.__version__, "seconds": 0.0, "index_seconds": 0.0, "rows": None,
                         "bytes": dir_bytes(spec["object_parquet"]) + dir_bytes(spec["source_parquet"])}
            continue
        try:
            out[name] = loaders[name](spec)
        except ImportError as e:
            out[name] = {"skip": f"not installed: {e}"}
        except Exception as e:
            out[name] = {"skip": f"load failed: {type(e).__name__}: {e}"}
    return {"engines": out}


# ---------------------------------------------------------------- run


def run(spec):
    engines, skipped = open_engines(spec)
    results = {}
    for name, engine in engines.items():
        mine = {}
        for q in spec["queries"]:
            sql = q["sql"].get(name)
            if sql is None:
                continue
            try:
                rows = engine.query(sql)
                times = []
                for _ in range(q["reps"]):
                    start = time.perf_counter()
                    engine.query(sql)
                    times.append((time.perf_counter() - start) * 1000.0)
                mine[q["id"]] = {"ms": times, "rows": rows_out(rows), "row_count": len(rows)}
            except Exception as e:
                mine[q["id"]] = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
        results[name] = mine
    return {"results": results, "skipped": skipped,
            "versions": {name: e.version for name, e in engines.items()}}


# ---------------------------------------------------------------- mix


def mix(spec):
    engines, skipped = open_engines({**spec, "engines": [spec["engine"]]})
    if spec["engine"] not in engines:
        return {"skip": skipped.get(spec["engine"], "not available")}
    engine = engines[spec["engine"]]
    clients, per_client, lv, hv = spec["clients"], spec["per_client"], spec["lv"], spec["hv"]

    def lv_round():
        latencies, errors = [], []
        lock = threading.Lock()

        def client(index):
            cursor = engine.cursor()
            mine = []
            for k in range(per_client):
                sql = lv[(index * per_client + k) % len(lv)]
                start = time.perf_counter()
                try:
                    engine.query(sql, cursor)
                except Exception as e:
                    errors.append(str(e)[:200])
                mine.append((time.perf_counter() - start) * 1000.0)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return latencies, errors

    idle, errors = lv_round()
    stop = threading.Event()
    hv_runs = [0]
    hv_ms = []

    def scanner(sql):
        cursor = engine.cursor()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                engine.query(sql, cursor)
            except Exception as e:
                errors.append(str(e)[:200])
                return
            hv_ms.append((time.perf_counter() - start) * 1000.0)
            hv_runs[0] += 1

    scanners = [threading.Thread(target=scanner, args=(q,)) for q in hv]
    for t in scanners:
        t.start()
    time.sleep(0.2)  # let the scans start before the interactive clients
    loaded, more = lv_round()
    errors.extend(more)
    stop.set()
    for t in scanners:
        t.join()
    return {"idle_ms": idle, "loaded_ms": loaded, "hv_runs": hv_runs[0], "hv_ms": hv_ms,
            "errors": errors[:5], "version": engine.version}


def main():
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        spec = json.load(f)
    handler = {"pg-start": pg_start, "pg-stop": pg_stop, "load": load, "run": run, "mix": mix}[mode]
    print(json.dumps(handler(spec)))


if __name__ == "__main__":
    main()
