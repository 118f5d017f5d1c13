#!/usr/bin/env python3
"""Region -> chunk lists from lsst-sphgeom, for tests/sphgeom_regions.rs.

Reads one region per line on stdin:

    <id> box <lonMin> <latMin> <lonMax> <latMax>
    <id> circle <ra> <dec> <radiusDeg>
    <id> ellipse <ra> <dec> <semiMajorArcsec> <semiMinorArcsec> <posAngleDeg>
    <id> poly <lon1> <lat1> <lon2> <lat2> ...

and writes, per region, lines "<id> <what> <items...>" where <what> is

    chunks   sphgeom Chunker(85, 12).getChunksIntersecting(region)
    sub      sphgeom getSubChunksIntersecting(region), items "chunk:s1,s2,..."
    loose    chunks of a slightly larger region (see below): an upper bound
    lsub     sub-chunks of that larger region
    oracle   chunks of sample points inside the region (ellipse, poly only):
             a lower bound that does not rely on sphgeom's region relations
    osub     sub-chunks of those sample points

The larger region is the region grown by GROW_DEG for boxes and circles,
the cone of radius asin(semi-major) + GROW_DEG for ellipses (sciSQL's
ellipse reaches asin(a), sphgeom's bounding circle only a), and for polygons
sphgeom's own answer (sphgeom relates polygons to boxes through the
polygon's bounding box, so its answer is already an upper bound).

Exit status 3 if lsst.sphgeom cannot be imported.
"""
import math
import random
import sys

try:
    import lsst.sphgeom as sg
except Exception as exc:  # noqa: BLE001
    print(f"lsst.sphgeom unavailable: {exc}", file=sys.stderr)
    sys.exit(3)

GROW_DEG = 1e-7
CHUNKER = sg.Chunker(85, 12)
RAD = math.pi / 180.0


def unit(lon, lat):
    return sg.UnitVector3d(sg.LonLat.fromDegrees(lon, lat))


def vec(lon, lat):
    lon, lat = lon * RAD, lat * RAD
    return (math.cos(lon) * math.cos(lat), math.sin(lon) * math.cos(lat), math.sin(lat))


def to_lonlat(v):
    x, y, z = v
    n = math.sqrt(x * x + y * y + z * z)
    x, y, z = x / n, y / n, z / n
    lon = math.degrees(math.atan2(y, x)) % 360.0
    lat = math.degrees(math.atan2(z, math.hypot(x, y)))
    return lon, lat


def locate_all(points):
    """Chunks and sub-chunks whose (sphgeom-dilated) boxes hold the points."""
    chunks, subs = set(), {}
    for lon, lat in points:
        box = sg.Box(sg.LonLat.fromDegrees(lon, lat))
        for chunk_id, sub_ids in CHUNKER.getSubChunksIntersecting(box):
            chunks.add(chunk_id)
            subs.setdefault(chunk_id, set()).update(sub_ids)
    return chunks, subs


def ellipse_points(ra, dec, a_arcsec, b_arcsec, pa_deg, rng):
    """Boundary and interior points of the sciSQL ellipse."""
    slon, clon = math.sin(ra * RAD), math.cos(ra * RAD)
    slat, clat = math.sin(dec * RAD), math.cos(dec * RAD)
    c = (clat * clon, clat * slon, slat)
    north = (-slat * clon, -slat * slon, clat)
    east = (-slon, clon, 0.0)
    a = a_arcsec * RAD / 3600.0
    b = b_arcsec * RAD / 3600.0
    sp, cp = math.sin(pa_deg * RAD), math.cos(pa_deg * RAD)
    pts = []
    for k in range(3000):
        t = 2 * math.pi * k / 3000 if k < 2000 else rng.uniform(0, 2 * math.pi)
        s = (1.0 - 1e-9) if k < 2000 else math.sqrt(rng.random())
        x, y = a * math.cos(t) * s, b * math.sin(t) * s
        xne = cp * x - sp * y
        yne = sp * x + cp * y
        zc = math.sqrt(max(0.0, 1.0 - xne * xne - yne * yne))
        v = tuple(zc * c[i] + xne * north[i] + yne * east[i] for i in range(3))
        pts.append(to_lonlat(v))
    return pts


def poly_points(verts, rng):
    """Vertices, points along the edges and interior points of a polygon."""
    vs = [vec(lon, lat) for lon, lat in verts]
    pts = list(verts)
    n = len(vs)
    for i in range(n):
        a, b = vs[i], vs[(i + 1) % n]
        for k in range(1, 400):
            t = k / 400.0
            pts.append(to_lonlat(tuple((1 - t) * a[j] + t * b[j] for j in range(3))))
    for _ in range(2000):
        w = [rng.random() ** 3 for _ in vs]
        pts.append(to_lonlat(tuple(sum(w[i] * vs[i][j] for i in range(n)) for j in range(3))))
    return pts


def emit(rid, what, chunks=None, subs=None):
    if chunks is not None:
        print(rid, what, *sorted(chunks))
    else:
        items = [f"{c}:{','.join(str(s) for s in sorted(subs[c]))}" for c in sorted(subs)]
        print(rid, what, *items)


def sub_dict(result):
    return {chunk_id: set(sub_ids) for chunk_id, sub_ids in result}


def main():
    rng = random.Random(42)
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        rid, kind, args = f[0], f[1], [float(x) for x in f[2:]]
        oracle = None
        if kind == "box":
            lon_min, lat_min, lon_max, lat_max = args
            if lon_max - lon_min >= 360.0:
                region = sg.Box(sg.NormalizedAngleInterval.full(),
                                sg.AngleInterval.fromDegrees(lat_min, lat_max))
            else:
                region = sg.Box.fromDegrees(lon_min, lat_min, lon_max, lat_max)
            loose = region.dilatedBy(sg.Angle.fromDegrees(GROW_DEG))
        elif kind == "circle":
            ra, dec, r = args
            region = sg.Circle(unit(ra, dec), sg.Angle.fromDegrees(r))
            loose = sg.Circle(unit(ra, dec), sg.Angle.fromDegrees(r + GROW_DEG))
        elif kind == "ellipse":
            ra, dec, a, b, pa = args
            region = sg.Ellipse(unit(ra, dec), sg.Angle.fromDegrees(a / 3600.0),
                                sg.Angle.fromDegrees(b / 3600.0), sg.Angle.fromDegrees(pa))
            reach = math.asin(a / 3600.0 * RAD)
            loose = sg.Circle(unit(ra, dec), sg.Angle(reach) + sg.Angle.fromDegrees(GROW_DEG))
            oracle = ellipse_points(ra, dec, a, b, pa, rng)
        elif kind == "poly":
            verts = list(zip(args[0::2], args[1::2]))
            region = sg.ConvexPolygon([unit(lon, lat) for lon, lat in verts])
            loose = region
            oracle = poly_points(verts, rng)
        else:
            raise SystemExit(f"unknown region kind {kind!r}")
        emit(rid, "chunks", chunks=CHUNKER.getChunksIntersecting(region))
        emit(rid, "sub", subs=sub_dict(CHUNKER.getSubChunksIntersecting(region)))
        emit(rid, "loose", chunks=CHUNKER.getChunksIntersecting(loose))
        emit(rid, "lsub", subs=sub_dict(CHUNKER.getSubChunksIntersecting(loose)))
        if oracle is not None:
            chunks, subs = locate_all(oracle)
            emit(rid, "oracle", chunks=chunks)
            emit(rid, "osub", subs=subs)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
