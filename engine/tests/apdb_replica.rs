//! Log shipping: a replica fed the primary's log over a byte stream (cut at
//! random places) sees a prefix of the primary's visits, reports its lag,
//! answers reads as the primary did at the same sequence number, survives a
//! restart, and can start from a base copy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apdb_support;

use apdb_support::*;
use skyscan_engine::apdb::{Apdb, ApdbError, ApdbTable};

#[test]
fn replica_follows_the_primary_over_a_byte_stream() {
    let primary_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let (primary, _) = Apdb::open_with_schema(primary_dir.path(), felis(), test_config()).unwrap();
    let replica = Apdb::open_replica(replica_dir.path(), felis(), test_config()).unwrap();
    let l = layout();
    let all = visits(small_workload(31), 12);
    let mut rng = skyscan_engine::synth::Rng::new(1, 1);
    let mut shipped = 1u64;
    for (i, v) in all.iter().enumerate() {
        primary.store(&v.store_request()).unwrap();
        if i % 3 != 2 {
            continue;
        }
        let batch = primary.ship_log(shipped, 1 << 30).unwrap();
        assert_eq!(batch.durable_seq, i as u64 + 1);
        // Deliver in random pieces; the replica applies whole records only.
        let mut offset = 0;
        while offset < batch.bytes.len() {
            let piece = (1 + rng.below(200_000) as usize).min(batch.bytes.len() - offset);
            replica
                .apply_log(&batch.bytes[offset..offset + piece])
                .unwrap();
            offset += piece;
            let status = replica.replica_status();
            assert!(status.applied_seq <= batch.durable_seq);
        }
        shipped = batch.last_seq + 1;
        let status = replica.replica_status();
        assert_eq!(status.applied_seq, i as u64 + 1);
        assert_eq!(status.lag_records, 0);
        for w in &all[..=i] {
            assert_eq!(
                object_keys(&l, &replica.get_dia_objects(&w.region).unwrap()),
                object_keys(&l, &primary.get_dia_objects(&w.region).unwrap())
            );
        }
    }
    // Lag: the primary moves on, the replica hears only the head.
    primary
        .store(&visits(small_workload(31), 13)[12].store_request())
        .unwrap();
    let batch = primary.ship_log(shipped, 1 << 30).unwrap();
    let head_only = &batch.bytes[batch.bytes.len() - 32..];
    replica.apply_log(head_only).unwrap();
    assert_eq!(replica.replica_status().lag_records, 1);
    // A replica refuses writes.
    assert!(matches!(
        replica.store(&all[0].store_request()),
        Err(ApdbError::ReadOnly(_))
    ));
    // Corrupt stream bytes are an error, not a panic.
    let mut bad = batch.bytes.clone();
    bad[40] ^= 1;
    assert!(matches!(
        replica.apply_log(&bad),
        Err(ApdbError::Corrupt(_))
    ));
    drop(replica);
    // Restart: the replica keeps what it applied (its own log).
    let replica = Apdb::open_replica(replica_dir.path(), felis(), test_config()).unwrap();
    assert_eq!(replica.replica_status().applied_seq, 12);
    replica.apply_log(&batch.bytes).unwrap();
    assert_eq!(replica.replica_status().applied_seq, 13);
    // A base copy starts a second replica at the primary's state.
    primary.compact_now().unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let copied = primary.base_copy(copy_dir.path()).unwrap();
    assert_eq!(copied, 13);
    let second = Apdb::open_replica(copy_dir.path(), felis(), test_config()).unwrap();
    assert_eq!(second.replica_status().applied_seq, 13);
    let a = primary
        .reader()
        .scan(ApdbTable::DiaSource, None, None, None)
        .unwrap();
    let b = second
        .reader()
        .scan(ApdbTable::DiaSource, None, None, None)
        .unwrap();
    assert_eq!(
        ids(&l, ApdbTable::DiaSource, &a),
        ids(&l, ApdbTable::DiaSource, &b)
    );
    for w in &all {
        assert_eq!(
            object_keys(&l, &second.get_dia_objects(&w.region).unwrap()),
            object_keys(&l, &primary.get_dia_objects(&w.region).unwrap())
        );
    }
}
