//! The public API: invalid parameters and points give errors (never
//! panics), layout facts, and the CSV verb.

// Test code: helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use skyscan_sky::{
    Chunker, Circle, ConvexPolygon, Ellipse, Location, Region, SkyBox, SkyError, ang_sep_deg,
    locate_csv,
};

fn chunker() -> Chunker {
    Chunker::new(85, 12, 0.01667).unwrap()
}

#[test]
fn invalid_chunker_parameters() {
    for (stripes, subs, overlap) in [
        (0, 12, 0.01667),
        (85, 0, 0.01667),
        (85, 12, f64::NAN),
        (85, 12, -0.1),
        (85, 12, 10.5),
        (85, 12, f64::INFINITY),
        (85, 12, 0.2), // > sub-stripe height 180/1020 = 0.176
        (u32::MAX, 12, 0.0),
        (85, u32::MAX, 0.0),
        (648_001, 1, 0.0),
        (18, 1, 10.0), // alpha (180 at 80 deg) > sub-chunk width (72 deg)
    ] {
        let err = Chunker::new(stripes, subs, overlap).unwrap_err();
        assert!(
            matches!(err, SkyError::InvalidChunker(_)),
            "{stripes} {subs} {overlap}: {err}"
        );
        assert!(!err.to_string().is_empty());
    }
    // Edge cases that are fine.
    assert!(Chunker::new(1, 1, 0.0).is_ok());
    assert!(Chunker::new(85, 12, 0.0).is_ok());
    assert!(Chunker::new(340, 3, 0.01).is_ok());
    let c = Chunker::new(18, 100, 0.01).unwrap(); // Qserv's partitioner defaults
    assert_eq!(c.stripes(), 18);
}

#[test]
fn invalid_points() {
    let c = chunker();
    let mut out = vec![Location {
        chunk_id: 1,
        sub_chunk_id: 1,
    }];
    for (ra, dec) in [
        (f64::NAN, 0.0),
        (0.0, f64::NAN),
        (f64::INFINITY, 0.0),
        (f64::NEG_INFINITY, 0.0),
        (0.0, 90.000001),
        (0.0, -90.000001),
        (0.0, f64::INFINITY),
    ] {
        assert!(matches!(
            c.locate(ra, dec),
            Err(SkyError::InvalidPosition { .. })
        ));
        assert!(c.overlap_locations(ra, dec, &mut out).is_err());
    }
    assert!(matches!(
        c.locate_batch(&[1.0, 2.0], &[1.0], &mut out),
        Err(SkyError::LengthMismatch { .. })
    ));
    assert!(c.locate_batch(&[1.0, 2.0], &[1.0, 95.0], &mut out).is_err());
    assert_eq!(out.len(), 1, "locations before the bad point are kept");
    // Poles and the RA wrap are fine.
    assert!(c.locate(0.0, 90.0).is_ok());
    assert!(c.locate(0.0, -90.0).is_ok());
    assert_eq!(c.locate(360.0, 1.0).unwrap(), c.locate(0.0, 1.0).unwrap());
    assert_eq!(c.locate(-0.5, 1.0).unwrap(), c.locate(359.5, 1.0).unwrap());
    assert!(c.locate(1e300, 1.0).is_ok());
}

#[test]
fn invalid_ids() {
    let c = chunker();
    for id in [-1, i32::MIN, i32::MAX, 170 * 85, 7480 + 169, 169] {
        assert!(!c.is_valid_chunk(id), "{id}");
        assert!(matches!(
            c.chunk_bounds(id),
            Err(SkyError::InvalidChunkId(_))
        ));
        assert!(c.stripe(id).is_err());
        assert!(c.sub_chunks_of(id).is_err());
        assert!(c.sub_chunk_bounds(id, 0).is_err());
    }
    assert!(c.is_valid_chunk(7480));
    assert!(c.is_valid_chunk(7648));
    for sub in [-1, i32::MAX, 12 * c.max_sub_chunks_per_chunk()] {
        assert!(matches!(
            c.sub_chunk_bounds(7480, sub),
            Err(SkyError::InvalidSubChunkId { .. })
        ));
        assert!(!c.is_valid_sub_chunk(7480, sub));
    }
    // A sub-chunk index past nsc of its sub-stripe.
    let m = c.max_sub_chunks_per_chunk();
    let subs = c.sub_chunks_of(0).unwrap(); // the sub-stripe at the pole has 1 sub-chunk
    assert_eq!(subs.iter().filter(|&&s| s < m).count(), 1);
    assert!(c.is_valid_sub_chunk(0, 0));
    assert!(!c.is_valid_sub_chunk(0, 1));
    assert!(c.is_valid_sub_chunk(0, m));
}

#[test]
fn layout_facts() {
    let c = chunker();
    let chunks = c.all_chunks();
    assert_eq!(chunks.len(), 8983);
    assert!(chunks.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(c.stripe(7480).unwrap(), 44);
    assert_eq!(c.chunks_in_stripe(44), Some(169));
    // Every chunk's sub-chunks tile it: sub-chunk boxes lie in the chunk box.
    for &chunk_id in chunks.iter().step_by(97) {
        let cb = c.chunk_bounds(chunk_id).unwrap();
        for sub in c.sub_chunks_of(chunk_id).unwrap() {
            let sb = c.sub_chunk_bounds(chunk_id, sub).unwrap();
            assert!(sb.lat_min() >= cb.lat_min() && sb.lat_max() <= cb.lat_max());
            assert!(sb.lon_extent() <= cb.lon_extent() + 1e-9);
        }
    }
    // (0, 0) is in sub-stripe 509 (BRIEF §2): stripe 42, 6th sub-stripe.
    let loc = c.locate(0.0, 0.0).unwrap();
    assert_eq!(loc.chunk_id, 2 * 85 * 42);
    assert_eq!(loc.sub_chunk_id, 5 * c.max_sub_chunks_per_chunk());
    // Polar chunks span all longitudes.
    assert!(c.chunk_bounds(0).unwrap().is_full_lon());
    // The last chunk of a stripe ends at 360, reported range-reduced.
    let last = c.chunk_bounds(7648).unwrap();
    assert!(last.wraps() && last.lon_max() == 0.0);
    assert!(last.contains(359.99, 4.0) && last.contains(0.0, 4.0));
    // No overlap without an overlap radius.
    let mut out = Vec::new();
    Chunker::new(85, 12, 0.0)
        .unwrap()
        .overlap_locations(0.0, 0.0, &mut out)
        .unwrap();
    assert!(out.is_empty());
    chunker().overlap_locations(0.0, 0.0, &mut out).unwrap();
    assert!(!out.is_empty());
}

#[test]
fn invalid_regions() {
    assert!(SkyBox::new(f64::NAN, 0.0, 1.0, 1.0).is_err());
    assert!(SkyBox::new(0.0, -91.0, 1.0, 1.0).is_err());
    assert!(SkyBox::new(10.0, 0.0, -5.0, 1.0).is_err());
    assert!(SkyBox::new(400.0, 0.0, 10.0, 1.0).is_err());
    assert!(Circle::new(0.0, 0.0, -1.0).is_err());
    assert!(Circle::new(0.0, 0.0, 180.5).is_err());
    assert!(Circle::new(0.0, 0.0, f64::NAN).is_err());
    assert!(Circle::new(0.0, 95.0, 1.0).is_err());
    assert!(Ellipse::new(0.0, 0.0, 10.0, -1.0, 0.0).is_err());
    assert!(Ellipse::new(0.0, 0.0, 10.0, 20.0, 0.0).is_err());
    assert!(Ellipse::new(0.0, 0.0, 40000.0, 20.0, 0.0).is_err());
    assert!(Ellipse::new(0.0, 0.0, 10.0, 5.0, f64::INFINITY).is_err());
    assert!(ConvexPolygon::new(&[]).is_err());
    assert!(ConvexPolygon::new(&[(0.0, 0.0), (1.0, 0.0)]).is_err());
    let many: Vec<(f64, f64)> = (0..21).map(|k| (f64::from(k) * 17.0, 80.0)).collect();
    assert!(ConvexPolygon::new(&many).is_err());
    assert!(ConvexPolygon::new(&[(0.0, 0.0), (1.0, 0.0), (1.0, 0.0)]).is_err());
    assert!(ConvexPolygon::new(&[(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]).is_err());
    assert!(ConvexPolygon::new(&[(0.0, 0.0), (0.0, 90.0), (0.0, -10.0)]).is_err());
    assert!(ConvexPolygon::new(&[(0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0)]).is_err());
    assert!(ConvexPolygon::new(&[(0.0, 0.0), (f64::NAN, 1.0), (1.0, 0.0)]).is_err());
    // Either winding of a valid polygon is fine.
    assert!(ConvexPolygon::new(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).is_ok());
    assert!(ConvexPolygon::new(&[(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]).is_ok());
}

#[test]
fn scisql_semantics() {
    // angSep: NULL for bad latitudes.
    assert_eq!(ang_sep_deg(0.0, 0.0, 0.0, 90.5), None);
    let d = ang_sep_deg(10.0, 20.0, 10.0, 21.0).unwrap();
    assert!((d - 1.0).abs() < 1e-12);
    // Box edges are inclusive; NULL-ish inputs are "not contained".
    let b = Region::from(SkyBox::new(10.0, 20.0, 11.0, 21.0).unwrap());
    for (ra, dec) in [(10.0, 20.0), (11.0, 21.0), (10.0, 21.0), (370.5, 20.5)] {
        assert!(b.contains(ra, dec), "{ra} {dec}");
    }
    assert!(!b.contains(f64::NAN, 20.5));
    assert!(!b.contains(10.5, 95.0));
    // Circle edge: a point at exactly the radius along a meridian.
    let c = Region::from(Circle::new(0.0, 0.0, 1.0).unwrap());
    assert!(c.contains(0.0, 1.0));
    assert!(!c.contains(0.0, 1.000001));
    assert!(c.contains(359.5, 0.0));
    // Polygon vertices and edges are inside.
    let p = Region::from(ConvexPolygon::new(&[(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]).unwrap());
    assert!(p.contains(0.0, 0.0) && p.contains(0.5, 0.0) && p.contains(0.2, 0.2));
    assert!(!p.contains(0.8, 0.8));
    // Ellipse: position angle east of north.
    let e = Region::from(Ellipse::new(100.0, 0.0, 3600.0, 360.0, 90.0).unwrap());
    assert!(e.contains(100.9, 0.0));
    assert!(!e.contains(100.0, 0.9));
}

fn run_csv(
    input: &str,
    with_overlap: bool,
) -> Result<(String, skyscan_sky::LocateStats), SkyError> {
    let mut out = Vec::new();
    let stats = locate_csv(&chunker(), with_overlap, input.as_bytes(), &mut out)?;
    Ok((String::from_utf8(out).unwrap(), stats))
}

#[test]
fn csv_locate() {
    let (out, stats) = run_csv(
        "ra,dec\n1.30450574307,3.34239540723\n\n  0.0 , 0 \r\n",
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        "ra,dec,chunkId,subChunkId,overlap\n\
         1.30450574307,3.34239540723,7480,7,0\n\
         0.0,0,7140,345,0\n"
    );
    assert_eq!(stats.lines, 4);
    assert_eq!(stats.points, 2);
    assert_eq!(stats.rows, 2);
    assert_eq!(stats.overlap_rows, 0);
    // No header, no trailing newline.
    let (out, _) = run_csv("1.30450574307,3.34239540723", false).unwrap();
    assert_eq!(out.lines().count(), 2);
    // Empty input: just the header.
    let (out, stats) = run_csv("", true).unwrap();
    assert_eq!(out, "ra,dec,chunkId,subChunkId,overlap\n");
    assert_eq!(stats.points, 0);
}

#[test]
fn csv_overlap_rows() {
    // An object Qserv copied into sub-chunk 76 of chunk 7480.
    let (out, stats) = run_csv("1.30336218408,3.34004231046\n", true).unwrap();
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows[0], "1.30336218408,3.34004231046,7480,7,0");
    assert!(
        rows[1..].contains(&"1.30336218408,3.34004231046,7480,76,1"),
        "{rows:?}"
    );
    assert!(rows[1..].iter().all(|r| r.ends_with(",1")));
    assert_eq!(stats.overlap_rows as usize, rows.len() - 1);
    assert_eq!(stats.rows as usize, rows.len());
}

#[test]
fn csv_errors_name_the_line() {
    let cases = [
        ("1,2\nfoo,3\n", 2),
        ("ra,dec\n1,2\n3\n", 3),
        ("1,2,3\n", 1),
        ("ra,dec\n1,95\n", 2),
        ("1,2\nra,dec\n", 2),
        ("\n\n1,nan\n", 3),
    ];
    for (input, line) in cases {
        match run_csv(input, true) {
            Err(SkyError::Csv { line: got, message }) => {
                assert_eq!(got, line, "{input:?}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{input:?}: expected a CSV error, got {other:?}"),
        }
    }
    let long = format!("1,{}\n", "1".repeat(70_000));
    assert!(matches!(
        run_csv(&long, false),
        Err(SkyError::Csv { line: 1, .. })
    ));
    let mut out = Vec::new();
    let bad_utf8: &[u8] = b"1,2\n\xff,1\n";
    assert!(matches!(
        locate_csv(&chunker(), false, bad_utf8, &mut out),
        Err(SkyError::Csv { line: 2, .. })
    ));
}
