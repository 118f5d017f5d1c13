"""Tests of the Python client against a real `skyscan serve` on loopback.

The server binary is $SKYSCAN_BIN (default: the repository's
target/debug/skyscan). Results are checked against the same query run by
`skyscan query --db` in-process (the embedded engine).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import pyarrow as pa

import skyscan

REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("SKYSCAN_BIN") or str(
    Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "skyscan"
)
TOKEN = "python-test-token"
ROWS = 20000


def embedded(db, sql):
    """Rows of `sql` run by the embedded engine, as dicts."""
    out = subprocess.run(
        [BIN, "query", "--db", str(db), "--format", "json", "--progress", "never", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.db = Path(cls.tmp.name) / "db"
        subprocess.run(
            [BIN, "demo", "--rows", str(ROWS), "--dir", str(cls.db)],
            check=True, capture_output=True,
        )
        # The log goes to a file: a pipe nobody reads could fill and stall the server.
        cls.log = open(Path(cls.tmp.name) / "server.log", "w+")
        cls.proc = subprocess.Popen(
            [BIN, "serve", str(cls.db), "--listen", "127.0.0.1:0", "--token", TOKEN,
             "--results-dir", str(Path(cls.tmp.name) / "results"), "--quiet", "--threads", "1"],
            stdout=subprocess.PIPE, stderr=cls.log, text=True,
        )
        line = cls.proc.stdout.readline()
        if "listening on" not in line:
            cls.proc.kill()
            cls.log.seek(0)
            raise RuntimeError("server did not start: %r %s" % (line, cls.log.read()))
        cls.port = int(line.rsplit(":", 1)[1])

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.proc.stdout.close()
        cls.log.close()
        cls.tmp.cleanup()

    def connect(self, token=TOKEN):
        return skyscan.connect("127.0.0.1", self.port, token=token)

    def test_query_equals_the_embedded_engine(self):
        sql = "SELECT objectId, ra, decl, refBand FROM Object WHERE r_psfFlux > 100 ORDER BY objectId"
        with self.connect() as conn:
            self.assertEqual(conn.user, "default")
            table = conn.query(sql)
        self.assertIsInstance(table, pa.Table)
        self.assertEqual(table.column_names, ["objectId", "ra", "decl", "refBand"])
        self.assertEqual(table.schema.field("objectId").type, pa.int64())
        self.assertEqual(table.schema.field("refBand").type, pa.string())
        expected = embedded(self.db, sql)
        self.assertGreater(len(expected), 0)
        self.assertEqual(table.to_pylist(), expected)

    def test_aggregate_and_streaming(self):
        with self.connect() as conn:
            count = conn.query("SELECT COUNT(*) AS n FROM Object")
            self.assertEqual(count.column("n").to_pylist(), [ROWS])
            stream = conn.stream("SELECT * FROM Object")
            rows = sum(batch.num_rows for batch in stream)
            self.assertEqual(rows, ROWS)
            self.assertEqual(stream.stats.rows, ROWS)

    def test_errors(self):
        with self.connect() as conn:
            with self.assertRaises(skyscan.ServerError) as caught:
                conn.query("SELECT objectId\nFROM Object WHERE ra > AND decl < 3")
            self.assertEqual(caught.exception.name, "syntax")
            self.assertEqual(caught.exception.position[0], 2)
            with self.assertRaises(skyscan.ServerError) as caught:
                conn.query("SELECT nope FROM Object")
            self.assertEqual(caught.exception.code, 102)
            # The connection still works.
            self.assertEqual(conn.query("SELECT 1 AS one").column("one").to_pylist(), [1])
        with self.assertRaises(skyscan.ServerError) as caught:
            self.connect(token="wrong-token")
        self.assertEqual(caught.exception.name, "auth")

    def test_progress_callback(self):
        seen = []
        with self.connect() as conn:
            conn.query("SELECT COUNT(*) FROM Object WHERE g_psfFlux > 0", progress=seen.append)
        self.assertTrue(seen)
        self.assertTrue(all(p.chunks_total >= p.chunks_done for p in seen))
        self.assertEqual(seen[-1].chunks_done, seen[-1].chunks_total)

    def test_cancel(self):
        with self.connect() as conn:
            stream = conn.stream("SELECT * FROM Object")
            batches = iter(stream)
            next(batches)
            stream.cancel()
            try:
                for _ in batches:
                    pass
            except skyscan.ServerError as err:
                self.assertEqual(err.name, "cancelled")
            self.assertGreater(conn.ping(), 0)

    def test_asynchronous_queries(self):
        sql = "SELECT objectId, decl FROM Object WHERE decl < -30 ORDER BY objectId"
        with self.connect() as conn:
            qid = conn.submit(sql)
            info = conn.wait(qid, timeout=60)
            self.assertEqual(info.state, "done")
            self.assertEqual(info.sql, sql)
            ids = [job.id for job in conn.list()]
            self.assertIn(qid, ids)
        with self.connect() as other:
            table = other.fetch(qid)
            self.assertEqual(table.to_pylist(), embedded(self.db, sql))
            self.assertEqual(info.rows, table.num_rows)
            # Qserv's syntax through the query path.
            answer = other.query("SUBMIT SELECT COUNT(*) FROM Object")
            second = answer.column("queryId").to_pylist()[0]
            self.assertEqual(other.wait(second, timeout=60).state, "done")
            self.assertEqual(other.fetch(second).column(0).to_pylist(), [ROWS])
            other.delete(qid)
            with self.assertRaises(skyscan.ServerError) as caught:
                other.status(qid)
            self.assertEqual(caught.exception.name, "no such job")
            failing = other.submit("SELECT nope FROM Object")
            info = other.wait(failing, timeout=60)
            self.assertEqual(info.state, "failed")
            self.assertIn("nope", info.error_message)

    def test_conversions(self):
        with self.connect() as conn:
            table = conn.query("SELECT objectId, ra, refBand FROM Object ORDER BY objectId LIMIT 5")
        try:
            import pandas  # noqa: F401
        except ImportError:
            pandas = None
        if pandas is not None:
            frame = table.to_pandas()
            self.assertEqual(list(frame.columns), ["objectId", "ra", "refBand"])
            self.assertEqual(len(frame), 5)
        try:
            import astropy  # noqa: F401
        except ImportError:
            astropy = None
        if astropy is not None:
            t = skyscan.to_astropy(table)
            self.assertEqual(t.colnames, ["objectId", "ra", "refBand"])
            self.assertEqual(len(t), 5)
        if pandas is None and astropy is None:
            self.skipTest("neither pandas nor astropy is installed")


if __name__ == "__main__":
    unittest.main()
