//! Region → chunks and sub-chunks (BRIEF §2, last bullet).
//!
//! The walk is lsst-sphgeom's `Chunker::getChunksIntersecting` /
//! `getSubChunksIntersecting` (`src/Chunker.cc`): only the stripes and
//! sub-stripes within the latitude range of the region's bounding box, and
//! in each only the chunks and sub-chunks within its longitude range, are
//! tested; each candidate box, grown by [`BOX_DILATION_DEG`], is related to
//! the region itself. A chunk the region contains contributes all its
//! sub-chunks without testing them.

use crate::chunker::Chunker;
use crate::geom::Rect;
use crate::region::{Region, Relation};

/// Growth of every chunk, sub-chunk and bounding box before it is tested,
/// degrees of angular distance. sphgeom grows its boxes by 5e-12 rad
/// (`BOX_EPSILON`, 2.9e-10 deg); this is a little more so that a box sphgeom
/// keeps is always kept here, whatever the rounding differences between
/// its radians and these degrees.
pub(crate) const BOX_DILATION_DEG: f64 = 1.0e-9;

/// Index ranges (inclusive, at most two, ascending) of the cells of width
/// `width_deg` (cell `i` spans `[i·w, (i+1)·w]`, `count` cells around the
/// sky) that the longitude interval of `rect` touches.
fn lon_index_ranges(rect: &Rect, width_deg: f64, count: i32) -> ([(i32, i32); 2], usize) {
    let all = ([(0, count - 1), (0, -1)], 1);
    if rect.full_lon() {
        return all;
    }
    let start = rect.lon_start.rem_euclid(360.0);
    let end = start + rect.lon_width;
    let first = ((start / width_deg).floor() as i32).clamp(0, count - 1);
    if end < 360.0 {
        let last = ((end / width_deg).floor() as i32).clamp(first, count - 1);
        return ([(first, last), (0, -1)], 1);
    }
    let last = (((end - 360.0) / width_deg).floor() as i32).clamp(0, count - 1);
    if last + 1 >= first {
        all
    } else {
        ([(0, last), (first, count - 1)], 2)
    }
}

impl Chunker {
    /// Dilated bounding rectangle of a region and the sub-stripe range it
    /// covers, or `None` for an empty region.
    fn region_extent(&self, region: &Region) -> Option<(Rect, i32, i32)> {
        let rect = region.bounding_box().rect(BOX_DILATION_DEG)?;
        let last = self.num_sub_stripes_i32() - 1;
        let h = self.sub_stripe_height_deg();
        let ss_min = (((rect.lat_min + 90.0) / h).floor() as i32).clamp(0, last);
        let ss_max = (((rect.lat_max + 90.0) / h).floor() as i32).clamp(0, last);
        Some((rect, ss_min, ss_max))
    }

    /// Calls `visit(stripe, chunk-in-stripe, relation)` for every chunk
    /// whose dilated box may intersect the region, in ascending chunk id.
    fn visit_chunks(&self, region: &Region, mut visit: impl FnMut(i32, i32, Relation)) {
        let Some((rect, ss_min, ss_max)) = self.region_extent(region) else {
            return;
        };
        let per_stripe = self.num_sub_stripes_per_stripe_i32();
        for stripe in ss_min / per_stripe..=ss_max / per_stripe {
            let Some(nc) = self.chunks_in_stripe(stripe) else {
                continue;
            };
            let (ranges, used) = lon_index_ranges(&rect, 360.0 / f64::from(nc), nc);
            for &(first, last) in &ranges[..used] {
                for chunk in first..=last {
                    let Some(chunk_rect) = self.chunk_box(stripe, chunk).rect(BOX_DILATION_DEG)
                    else {
                        continue;
                    };
                    let relation = region.relate_rect(&chunk_rect);
                    if relation != Relation::Disjoint {
                        visit(stripe, chunk, relation);
                    }
                }
            }
        }
    }

    /// The chunks whose boxes intersect the region, ascending. Never misses
    /// a chunk holding a point the region contains; may add a chunk whose
    /// box comes within about 1e-9 degrees of the region (lsst-sphgeom's
    /// `getChunksIntersecting` has the same kind of slack).
    pub fn chunks_intersecting(&self, region: &Region) -> Vec<i32> {
        let mut ids = Vec::new();
        let per_stripe_ids = 2 * self.num_stripes_i32();
        self.visit_chunks(region, |stripe, chunk, _| {
            ids.push(per_stripe_ids * stripe + chunk);
        });
        ids
    }

    /// The sub-chunks whose boxes intersect the region, grouped by chunk:
    /// `(chunk id, ascending sub-chunk ids)` in ascending chunk id, chunks
    /// without such a sub-chunk left out (lsst-sphgeom's
    /// `getSubChunksIntersecting`). Same guarantees as
    /// [`Chunker::chunks_intersecting`].
    pub fn sub_chunks_intersecting(&self, region: &Region) -> Vec<(i32, Vec<i32>)> {
        let mut result = Vec::new();
        let Some((rect, ss_min, ss_max)) = self.region_extent(region) else {
            return result;
        };
        let per_stripe = self.num_sub_stripes_per_stripe_i32();
        let per_stripe_ids = 2 * self.num_stripes_i32();
        self.visit_chunks(region, |stripe, chunk, relation| {
            let chunk_id = per_stripe_ids * stripe + chunk;
            if relation == Relation::Contains {
                result.push((chunk_id, self.sub_chunks_of_stripe(stripe)));
                return;
            }
            let mut sub_chunk_ids = Vec::new();
            let first_ss = ss_min.max(stripe * per_stripe);
            let last_ss = ss_max.min((stripe + 1) * per_stripe - 1);
            for ss in first_ss..=last_ss {
                let (nsc, count, width) = self.sub_stripe_layout(ss);
                let chunk_first = chunk * nsc;
                let chunk_last = chunk_first + nsc - 1;
                let (ranges, used) = lon_index_ranges(&rect, width, count);
                for &(first, last) in &ranges[..used] {
                    for sc in first.max(chunk_first)..=last.min(chunk_last) {
                        let Some(sub_rect) = self.sub_chunk_box(ss, sc).rect(BOX_DILATION_DEG)
                        else {
                            continue;
                        };
                        if region.relate_rect(&sub_rect) != Relation::Disjoint {
                            sub_chunk_ids.push(self.sub_chunk_id_of(ss, chunk, sc));
                        }
                    }
                }
            }
            if !sub_chunk_ids.is_empty() {
                result.push((chunk_id, sub_chunk_ids));
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(lon_start: f64, lon_width: f64) -> Rect {
        Rect {
            lon_start,
            lon_width,
            lat_min: 0.0,
            lat_max: 1.0,
        }
    }

    #[test]
    fn index_ranges() {
        let (r, n) = lon_index_ranges(&rect(15.0, 10.0), 10.0, 36);
        assert_eq!(&r[..n], &[(1, 2)]);
        let (r, n) = lon_index_ranges(&rect(355.0, 10.0), 10.0, 36);
        assert_eq!(&r[..n], &[(0, 0), (35, 35)]);
        let (r, n) = lon_index_ranges(&rect(-5.0, 10.0), 10.0, 36);
        assert_eq!(&r[..n], &[(0, 0), (35, 35)]);
        let (r, n) = lon_index_ranges(&rect(5.0, 355.0), 10.0, 36);
        assert_eq!(&r[..n], &[(0, 35)]);
        let (r, n) = lon_index_ranges(&rect(0.0, 360.0), 10.0, 36);
        assert_eq!(&r[..n], &[(0, 35)]);
    }
}
