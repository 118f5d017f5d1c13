"""Tests of the Python client's APDB calls against real `skyscan serve --apdb`
servers on loopback: a primary and a replica that follows it over TCP.

The expected answers are computed here from the rows the test stores (a
model independent of the server): latest versions, sources in the time
window, counts, re-associations.
"""

import os
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import pyarrow as pa

import skyscan

REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("SKYSCAN_BIN") or str(
    Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "skyscan"
)
SCHEMA = REPO.parent / "shared" / "testdata" / "apdb" / "apdb.yaml"
TOKEN = "python-apdb-token"
OBJECTS = 40
NOISE = 5
TIMES = [60000.0, 60005.0, 60010.0]


def start_server(args, log):
    proc = subprocess.Popen([BIN, "serve"] + args, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        log.seek(0)
        raise RuntimeError("server did not start: %r %s" % (line, log.read()))
    return proc, int(line.rsplit(":", 1)[1])


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def visit_rows(index, visit_time):
    """One visit: every variable object seen again (a new version, one
    source, one forced source), plus NOISE new single-source objects in
    the last visit. Plain Python ints and floats: the client casts them to
    the schema's types (int16 detector, float32 x/y, int32 counts)."""
    visit = 1000 + index
    ids = list(range(1, OBJECTS + 1))
    if index == len(TIMES) - 1:
        ids += list(range(10_000, 10_000 + NOISE))
    ra = [45.0 + 0.02 * (k % 20) for k in range(len(ids))]
    dec = [-30.0 + 0.02 * (k // 20) for k in range(len(ids))]
    n_sources = [index + 1 if i < 10_000 else 1 for i in ids]
    objects = {
        "diaObjectId": ids, "validityStartMjdTai": [visit_time] * len(ids), "ra": ra, "dec": dec,
        "nDiaSources": n_sources,
    }
    for band in "ugrizy":
        objects[band + "_psfFluxNdata"] = [0] * len(ids)
    source_ids = [visit * 100_000 + k for k in range(len(ids))]
    sources = {
        "diaSourceId": source_ids, "diaObjectId": ids, "visit": [visit] * len(ids),
        "detector": [k % 4 for k in range(len(ids))], "midpointMjdTai": [visit_time] * len(ids),
        "ra": ra, "dec": dec, "x": [1.5] * len(ids), "y": [2.5] * len(ids),
        "psfNdata": [0] * len(ids), "trailNdata": [0] * len(ids), "dipoleNdata": [0] * len(ids),
        "bboxSize": [9] * len(ids), "timeProcessedMjdTai": [visit_time + 0.01] * len(ids),
    }
    forced = {
        "diaForcedSourceId": [s + 1 for s in source_ids], "diaObjectId": ids, "ra": ra, "dec": dec,
        "visit": [visit] * len(ids), "detector": [k % 4 for k in range(len(ids))],
        "midpointMjdTai": [visit_time] * len(ids), "timeProcessedMjdTai": [visit_time] * len(ids),
    }
    return pa.table(objects), pa.table(sources), pa.table(forced)


class ApdbTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.db = root / "db"
        subprocess.run([BIN, "demo", "--rows", "1000", "--dir", str(cls.db)],
                       check=True, capture_output=True)
        cls.log = open(root / "server.log", "w+")
        common = ["--token", TOKEN, "--quiet", "--threads", "1", "--apdb-schema", str(SCHEMA)]
        cls.primary, cls.port = start_server(
            [str(cls.db), "--listen", "127.0.0.1:0", "--results-dir", str(root / "r1"),
             "--apdb", str(root / "apdb-primary")] + common, cls.log)
        cls.replica, cls.replica_port = start_server(
            [str(cls.db), "--listen", "127.0.0.1:0", "--results-dir", str(root / "r2"),
             "--apdb", str(root / "apdb-replica"),
             "--apdb-replica-of", "127.0.0.1:%d" % cls.port] + common, cls.log)
        cls.region = skyscan.Circle(45.2, -29.98, 1.0)
        with skyscan.connect("127.0.0.1", cls.port, token=TOKEN) as conn:
            cls.seqs = []
            for index, visit_time in enumerate(TIMES):
                objects, sources, forced = visit_rows(index, visit_time)
                if index == 1:
                    # pandas DataFrames are taken as well.
                    try:
                        objects, sources = objects.to_pandas(), sources.to_pandas()
                    except ImportError:
                        pass
                cls.seqs.append(conn.apdb.store(visit_time, objects, sources, forced))

    @classmethod
    def tearDownClass(cls):
        stop_server(cls.replica)
        stop_server(cls.primary)
        cls.log.close()
        cls.tmp.cleanup()

    def connect(self, port=None):
        return skyscan.connect("127.0.0.1", port or self.port, token=TOKEN)

    def wait_replica(self, seq):
        deadline = time.monotonic() + 30
        with self.connect(self.replica_port) as conn:
            while True:
                status = conn.apdb.status()
                if status.seq >= seq:
                    return status
                if time.monotonic() > deadline:
                    self.fail("the replica did not reach %d: %r" % (seq, status))
                time.sleep(0.05)

    def test_reads_match_what_was_stored(self):
        self.assertEqual(self.seqs, [1, 2, 3])
        with self.connect() as conn:
            objects = conn.apdb.get_dia_objects(self.region)
            self.assertIsInstance(objects, pa.Table)
            self.assertEqual(objects.num_rows, OBJECTS + NOISE)
            self.assertEqual(set(objects["validityStartMjdTai"].to_pylist()), {TIMES[-1]})
            self.assertEqual(objects["validityEndMjdTai"].null_count, OBJECTS + NOISE)
            self.assertEqual(objects.schema.field("nDiaSources").type, pa.int32())
            ids = objects["diaObjectId"].to_pylist()
            sources = conn.apdb.get_dia_sources(self.region, ids, TIMES[-1] + 1, months=12)
            self.assertEqual(sources.num_rows, OBJECTS * len(TIMES) + NOISE)
            self.assertEqual(sources.schema.field("detector").type, pa.int16())
            # The window is (visit_time - 30 months... , visit_time): a visit at
            # TIMES[1] sees only the first visit's sources.
            early = conn.apdb.get_dia_sources(self.region, ids, TIMES[1], months=12)
            self.assertEqual(set(early["midpointMjdTai"].to_pylist()), {TIMES[0]})
            forced = conn.apdb.get_dia_forced_sources(self.region, ids[:10], TIMES[-1] + 1)
            self.assertEqual(forced.num_rows, 10 * len(TIMES))
            # Polygons: one around everything, one elsewhere.
            around = skyscan.Polygon([(44.0, -31.0), (46.5, -31.0), (46.5, -29.0), (44.0, -29.0)])
            self.assertEqual(conn.apdb.get_dia_objects(around).num_rows, OBJECTS + NOISE)
            away = skyscan.Polygon([(100.0, 10.0), (101.0, 10.0), (101.0, 11.0)])
            self.assertEqual(conn.apdb.get_dia_objects(away).num_rows, 0)
            self.assertEqual(conn.apdb.count_unassociated_objects(), NOISE)
            self.assertTrue(conn.apdb.contains_visit_detector(1000, 0))
            self.assertFalse(conn.apdb.contains_visit_detector(1000, 7))
            # SQL on the same tables.
            count = conn.query("SELECT COUNT(*) AS n FROM apdb.DiaSource")
            self.assertEqual(count["n"].to_pylist(), [OBJECTS * len(TIMES) + NOISE])
            df = conn.apdb.get_dia_objects(self.region, output="pandas")
            self.assertEqual(len(df), OBJECTS + NOISE)
            status = conn.apdb.status()
            self.assertFalse(status.replica)
            self.assertGreaterEqual(status.seq, 3)

    def test_replica_follows_and_refuses_writes(self):
        with self.connect() as conn:
            seq = conn.apdb.status().seq
            expected = conn.apdb.get_dia_objects(self.region)
            ids = expected["diaObjectId"].to_pylist()
            expected_sources = conn.apdb.get_dia_sources(self.region, ids, TIMES[-1] + 1)
        status = self.wait_replica(seq)
        self.assertTrue(status.replica)
        self.assertEqual(status.lag_records, 0)
        self.assertTrue(status.upstream.endswith(":%d" % self.port))
        with self.connect(self.replica_port) as replica:
            self.assertTrue(replica.apdb.get_dia_objects(self.region).equals(expected))
            self.assertTrue(replica.apdb.get_dia_sources(self.region, ids, TIMES[-1] + 1)
                            .equals(expected_sources))
            objects, sources, forced = visit_rows(0, 61000.0)
            with self.assertRaises(skyscan.ServerError) as caught:
                replica.apdb.store(61000.0, objects, sources, forced,
                                   visit_detectors=[(5000, 0)])
            self.assertEqual(caught.exception.name, "read only")
            self.assertEqual(replica.apdb.status().seq, status.seq)

    def test_bad_stores_are_refused_whole(self):
        with self.connect() as conn:
            before = conn.apdb.status().seq
            objects, sources, forced = visit_rows(0, 62000.0)
            bad = objects.set_column(objects.schema.get_field_index("ra"), "ra",
                                     pa.array(["x"] * objects.num_rows))
            with self.assertRaises((skyscan.ServerError, pa.ArrowInvalid)):
                # The client's cast of "x" to double fails, or the server refuses it.
                conn.apdb.store(62000.0, bad, None, None, visit_detectors=[(7000, 0)])
            extra = sources.append_column("noSuchColumn", pa.array([1] * sources.num_rows))
            with self.assertRaises(skyscan.ServerError) as caught:
                conn.apdb.store(62000.0, None, extra, None)
            self.assertEqual(caught.exception.name, "invalid argument")
            self.assertIn("noSuchColumn", caught.exception.message)
            # Sources of objects that were never stored.
            orphans = sources.set_column(1, "diaObjectId", pa.array([777_777] * sources.num_rows))
            with self.assertRaises(skyscan.ServerError):
                conn.apdb.store(62000.0, None, orphans, None)
            with self.assertRaises(skyscan.ServerError) as caught:
                conn.apdb.get_dia_objects(skyscan.Circle(0.0, 95.0, 1.0))
            self.assertEqual(caught.exception.name, "invalid argument")
            self.assertEqual(conn.apdb.status().seq, before)
            self.assertFalse(conn.apdb.contains_visit_detector(7000, 0))

    def test_reassign(self):
        with self.connect() as conn:
            objects = conn.apdb.get_dia_objects(self.region)
            ids = objects["diaObjectId"].to_pylist()
            sources = conn.apdb.get_dia_sources(self.region, ids, TIMES[-1] + 1)
            target = sources["diaSourceId"][0].as_py()
            seq = conn.apdb.reassign_dia_sources([(target, 424242)], TIMES[-1] + 0.5)
            self.assertGreater(seq, 3)
            after = conn.apdb.get_dia_sources(self.region, ids, TIMES[-1] + 1)
            self.assertNotIn(target, after["diaSourceId"].to_pylist())
            self.assertEqual(after.num_rows, sources.num_rows - 1)
            with self.assertRaises(skyscan.ServerError):
                conn.apdb.reassign_dia_sources([(target, 1)], TIMES[-1] + 0.6)
        self.wait_replica(seq)


if __name__ == "__main__":
    unittest.main()
