"""Python client of the skyscan server (wire protocol version 1, SPEC.md part 4).

Pure Python over the standard ``socket`` module; results arrive as Arrow IPC
messages and become ``pyarrow`` tables without per-value parsing::

    import skyscan
    conn = skyscan.connect("127.0.0.1", 7077, token="...")
    table = conn.query("SELECT objectId, ra, decl FROM Object LIMIT 10")
    df = table.to_pandas()                  # pandas
    t = skyscan.to_astropy(table)           # astropy (or query(..., output="astropy"))

Asynchronous queries (Qserv's ``SUBMIT``)::

    qid = conn.submit("SELECT COUNT(*) FROM Source")
    conn.wait(qid)                 # or poll conn.status(qid)
    table = conn.fetch(qid)        # also from another connection
    conn.delete(qid)

The live alert-production catalog (a server started with ``--apdb DIR``)::

    region = skyscan.Circle(45.0, -30.0, 1.75)       # or skyscan.Polygon([(ra, dec), ...])
    objects = conn.apdb.get_dia_objects(region)      # pyarrow.Table
    ids = objects["diaObjectId"].to_pylist()
    sources = conn.apdb.get_dia_sources(region, ids, visit_time, months=12)
    forced = conn.apdb.get_dia_forced_sources(region, ids, visit_time, months=12)
    seq = conn.apdb.store(visit_time, objects, sources, forced)   # pyarrow Tables or pandas
    conn.apdb.status()                               # role, sequence number, replica lag
"""

import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

import pyarrow as pa
import pyarrow.ipc

__all__ = [
    "connect",
    "Connection",
    "Error",
    "ServerError",
    "ProtocolError",
    "JobInfo",
    "Progress",
    "to_astropy",
    "PROTOCOL_VERSION",
    "Apdb",
    "ApdbStatus",
    "Circle",
    "Polygon",
]

PROTOCOL_VERSION = 1
HELLO_MAGIC = b"SKYSCANP"
HEADER = struct.Struct("<IBBHI")  # payload length, type, flags, reserved, request id
MAX_FRAME_PAYLOAD = 256 << 20
# One recv per frame where the platform can wait for all of it.
_WAITALL = getattr(socket, "MSG_WAITALL", 0)

# Message type ids (SPEC.md part 4, section 4).
HELLO, QUERY, CANCEL, SUBMIT, JOB_STATUS, JOB_LIST, FETCH, JOB_CANCEL, JOB_DELETE, PING = range(1, 11)
WELCOME, ERROR, SCHEMA, BATCH, PROGRESS, END, SUBMITTED, JOB, JOBS, OK, PONG = range(0x41, 0x4C)
(APDB_SCHEMA, APDB_GET_OBJECTS, APDB_GET_SOURCES, APDB_STORE_PART, APDB_STORE, APDB_REASSIGN,
 APDB_COUNT_UNASSOCIATED, APDB_CONTAINS_VISIT_DETECTOR, APDB_SHIP_LOG, APDB_STATUS) = range(0x10, 0x1A)
APDB_STORED, APDB_VALUE, APDB_LOG_BYTES, APDB_LOG_END, APDB_STATUS_INFO = range(0x4C, 0x51)

#: APDB table ids (SPEC.md part 4, section 5.1).
APDB_TABLES = {"DiaObject": 1, "DiaSource": 2, "DiaForcedSource": 3}

#: Error codes (SPEC.md part 4, section 6) by value.
ERROR_NAMES = {
    1: "malformed", 2: "version", 3: "auth", 4: "frame too large", 5: "unknown message",
    6: "too many connections", 7: "too many queries", 8: "idle timeout", 9: "shutting down",
    10: "duplicate request", 11: "no such job", 12: "job not ready", 13: "busy",
    14: "handshake timeout", 15: "slow reader", 16: "read only",
    100: "syntax", 101: "unsupported", 102: "name", 103: "type", 104: "invalid argument",
    105: "limit", 106: "cancelled", 107: "corrupt", 108: "io", 109: "internal", 110: "timeout",
}

JOB_STATES = {1: "queued", 2: "running", 3: "done", 4: "failed", 5: "cancelled"}


class Error(Exception):
    """Any failure of the client."""


class ProtocolError(Error):
    """The server sent bytes that do not follow the protocol."""


class ServerError(Error):
    """The server answered with an ERROR message."""

    def __init__(self, code: int, message: str, line: int = 0, column: int = 0):
        self.code = code
        self.name = ERROR_NAMES.get(code, "error %d" % code)
        self.message = message
        self.position = (line, column) if line else None
        text = "%s [%s]" % (message, self.name)
        if self.position:
            text += " at line %d, column %d" % self.position
        super().__init__(text)


@dataclass
class Progress:
    """Progress of a running query."""

    chunks_done: int
    chunks_total: int
    rows: int


@dataclass
class JobInfo:
    """One asynchronous query as the server reports it."""

    id: int
    state: str
    error_code: int
    submitted_ms: int
    started_ms: int
    finished_ms: int
    expires_ms: int
    chunks_done: int
    chunks_total: int
    rows: int
    result_bytes: int
    error_message: str
    sql: str


@dataclass
class Stats:
    """What the server reports at the end of a result."""

    rows: int
    chunks: int
    chunks_total: int
    bytes_read: int
    elapsed_us: int


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack("<I", len(data)) + data


class _Reader:
    """Bounds-checked little-endian reads over one payload."""

    def __init__(self, payload):
        self.view = memoryview(payload)
        self.at = 0

    def take(self, n):
        if self.at + n > len(self.view):
            raise ProtocolError("truncated message")
        out = self.view[self.at:self.at + n]
        self.at += n
        return out

    def unpack(self, fmt):
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def string(self):
        (n,) = self.unpack("<I")
        return bytes(self.take(n)).decode("utf-8")

    def job(self):
        jid, state, _r1, _r2, _r3, code, _r4 = self.unpack("<QBBBBHH")
        values = self.unpack("<9Q")
        return JobInfo(
            id=jid, state=JOB_STATES.get(state, "unknown"), error_code=code,
            submitted_ms=values[0], started_ms=values[1], finished_ms=values[2],
            expires_ms=values[3], chunks_done=values[4], chunks_total=values[5],
            rows=values[6], result_bytes=values[7],
            error_message=self.string(), sql=self.string(),
        )


def _raise_error(payload):
    r = _Reader(payload)
    code, _reserved, line, column = r.unpack("<HHII")
    raise ServerError(code, r.string(), line, column)


def connect(host: str = "127.0.0.1", port: int = 7077, token: Optional[str] = None,
            timeout: float = 10.0, read_timeout: Optional[float] = None) -> "Connection":
    """Connects to a skyscan server and performs the handshake."""
    return Connection(host, port, token=token, timeout=timeout, read_timeout=read_timeout)


class Connection:
    """A connection to a skyscan server. Runs one request at a time."""

    def __init__(self, host, port, token=None, timeout=10.0, read_timeout=None):
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._next_id = 1
        self._apdb = None
        #: Bytes of frames received so far (headers and payloads).
        self.bytes_received = 0
        hello = (HELLO_MAGIC + struct.pack("<HH", PROTOCOL_VERSION, PROTOCOL_VERSION)
                 + _string(token or "") + _string("skyscan-python/0.1.0"))
        try:
            self._send(HELLO, 0, hello)
            mtype, _rid, payload = self._read_frame()
        except Exception:
            self.close()
            raise
        if mtype == ERROR:
            self.close()
            _raise_error(payload)
        if mtype != WELCOME:
            self.close()
            raise ProtocolError("expected WELCOME, got type 0x%02x" % mtype)
        r = _Reader(payload)
        self.version, _reserved, self.max_frame_bytes, self.max_queries = r.unpack("<HHII")
        self.server_name = r.string()
        self.user = r.string()
        if self.version != PROTOCOL_VERSION:
            raise ProtocolError("server chose protocol version %d" % self.version)
        self._sock.settimeout(read_timeout)

    # -- framing ---------------------------------------------------------

    def _send(self, mtype: int, request_id: int, payload: bytes = b"") -> None:
        self._sock.sendall(HEADER.pack(len(payload), mtype, 0, 0, request_id) + payload)

    def _recv_exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._sock.recv_into(view[got:], n - got, _WAITALL)
            if k == 0:
                raise Error("the server closed the connection")
            got += k
        return buf

    def _read_frame(self):
        length, mtype, flags, reserved, request_id = HEADER.unpack(self._recv_exact(HEADER.size))
        if length > MAX_FRAME_PAYLOAD:
            raise ProtocolError("frame of %d bytes" % length)
        if flags or reserved:
            raise ProtocolError("reserved header bits set")
        payload = self._recv_exact(length) if length else bytearray()
        self.bytes_received += HEADER.size + length
        if request_id == 0 and mtype == ERROR:
            _raise_error(payload)
        return mtype, request_id, payload

    def _request_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < 0xFFFFFFFF else 1
        return rid

    def _call(self, mtype: int, payload: bytes = b""):
        rid = self._request_id()
        self._send(mtype, rid, payload)
        while True:
            got, got_rid, body = self._read_frame()
            if got_rid != rid:
                continue  # a late frame of an earlier, cancelled request
            if got == ERROR:
                _raise_error(body)
            return got, body

    # -- queries ---------------------------------------------------------

    def stream(self, sql: str, progress: Optional[Callable[[Progress], None]] = None,
               max_rows: int = 0) -> "ResultStream":
        """Runs ``sql``; returns a stream of ``pyarrow.RecordBatch`` (iterate it)."""
        rid = self._request_id()
        payload = struct.pack("<IQ", 1 if progress else 0, max_rows) + _string(sql)
        self._send(QUERY, rid, payload)
        return ResultStream(self, rid, progress)

    def query(self, sql: str, progress: Optional[Callable[[Progress], None]] = None,
              max_rows: int = 0, output: str = "arrow"):
        """Runs ``sql`` and returns the whole result: a ``pyarrow.Table``
        (``output="arrow"``, then ``.to_pandas()`` as usual), a pandas
        DataFrame (``"pandas"``) or an astropy Table (``"astropy"``)."""
        table = self.stream(sql, progress=progress, max_rows=max_rows).read_all()
        return _convert(table, output)

    def submit(self, sql: str) -> int:
        """Submits ``sql`` as an asynchronous query; returns its id at once."""
        mtype, body = self._call(SUBMIT, _string(sql))
        if mtype != SUBMITTED:
            raise ProtocolError("expected SUBMITTED")
        return struct.unpack("<Q", body)[0]

    def status(self, query_id: int) -> JobInfo:
        """The status of asynchronous query ``query_id``."""
        mtype, body = self._call(JOB_STATUS, struct.pack("<Q", query_id))
        if mtype != JOB:
            raise ProtocolError("expected JOB")
        return _Reader(body).job()

    def list(self) -> List[JobInfo]:
        """This user's asynchronous queries."""
        mtype, body = self._call(JOB_LIST)
        if mtype != JOBS:
            raise ProtocolError("expected JOBS")
        r = _Reader(body)
        (count,) = r.unpack("<I")
        return [r.job() for _ in range(count)]

    def wait(self, query_id: int, timeout: float = 3600.0,
             progress: Optional[Callable[[JobInfo], None]] = None) -> JobInfo:
        """Polls ``query_id`` until it is done, failed or cancelled."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            info = self.status(query_id)
            if progress:
                progress(info)
            if info.state in ("done", "failed", "cancelled") or time.monotonic() >= deadline:
                return info
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def fetch_stream(self, query_id: int) -> "ResultStream":
        """Streams the result of finished asynchronous query ``query_id``."""
        rid = self._request_id()
        self._send(FETCH, rid, struct.pack("<Q", query_id))
        return ResultStream(self, rid, None)

    def fetch(self, query_id: int, output: str = "arrow"):
        """The result of finished asynchronous query ``query_id`` (``output``
        as for :meth:`query`)."""
        return _convert(self.fetch_stream(query_id).read_all(), output)

    def cancel(self, query_id: int) -> None:
        """Cancels asynchronous query ``query_id`` (its record stays)."""
        self._call(JOB_CANCEL, struct.pack("<Q", query_id))

    def delete(self, query_id: int) -> None:
        """Deletes asynchronous query ``query_id`` and its result."""
        self._call(JOB_DELETE, struct.pack("<Q", query_id))

    @property
    def apdb(self) -> "Apdb":
        """The live alert-production catalog of the server (``--apdb``)."""
        if self._apdb is None:
            self._apdb = Apdb(self)
        return self._apdb

    def _reply(self, rid: int):
        """The next frame of request ``rid`` (an ERROR raises)."""
        while True:
            got, got_rid, body = self._read_frame()
            if got_rid != rid:
                continue
            if got == ERROR:
                _raise_error(body)
            return got, body

    def ping(self) -> float:
        """A round trip; returns its time in seconds."""
        started = time.perf_counter()
        self._call(PING)
        return time.perf_counter() - started

    def close(self) -> None:
        """Closes the connection."""
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ResultStream:
    """A result arriving batch by batch."""

    def __init__(self, conn: Connection, request_id: int, progress):
        self._conn = conn
        self._rid = request_id
        self._progress = progress
        self.stats: Optional[Stats] = None
        self._done = False
        self.schema = self._read_schema()

    def _next_frame(self):
        while True:
            mtype, rid, payload = self._conn._read_frame()
            if rid != self._rid:
                continue
            if mtype == PROGRESS:
                if self._progress:
                    done, total, rows = struct.unpack("<3Q", payload)
                    self._progress(Progress(done, total, rows))
                continue
            if mtype == ERROR:
                self._done = True
                _raise_error(payload)
            return mtype, payload

    def _read_schema(self) -> pa.Schema:
        mtype, payload = self._next_frame()
        if mtype != SCHEMA:
            raise ProtocolError("expected SCHEMA, got type 0x%02x" % mtype)
        return pa.ipc.read_schema(pa.py_buffer(payload))

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while not self._done:
            mtype, payload = self._next_frame()
            if mtype == BATCH:
                # Zero-copy: the arrays point into the received buffer.
                message = pa.ipc.read_message(pa.py_buffer(payload))
                yield pa.ipc.read_record_batch(message, self.schema)
            elif mtype == END:
                self.stats = Stats(*struct.unpack("<5Q", payload))
                self._done = True
            else:
                self._done = True
                raise ProtocolError("unexpected message type 0x%02x in a result" % mtype)

    def read_all(self) -> pa.Table:
        """The rest of the result as one table."""
        return pa.Table.from_batches(list(self), schema=self.schema)

    def cancel(self) -> None:
        """Asks the server to stop; iteration then ends with a ``cancelled`` error."""
        self._conn._send(CANCEL, self._rid)


def _convert(table: pa.Table, output: str):
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    if output == "astropy":
        return to_astropy(table)
    raise ValueError("output must be 'arrow', 'pandas' or 'astropy', not %r" % (output,))


def to_astropy(table: pa.Table):
    """A pyarrow table as an ``astropy.table.Table`` (needs astropy)."""
    from astropy.table import Table  # imported here: astropy is optional

    columns = {}
    for name, column in zip(table.column_names, table.columns):
        columns[name] = column.to_numpy(zero_copy_only=False)
    return Table(columns)


# -- the APDB ---------------------------------------------------------------


@dataclass
class Circle:
    """A circle on the sky: centre (ra, dec) and radius, degrees."""

    ra: float
    dec: float
    radius: float


@dataclass
class Polygon:
    """A convex polygon on the sky: (ra, dec) vertices in degrees (3 to 20)."""

    vertices: List[tuple]


@dataclass
class ApdbStatus:
    """The server's APDB: role, position and replication lag."""

    replica: bool
    upstream_connected: bool
    seq: int
    primary_seq: int
    lag_records: int
    last_visit_time: float
    last_contact_ms: Optional[int]
    upstream: str
    last_error: str


def _region(region) -> bytes:
    if isinstance(region, tuple) and len(region) == 3 and not isinstance(region[0], (tuple, list)):
        region = Circle(*region)
    elif isinstance(region, (list, tuple)):
        region = Polygon(list(region))
    if isinstance(region, Circle):
        return struct.pack("<B3x3d", 1, float(region.ra), float(region.dec), float(region.radius))
    if isinstance(region, Polygon):
        out = [struct.pack("<B3xI", 2, len(region.vertices))]
        for ra, dec in region.vertices:
            out.append(struct.pack("<2d", float(ra), float(dec)))
        return b"".join(out)
    raise TypeError("a region is a skyscan.Circle or skyscan.Polygon, not %r" % (region,))


def _ids(ids) -> bytes:
    ids = [int(i) for i in ids]
    return struct.pack("<I%dq" % len(ids), len(ids), *ids)


def _as_table(rows) -> Optional[pa.Table]:
    """A pyarrow Table from a Table, RecordBatch, pandas DataFrame or None."""
    if rows is None:
        return None
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas
        return pa.Table.from_pandas(rows, preserve_index=False)
    raise TypeError("rows must be a pyarrow Table or RecordBatch or a pandas DataFrame")


class Apdb:
    """The per-visit operations of the alert pipeline on a server started
    with ``--apdb`` (``conn.apdb``). Results are ``pyarrow.Table``s (or
    pandas / astropy with ``output=``); writes return the log sequence
    number once the server made them durable."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._schemas = {}

    def _result(self, mtype: int, payload: bytes, output: str = "arrow"):
        rid = self._conn._request_id()
        self._conn._send(mtype, rid, payload)
        return _convert(ResultStream(self._conn, rid, None).read_all(), output)

    def schema(self, table: str) -> pa.Schema:
        """The Arrow schema of ``DiaObject``, ``DiaSource`` or ``DiaForcedSource``."""
        if table not in APDB_TABLES:
            raise ValueError("table must be one of %s" % ", ".join(APDB_TABLES))
        if table not in self._schemas:
            result = self._result(APDB_SCHEMA, struct.pack("<B3x", APDB_TABLES[table]))
            self._schemas[table] = result.schema
        return self._schemas[table]

    def get_dia_objects(self, region, output: str = "arrow"):
        """The latest versions of the DiaObjects in ``region``."""
        return self._result(APDB_GET_OBJECTS, _region(region), output)

    def _sources(self, table, region, object_ids, visit_time, months, output):
        payload = (struct.pack("<B3xId", APDB_TABLES[table], int(months), float(visit_time))
                   + _region(region) + _ids(object_ids))
        return self._result(APDB_GET_SOURCES, payload, output)

    def get_dia_sources(self, region, object_ids, visit_time: float, months: int = 12,
                        output: str = "arrow"):
        """DiaSources of ``object_ids`` in ``region`` with midpointMjdTai in
        (visit_time - 30 * months, visit_time)."""
        return self._sources("DiaSource", region, object_ids, visit_time, months, output)

    def get_dia_forced_sources(self, region, object_ids, visit_time: float, months: int = 12,
                               output: str = "arrow"):
        """DiaForcedSources, as :meth:`get_dia_sources`."""
        return self._sources("DiaForcedSource", region, object_ids, visit_time, months, output)

    def _encode_table(self, name: str, rows) -> bytes:
        table = _as_table(rows)
        if table is None or table.num_rows == 0:
            return b""
        # Cast columns to the server's types where they differ (pandas and
        # Python ints are int64, the schema has int16 detectors, float32
        # positions, ...); a value that does not fit raises here.
        schema = self.schema(name)
        columns, fields = [], []
        for field, column in zip(table.schema, table.columns):
            if field.name in schema.names:
                target = schema.field(field.name).type
                if column.type != target:
                    column = column.cast(target, safe=True)
                    field = pa.field(field.name, target)
            columns.append(column)
            fields.append(field)
        table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def store(self, visit_time: float, objects=None, sources=None, forced=None,
              visit_detectors=None, close_object_ids=()) -> int:
        """Stores one visit (or one CCD) atomically; returns its log
        sequence number once durable. ``visit_detectors`` defaults to the
        (visit, detector) pairs of ``sources`` and ``forced``."""
        encoded = [self._encode_table("DiaObject", objects),
                   self._encode_table("DiaSource", sources),
                   self._encode_table("DiaForcedSource", forced)]
        if visit_detectors is None:
            pairs = set()
            for rows in (sources, forced):
                table = _as_table(rows)
                if table is not None and table.num_rows:
                    pairs.update(zip(table["visit"].to_pylist(), table["detector"].to_pylist()))
            visit_detectors = sorted(pairs)
        if not visit_detectors:
            raise ValueError("store needs the (visit, detector) pairs it completes")
        body = [struct.pack("<dI", float(visit_time), len(visit_detectors))]
        for visit, detector in visit_detectors:
            body.append(struct.pack("<qh6x", int(visit), int(detector)))
        body.append(_ids(close_object_ids))
        for data in encoded:
            body.append(struct.pack("<I", len(data)))
            body.append(data)
        body = b"".join(body)
        # A body above the server's frame limit travels in pieces.
        piece = max(1, self._conn.max_frame_bytes)
        rid = self._conn._request_id()
        view = memoryview(body)
        while len(view) > piece:
            self._conn._send(APDB_STORE_PART, rid, bytes(view[:piece]))
            view = view[piece:]
        self._conn._send(APDB_STORE, rid, bytes(view))
        mtype, reply = self._conn._reply(rid)
        if mtype != APDB_STORED:
            raise ProtocolError("expected APDB_STORED, got type 0x%02x" % mtype)
        return struct.unpack("<Q", reply)[0]

    def reassign_dia_sources(self, pairs, time: float) -> int:
        """Re-associates DiaSources with solar-system objects:
        ``pairs`` of (diaSourceId, ssObjectId). Returns the sequence number."""
        pairs = [(int(a), int(b)) for a, b in pairs]
        payload = struct.pack("<dI", float(time), len(pairs)) + b"".join(
            struct.pack("<2q", a, b) for a, b in pairs)
        mtype, reply = self._conn._call(APDB_REASSIGN, payload)
        if mtype != APDB_STORED:
            raise ProtocolError("expected APDB_STORED")
        return struct.unpack("<Q", reply)[0]

    def count_unassociated_objects(self) -> int:
        """Latest DiaObject versions with a single DiaSource."""
        mtype, reply = self._conn._call(APDB_COUNT_UNASSOCIATED)
        if mtype != APDB_VALUE:
            raise ProtocolError("expected APDB_VALUE")
        return struct.unpack("<Q", reply)[0]

    def contains_visit_detector(self, visit: int, detector: int) -> bool:
        """Whether (visit, detector) has been stored."""
        mtype, reply = self._conn._call(APDB_CONTAINS_VISIT_DETECTOR,
                                        struct.pack("<qh6x", int(visit), int(detector)))
        if mtype != APDB_VALUE:
            raise ProtocolError("expected APDB_VALUE")
        return struct.unpack("<Q", reply)[0] != 0

    def status(self) -> ApdbStatus:
        """Role, last visible sequence number and, on a replica, its lag."""
        mtype, reply = self._conn._call(APDB_STATUS)
        if mtype != APDB_STATUS_INFO:
            raise ProtocolError("expected APDB_STATUS_INFO")
        r = _Reader(reply)
        replica, connected, _r1, _r2, _r3 = r.unpack("<BBBBI")
        seq, primary_seq, lag, last_visit, contact = r.unpack("<QQQdQ")
        return ApdbStatus(
            replica=bool(replica), upstream_connected=bool(connected), seq=seq,
            primary_seq=primary_seq, lag_records=lag, last_visit_time=last_visit,
            last_contact_ms=None if contact == 0xFFFFFFFFFFFFFFFF else contact,
            upstream=r.string(), last_error=r.string(),
        )
