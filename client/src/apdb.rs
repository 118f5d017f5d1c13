//! The APDB calls of [`Client`] (SPEC.md part 4 §5, "APDB"): the per-visit
//! reads and writes of the alert pipeline, and log shipping for replicas.
//! Blocking, one request at a time, like the rest of the client.

use arrow_array::RecordBatch;
use arrow_ipc::writer::StreamWriter;

use crate::proto::{ApdbRegion, ApdbStatusInfo, ApdbStoreBody, ApdbTableId, Message, MessageType};
use crate::{
    Client, ClientError, QueryOutcome, Result, server_error, unexpected, write_frame,
    write_raw_frame,
};

/// One visit (or one CCD) to store: the rows as Arrow record batches whose
/// columns are named as the felis schema's (any order; nullable columns
/// may be left out; types must be the schema's, see [`Client::apdb_schema`]).
#[derive(Debug, Clone, Default)]
pub struct ApdbStore {
    /// The visit time, MJD TAI.
    pub visit_time: f64,
    /// The (visit, detector) pairs this store completes.
    pub visit_detectors: Vec<(i64, i16)>,
    /// New DiaObject versions.
    pub objects: Vec<RecordBatch>,
    /// New DiaSources.
    pub sources: Vec<RecordBatch>,
    /// New DiaForcedSources.
    pub forced_sources: Vec<RecordBatch>,
    /// Objects closed at `visit_time` without a successor.
    pub close_object_ids: Vec<i64>,
}

/// What one log shipment brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogShipment {
    /// The server's last durable record.
    pub durable_seq: u64,
    /// The last record carried (`from_seq - 1` when none).
    pub last_seq: u64,
    /// Bytes of the log stream received.
    pub bytes: u64,
}

/// An Arrow IPC stream of `batches` (empty: no rows).
fn ipc_stream(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut writer = StreamWriter::try_new(Vec::new(), &first.schema())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(writer.into_inner()?)
}

impl Client {
    /// Sends `request` and reads a result (`SCHEMA`, `BATCH`*, `END`).
    fn apdb_result(&mut self, request: &Message) -> Result<QueryOutcome> {
        let request_id = self.request_id();
        write_frame(&self.writer, request, request_id)?;
        crate::QueryStream::start(self, request_id, None)?.collect_all()
    }

    /// The Arrow schema of an APDB table (every felis column, in order).
    pub fn apdb_schema(&mut self, table: ApdbTableId) -> Result<arrow_schema::SchemaRef> {
        Ok(self.apdb_result(&Message::ApdbSchema { table })?.schema)
    }

    /// The latest versions of the DiaObjects in `region` (within the
    /// server's object window).
    pub fn apdb_get_dia_objects(&mut self, region: &ApdbRegion) -> Result<QueryOutcome> {
        self.apdb_result(&Message::ApdbGetObjects {
            region: region.clone(),
        })
    }

    /// The DiaSources of `object_ids` in `region` with `midpointMjdTai` in
    /// `(visit_time − 30·months, visit_time)`.
    pub fn apdb_get_dia_sources(
        &mut self,
        region: &ApdbRegion,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
    ) -> Result<QueryOutcome> {
        self.apdb_sources(
            ApdbTableId::DiaSource,
            region,
            object_ids,
            visit_time,
            months,
        )
    }

    /// The DiaForcedSources, as [`Client::apdb_get_dia_sources`].
    pub fn apdb_get_dia_forced_sources(
        &mut self,
        region: &ApdbRegion,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
    ) -> Result<QueryOutcome> {
        self.apdb_sources(
            ApdbTableId::DiaForcedSource,
            region,
            object_ids,
            visit_time,
            months,
        )
    }

    fn apdb_sources(
        &mut self,
        table: ApdbTableId,
        region: &ApdbRegion,
        object_ids: &[i64],
        visit_time: f64,
        months: u32,
    ) -> Result<QueryOutcome> {
        self.apdb_result(&Message::ApdbGetSources {
            table,
            months,
            visit_time,
            region: region.clone(),
            object_ids: object_ids.to_vec(),
        })
    }

    /// Stores one visit; returns its log sequence number once the server
    /// made it durable. A body larger than the server's frame limit is sent
    /// in several frames (`APDB_STORE_PART`*, `APDB_STORE`).
    pub fn apdb_store(&mut self, store: &ApdbStore) -> Result<u64> {
        let body = ApdbStoreBody {
            visit_time: store.visit_time,
            visit_detectors: store.visit_detectors.clone(),
            close_object_ids: store.close_object_ids.clone(),
            tables: [
                ipc_stream(&store.objects)?,
                ipc_stream(&store.sources)?,
                ipc_stream(&store.forced_sources)?,
            ],
        }
        .encode();
        self.apdb_store_bytes(&body)
    }

    /// Sends an already encoded store body (SPEC.md part 4 §5) in pieces
    /// of at most the server's frame limit.
    pub fn apdb_store_bytes(&mut self, body: &[u8]) -> Result<u64> {
        let piece = (self.info.max_frame_bytes as usize).max(1);
        let request_id = self.request_id();
        let mut rest = body;
        while rest.len() > piece {
            let (head, tail) = rest.split_at(piece);
            write_raw_frame(&self.writer, MessageType::ApdbStorePart, request_id, head)?;
            rest = tail;
        }
        write_raw_frame(&self.writer, MessageType::ApdbStore, request_id, rest)?;
        match self.reply(request_id)? {
            Message::ApdbStored { seq } => Ok(seq),
            other => Err(unexpected("APDB_STORED", &other)),
        }
    }

    /// Re-associates DiaSources with solar-system objects at `time`;
    /// returns the write's log sequence number once durable.
    pub fn apdb_reassign_dia_sources(&mut self, pairs: &[(i64, i64)], time: f64) -> Result<u64> {
        match self.call(&Message::ApdbReassign {
            time,
            pairs: pairs.to_vec(),
        })? {
            Message::ApdbStored { seq } => Ok(seq),
            other => Err(unexpected("APDB_STORED", &other)),
        }
    }

    /// DiaObjects whose latest version has a single source.
    pub fn apdb_count_unassociated_objects(&mut self) -> Result<u64> {
        match self.call(&Message::ApdbCountUnassociated)? {
            Message::ApdbValue { value } => Ok(value),
            other => Err(unexpected("APDB_VALUE", &other)),
        }
    }

    /// Whether (visit, detector) has been stored.
    pub fn apdb_contains_visit_detector(&mut self, visit: i64, detector: i16) -> Result<bool> {
        match self.call(&Message::ApdbContainsVisitDetector { visit, detector })? {
            Message::ApdbValue { value } => Ok(value != 0),
            other => Err(unexpected("APDB_VALUE", &other)),
        }
    }

    /// The server's APDB role, position and lag.
    pub fn apdb_status(&mut self) -> Result<ApdbStatusInfo> {
        match self.call(&Message::ApdbStatus)? {
            Message::ApdbStatusInfo(info) => Ok(info),
            other => Err(unexpected("APDB_STATUS_INFO", &other)),
        }
    }

    /// One log shipment: the durable records from `from_seq` on (about
    /// `max_bytes` at most), each piece handed to `on_bytes` as it arrives
    /// (a follower passes them to `Apdb::apply_log`). When nothing is new
    /// the server waits up to `wait_ms` for a record. An error of
    /// `on_bytes` ends the call with [`ClientError::Apply`]; the connection
    /// is then out of step and must be dropped.
    pub fn apdb_ship_log(
        &mut self,
        from_seq: u64,
        max_bytes: u32,
        wait_ms: u32,
        on_bytes: &mut dyn FnMut(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<LogShipment> {
        let request_id = self.request_id();
        write_frame(
            &self.writer,
            &Message::ApdbShipLog {
                from_seq,
                max_bytes,
                wait_ms,
            },
            request_id,
        )?;
        let mut bytes = 0u64;
        loop {
            match self.reply(request_id)? {
                Message::ApdbLogBytes(piece) => {
                    bytes += piece.len() as u64;
                    on_bytes(&piece).map_err(ClientError::Apply)?;
                }
                Message::ApdbLogEnd {
                    durable_seq,
                    last_seq,
                } => {
                    return Ok(LogShipment {
                        durable_seq,
                        last_seq,
                        bytes,
                    });
                }
                other => return Err(unexpected("APDB_LOG_BYTES or APDB_LOG_END", &other)),
            }
        }
    }

    /// The next message of `request_id` (an `ERROR` becomes `Err`).
    fn reply(&mut self, request_id: u32) -> Result<Message> {
        loop {
            let (id, message) = self.read_message()?;
            if id != request_id {
                continue;
            }
            return match message {
                Message::Error {
                    code,
                    message,
                    line,
                    column,
                    ..
                } => Err(server_error(code, message, line, column)),
                other => Ok(other),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::io::Cursor;
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array};
    use arrow_ipc::reader::StreamReader;
    use arrow_schema::{DataType, Field, Schema};

    #[test]
    fn ipc_streams_read_back() {
        assert!(ipc_stream(&[]).unwrap().is_empty());
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ra", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
            ],
        )
        .unwrap();
        let bytes = ipc_stream(&[batch.clone(), batch.slice(1, 1)]).unwrap();
        let reader = StreamReader::try_new(Cursor::new(bytes), None).unwrap();
        let back: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(back, vec![batch.clone(), batch.slice(1, 1)]);
    }
}
