//! Sky partitioning for skyscan, bit-compatible with Qserv and lsst-sphgeom.
//!
//! The sky is cut into latitude *stripes*, each stripe into *chunks*, each
//! stripe into *sub-stripes* and each chunk into *sub-chunks* (BRIEF §2, the
//! scheme of Qserv's partitioner `src/partition/Chunker.cc` and of
//! lsst-sphgeom's `src/Chunker.cc`). [`Chunker`] computes the layout tables
//! once and then places a point in a few flops ([`Chunker::locate`]), lists
//! the overlap copies of a point ([`Chunker::overlap_locations`]) and lists
//! the chunks and sub-chunks a query region may touch
//! ([`Chunker::chunks_intersecting`], [`Chunker::sub_chunks_intersecting`]).
//!
//! The [`region`] module holds the spatial restrictors of the query dialect
//! (BRIEF §3) with sciSQL's point-in-region semantics, and
//! [`region::ang_sep_deg`], sciSQL's angular separation.
//!
//! [`locate_csv`] is the engine of the `skyscan locate` CLI verb.
//!
//! All angles are in degrees unless a name says otherwise.

mod chunker;
mod cover;
mod csv;
mod error;
mod geom;
pub mod region;

pub use chunker::{Chunker, Location, MAX_SUB_STRIPES};
pub use csv::{LocateStats, MAX_CSV_LINE_BYTES, locate_csv};
pub use error::SkyError;
pub use region::{Circle, ConvexPolygon, Ellipse, Region, Relation, SkyBox, ang_sep_deg};
