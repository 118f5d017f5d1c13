#!/usr/bin/env python3
"""Peer measurement for the format benchmark: the same columns, in the same row
order, written as Parquet by pyarrow with its defaults (snappy) and with zstd.

Input: a directory written by `skyscan-bench format` holding manifest.json and
one raw little-endian file per column (plus a validity file of one byte per row
when the column has NULLs; utf8 columns as u32 offsets + bytes).
Output (stdout): tab-separated lines, easy to parse without a JSON library:
  version  pyarrow  <version>
  file     <codec>  <bytes>  <write seconds>  <read seconds>
  column   <codec>  <name>   <compressed bytes>
"""
import json
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUMPY = {
    "bool": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32,
    "i64": np.int64, "f32": np.float32, "f64": np.float64,
}


def load(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    rows = manifest["rows"]
    arrays, names = [], []
    for col in manifest["columns"]:
        path = os.path.join(directory, col["file"])
        mask = None
        if col.get("validity"):
            valid = np.fromfile(os.path.join(directory, col["validity"]), dtype=np.uint8)
            mask = valid == 0
        if col["type"] == "utf8":
            offsets = np.fromfile(path + ".offsets", dtype=np.int32)
            data = np.fromfile(path, dtype=np.uint8)
            arr = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes()))
            if mask is not None:
                arr = pa.array(arr.to_pylist(), mask=mask, type=pa.string())
        else:
            values = np.fromfile(path, dtype=NUMPY[col["type"]])
            assert len(values) == rows, (col["name"], len(values), rows)
            arr = pa.array(values, mask=mask)
        arrays.append(arr)
        names.append(col["name"])
    return pa.Table.from_arrays(arrays, names=names)


def measure(table, directory, compression):
    path = os.path.join(directory, f"peer.{compression}.parquet")
    start = time.perf_counter()
    pq.write_table(table, path, compression=compression)
    write_s = time.perf_counter() - start
    meta = pq.ParquetFile(path).metadata
    per_column = {name: 0 for name in table.column_names}
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for c in range(group.num_columns):
            chunk = group.column(c)
            per_column[chunk.path_in_schema] += chunk.total_compressed_size
    start = time.perf_counter()
    pq.read_table(path)
    read_s = time.perf_counter() - start
    size = os.path.getsize(path)
    os.remove(path)
    return {"file_bytes": size, "columns": per_column, "write_s": write_s, "read_s": read_s}


def main():
    directory = sys.argv[1]
    table = load(directory)
    print(f"version\tpyarrow\t{pa.__version__}")
    for codec in ("snappy", "zstd"):
        result = measure(table, directory, codec)
        print(f"file\t{codec}\t{result['file_bytes']}\t{result['write_s']:.4f}\t{result['read_s']:.4f}")
        for name, size in result["columns"].items():
            print(f"column\t{codec}\t{name}\t{size}")


if __name__ == "__main__":
    main()
