#!/usr/bin/env python3
"""lsst-dax-apdb on SQLite, the same visits as `skyscan-bench apdb`.

Usage: apdb_dax.py INPUT_DIR SCHEMA_YAML SQLITE_FILE
INPUT_DIR holds visits.tsv (visit, mjd_tai, ra, dec, radius) and, per visit,
visit<N>_{objects,sources,forced}.parquet written by the benchmark.
For each visit it runs what the pipeline runs: getDiaObjects(region),
getDiaSources(region, ids, t), getDiaForcedSources(region, ids, t),
store(t, objects, sources, forced), timing each, and prints one
tab-separated line: visit, the four seconds, then the rows read.
"""
import os
import sys
import time


def main():
    indir, schema, sqlite = sys.argv[1], sys.argv[2], sys.argv[3]
    import astropy.time
    import pyarrow.parquet as pq
    from lsst.dax.apdb import Apdb
    from lsst.dax.apdb.sql import ApdbSql
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d
    import lsst.dax.apdb.version as v

    if os.path.exists(sqlite):
        os.remove(sqlite)
    config = ApdbSql.init_database(
        db_url=f"sqlite:///{sqlite}",
        schema_file=schema,
        read_sources_months=12,
        read_forced_sources_months=12,
    )
    apdb = Apdb.from_config(config)
    print(f"version\t{getattr(v, '__version__', 'unknown')}", flush=True)

    def frame(path):
        df = pq.read_table(path).to_pandas()
        # All-null columns (validityEnd, ssObjectId, ...) are left to the
        # database's default NULL: pandas would make them float NaN.
        return df[[c for c in df.columns if df[c].notna().any()]]

    with open(os.path.join(indir, "visits.tsv")) as f:
        for line in f:
            visit, mjd, ra, dec, radius = line.split("\t")
            visit = int(visit)
            t = astropy.time.Time(float(mjd), format="mjd", scale="tai")
            region = Circle(
                UnitVector3d(LonLat.fromDegrees(float(ra), float(dec))),
                Angle.fromDegrees(float(radius)),
            )
            objects = frame(os.path.join(indir, f"visit{visit}_objects.parquet"))
            sources = frame(os.path.join(indir, f"visit{visit}_sources.parquet"))
            forced = frame(os.path.join(indir, f"visit{visit}_forced.parquet"))
            t0 = time.perf_counter()
            found = apdb.getDiaObjects(region)
            t1 = time.perf_counter()
            ids = list(found["diaObjectId"]) if len(found) else []
            src = apdb.getDiaSources(region, ids, t)
            t2 = time.perf_counter()
            fsrc = apdb.getDiaForcedSources(region, ids, t)
            t3 = time.perf_counter()
            apdb.store(t, objects, sources, forced)
            t4 = time.perf_counter()
            n = lambda df: 0 if df is None else len(df)
            print(
                f"{visit}\t{t1 - t0:.4f}\t{t2 - t1:.4f}\t{t3 - t2:.4f}\t{t4 - t3:.4f}"
                f"\t{len(found)}\t{n(src)}\t{n(fsrc)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
