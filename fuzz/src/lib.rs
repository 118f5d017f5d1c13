//! Shared fuzz harness: decode arbitrary bytes as a chunk file, the way a
//! reader would (tail, footer, every block), and never panic.
//!
//! Used by the libFuzzer target `fuzz_targets/decode_chunk.rs` (cargo fuzz,
//! nightly or `RUSTC_BOOTSTRAP=1`) and by the stable smoke driver
//! `src/bin/smoke.rs` that CI runs.

use skyscan_format::{BlockDecoder, ChunkFile, ColumnData, FileTail, Footer, TAIL_LEN, testing};

/// Decodes `data` as a chunk file, twice: as given (checksums will reject most
/// mutations) and after repairing every checksum with
/// [`testing::reseal`] (so mutations reach the structural validation and the
/// decoders). Errors are expected; a panic is a bug.
pub fn decode_chunk(data: &[u8]) {
    decode_all(data);
    let mut resealed = data.to_vec();
    if testing::reseal(&mut resealed).is_ok() {
        decode_all(&resealed);
    }
}

/// Decodes every block through the sans-IO API (as the engine does) and
/// through [`ChunkFile`], and checks that both agree.
fn decode_all(data: &[u8]) {
    let via_file = ChunkFile::from_bytes(data).and_then(|file| file.read_all());
    let via_push = decode_push(data);
    if let (Ok(a), Ok(b)) = (&via_file, &via_push) {
        assert_eq!(a.len(), b.len(), "both readers see the same row groups");
        for (x, y) in a.iter().zip(b) {
            for (p, q) in x.iter().zip(y) {
                assert!(p.logical_eq(q), "both readers decode the same values");
            }
        }
    }
}

/// The push-style read: tail → footer → blocks, reusing one decoder and one
/// output buffer per column as a scan does.
fn decode_push(data: &[u8]) -> skyscan_format::Result<Vec<Vec<ColumnData>>> {
    if data.len() < TAIL_LEN {
        return Err(skyscan_format::FormatError::InvalidInput {
            what: "short".into(),
        });
    }
    let tail = FileTail::parse(&data[data.len() - TAIL_LEN..], data.len() as u64)?;
    let footer_bytes = &data[tail.footer_range().to_usize_range()?];
    let footer = Footer::decode(footer_bytes, &tail)?;
    let mut decoder = BlockDecoder::new();
    let columns = footer.schema().columns.len();
    let mut buffers: Vec<ColumnData> = footer
        .schema()
        .columns
        .iter()
        .map(|column| ColumnData::empty(column.column_type))
        .collect();
    let mut out = Vec::new();
    for row_group in 0..footer.row_groups().len() {
        let mut decoded = Vec::with_capacity(columns);
        for (column, buffer) in buffers.iter_mut().enumerate() {
            let block = footer.block(row_group, column)?;
            let bytes = &data[block.range().to_usize_range()?];
            decoder.decode_into(&block, bytes, buffer)?;
            assert_eq!(
                buffer.len(),
                footer.row_groups()[row_group].row_count as usize
            );
            decoded.push(buffer.clone());
        }
        out.push(decoded);
    }
    Ok(out)
}

/// The committed v1 golden files: seeds for the smoke driver and the corpus.
pub const GOLDEN: [&[u8]; 10] = [
    include_bytes!("../../format/tests/golden/v1_auto.skychunk"),
    include_bytes!("../../format/tests/golden/v1_auto_lz4.skychunk"),
    include_bytes!("../../format/tests/golden/v1_plain.skychunk"),
    include_bytes!("../../format/tests/golden/v1_for_bitpack.skychunk"),
    include_bytes!("../../format/tests/golden/v1_delta_bitpack.skychunk"),
    include_bytes!("../../format/tests/golden/v1_dictionary.skychunk"),
    include_bytes!("../../format/tests/golden/v1_byte_shuffle.skychunk"),
    include_bytes!("../../format/tests/golden/v1_alp.skychunk"),
    include_bytes!("../../format/tests/golden/v1_float_for.skychunk"),
    include_bytes!("../../format/tests/golden/v1_sparse.skychunk"),
];

/// Decodes `data` as a byte stream of wire-protocol frames (SPEC.md part 4),
/// fed to the push decoder in pieces whose sizes come from the data itself,
/// and every frame's payload as its message. Errors are expected; a panic is
/// a bug. A payload that decodes must re-encode to the same bytes (the
/// decoder accepts exactly one encoding of each message).
pub fn decode_frames(data: &[u8]) {
    use skyscan_client::proto::{FrameDecoder, Message};
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1);
    let mut decoder = FrameDecoder::new(1 << 20);
    for bytes in stream.chunks(piece) {
        decoder.push(bytes);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Ok(message) = Message::decode(frame.message_type, &frame.payload) {
                        if let Message::ApdbStore(body) | Message::ApdbStorePart(body) = &message
                            && let Ok(decoded) =
                                skyscan_client::proto::ApdbStoreBody::decode(body)
                        {
                            assert_eq!(&decoded.encode(), body, "a store body re-encodes");
                        }
                        assert_eq!(message.message_type(), frame.message_type);
                        assert_eq!(
                            message.encode_payload(),
                            frame.payload,
                            "a decoded message re-encodes to its bytes"
                        );
                    }
                }
                Ok(None) => break,
                // The stream is out of step after a frame error.
                Err(_) => return,
            }
        }
    }
}

/// A valid stream of one frame of every message type: the seed the smoke
/// driver mutates (the libFuzzer corpus starts from it too).
pub fn frame_seed() -> Vec<u8> {
    use skyscan_client::proto::{
        ApdbRegion, ApdbStoreBody, ApdbTableId, EndStats, ErrorCode, JobInfo, JobState, Message,
    };
    let job = JobInfo {
        id: 3,
        state: JobState::Done,
        error_code: 0,
        submitted_ms: 1,
        started_ms: 2,
        finished_ms: 3,
        expires_ms: 4,
        chunks_done: 5,
        chunks_total: 5,
        rows: 6,
        result_bytes: 7,
        error_message: String::new(),
        sql: "SELECT 1".to_string(),
    };
    let messages = [
        Message::Hello {
            min_version: 1,
            max_version: 1,
            token: "token".to_string(),
            client_name: "fuzz".to_string(),
        },
        Message::Query {
            progress: true,
            max_rows: 0,
            sql: "SELECT * FROM Object".to_string(),
        },
        Message::Cancel,
        Message::Submit {
            sql: "SELECT 2".to_string(),
        },
        Message::JobStatus { job_id: 1 },
        Message::JobList,
        Message::Fetch { job_id: 1 },
        Message::JobCancel { job_id: 1 },
        Message::JobDelete { job_id: 1 },
        Message::Ping,
        Message::Welcome {
            version: 1,
            max_frame_bytes: 1 << 20,
            max_queries: 8,
            server_name: "skyscan".to_string(),
            user: "u".to_string(),
        },
        Message::error(ErrorCode::Syntax, "bad"),
        Message::Schema(vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
        Message::Batch(vec![1, 2, 3]),
        Message::Progress {
            chunks_done: 1,
            chunks_total: 2,
            rows: 3,
        },
        Message::End(EndStats::default()),
        Message::Submitted { job_id: 9 },
        Message::Job(job.clone()),
        Message::Jobs(vec![job]),
        Message::Ok,
        Message::Pong,
        Message::ApdbGetObjects {
            region: ApdbRegion::Circle {
                ra_deg: 45.0,
                dec_deg: -30.0,
                radius_deg: 1.75,
            },
        },
        Message::ApdbGetSources {
            table: ApdbTableId::DiaSource,
            months: 12,
            visit_time: 60000.0,
            region: ApdbRegion::Polygon(vec![(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]),
            object_ids: vec![1, 2, 3],
        },
        Message::ApdbStore(
            ApdbStoreBody {
                visit_time: 60000.0,
                visit_detectors: vec![(1, 2)],
                close_object_ids: vec![5],
                tables: [vec![1, 2], Vec::new(), vec![3]],
            }
            .encode(),
        ),
        Message::ApdbReassign {
            time: 60001.0,
            pairs: vec![(1, 2)],
        },
        Message::ApdbContainsVisitDetector {
            visit: 1,
            detector: 2,
        },
        Message::ApdbShipLog {
            from_seq: 1,
            max_bytes: 1 << 20,
            wait_ms: 0,
        },
        Message::ApdbLogEnd {
            durable_seq: 2,
            last_seq: 1,
        },
        Message::ApdbStatusInfo(Default::default()),
    ];
    let mut out = vec![7u8];
    for (index, message) in messages.iter().enumerate() {
        out.extend(message.to_frame_bytes(index as u32));
    }
    out
}
