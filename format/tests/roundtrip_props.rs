//! Property tests: every type x every encoding it supports x compression,
//! plus the automatic choice, over adversarial values (nulls, empty,
//! all-equal, extremes, NaN, infinities, -0.0, long and empty strings).

// Helpers outside #[test] functions may unwrap too (clippy.toml covers only the latter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use proptest::prelude::*;
use skyscan_format::{
    Bitmap, BlockRef, BoolColumn, ColumnData, ColumnSchema, ColumnType, CompressionChoice,
    EncodeOptions, Encoding, MinMax, PrimitiveColumn, VarColumn, decode_block, encode_block,
};

/// Encodes `data` with every applicable encoding and compression choice and
/// checks the decoded column and the statistics.
fn check_all_encodings(data: &ColumnData) {
    let column_type = data.column_type();
    let schema = ColumnSchema::new("c", column_type, true);
    check_sampled_choice(&schema, data);
    let mut choices = vec![None];
    choices.extend(
        Encoding::ALL
            .into_iter()
            .filter(|e| column_type.supports(*e))
            .map(Some),
    );
    for encoding in choices {
        for compression in [
            CompressionChoice::Auto,
            CompressionChoice::Never,
            CompressionChoice::Always,
        ] {
            let options = EncodeOptions {
                encoding,
                compression,
            };
            let encoded = match encode_block(&schema, data, &options) {
                Ok(encoded) => encoded,
                Err(err) => {
                    // Only a forced dictionary may refuse (too many distinct values).
                    assert_eq!(encoding, Some(Encoding::Dictionary), "{err}");
                    continue;
                }
            };
            if let Some(encoding) = encoding {
                assert_eq!(encoded.meta.encoding, encoding);
            }
            let block = BlockRef {
                row_group: 0,
                column_index: 0,
                column: &schema,
                meta: &encoded.meta,
            };
            let decoded = decode_block(&block, &encoded.bytes)
                .unwrap_or_else(|err| panic!("{encoding:?} {compression:?}: {err}"));
            assert!(
                decoded.logical_eq(data),
                "{encoding:?} {compression:?} ({:?} chosen): round trip differs\n in: {data:?}\nout: {decoded:?}",
                encoded.meta.encoding
            );
            assert_eq!(encoded.meta.null_count as usize, data.null_count());
            assert_eq!(decoded.validity().is_some(), data.null_count() > 0);
            check_stats(
                data,
                &encoded.meta.stats.min_max,
                encoded.meta.stats.has_nan,
            );
        }
    }
}

/// Recomputes min/max/NaN naively and compares.
/// The automatic choice estimates most sizes from a sample: it must still
/// be deterministic and never larger than the encodings it sizes exactly
/// (PLAIN and frame of reference, from the block statistics).
fn check_sampled_choice(schema: &ColumnSchema, data: &ColumnData) {
    let size = |encoding: Option<Encoding>| {
        let options = EncodeOptions {
            encoding,
            compression: CompressionChoice::Never,
        };
        encode_block(schema, data, &options).map(|block| block.bytes)
    };
    let auto = size(None).unwrap();
    assert_eq!(auto, size(None).unwrap(), "the choice is deterministic");
    for exact in [Encoding::Plain, Encoding::ForBitpack, Encoding::FloatFor] {
        if schema.column_type.supports(exact) {
            let forced = size(Some(exact)).unwrap();
            assert!(
                auto.len() <= forced.len(),
                "automatic choice {} bytes, {exact:?} {} bytes",
                auto.len(),
                forced.len()
            );
        }
    }
}

fn check_stats(data: &ColumnData, min_max: &Option<MinMax>, has_nan: bool) {
    let valid: Vec<usize> = (0..data.len()).filter(|&row| data.is_valid(row)).collect();
    match data {
        ColumnData::F32(_) | ColumnData::F64(_) => {
            let values: Vec<f64> = valid
                .iter()
                .map(|&row| match data {
                    ColumnData::F32(c) => f64::from(c.values[row]),
                    ColumnData::F64(c) => c.values[row],
                    _ => unreachable!(),
                })
                .collect();
            assert_eq!(has_nan, values.iter().any(|v| v.is_nan()));
            let finite: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
            match min_max {
                None => assert!(finite.is_empty()),
                Some(MinMax::Float { min, max }) => {
                    let expected_min = finite.iter().copied().min_by(f64::total_cmp).unwrap();
                    let expected_max = finite.iter().copied().max_by(f64::total_cmp).unwrap();
                    assert_eq!(min.to_bits(), expected_min.to_bits());
                    assert_eq!(max.to_bits(), expected_max.to_bits());
                }
                other => panic!("float stats {other:?}"),
            }
        }
        ColumnData::Utf8(c) | ColumnData::Binary(c) => {
            assert!(!has_nan);
            match min_max {
                // No upper bound fits in 64 bytes when the max starts with 64 x 0xFF.
                None => assert!(
                    valid.is_empty()
                        || valid
                            .iter()
                            .map(|&row| c.value(row))
                            .max()
                            .unwrap()
                            .starts_with(&[0xFF; 65])
                ),
                Some(MinMax::Bytes {
                    min,
                    max,
                    truncated,
                }) => {
                    let expected_min = valid.iter().map(|&row| c.value(row)).min().unwrap();
                    let expected_max = valid.iter().map(|&row| c.value(row)).max().unwrap();
                    if *truncated {
                        assert!(min.as_slice() <= expected_min && max.as_slice() >= expected_max);
                    } else {
                        assert_eq!(min.as_slice(), expected_min);
                        assert_eq!(max.as_slice(), expected_max);
                    }
                }
                other => panic!("bytes stats {other:?}"),
            }
        }
        ColumnData::Bool(c) => match min_max {
            None => assert!(valid.is_empty()),
            Some(MinMax::Bool { min, max }) => {
                assert_eq!(*min, valid.iter().all(|&row| c.values.get(row)));
                assert_eq!(*max, valid.iter().any(|&row| c.values.get(row)));
            }
            other => panic!("bool stats {other:?}"),
        },
        _ => {
            let values: Vec<i64> = valid
                .iter()
                .map(|&row| match data {
                    ColumnData::I8(c) => i64::from(c.values[row]),
                    ColumnData::I16(c) => i64::from(c.values[row]),
                    ColumnData::I32(c) => i64::from(c.values[row]),
                    ColumnData::I64(c) => c.values[row],
                    _ => unreachable!(),
                })
                .collect();
            match min_max {
                None => assert!(values.is_empty()),
                Some(MinMax::Int { min, max }) => {
                    assert_eq!(*min, *values.iter().min().unwrap());
                    assert_eq!(*max, *values.iter().max().unwrap());
                }
                other => panic!("int stats {other:?}"),
            }
        }
    }
}

/// Lengths that exercise empty blocks, tails and full 512-value groups.
fn lengths() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..8, 8usize..600, 1020usize..1100]
}

/// Optional values drawn from a pattern (to reach every encoding's sweet
/// spot) with a null rate.
fn int_column<T: Arbitrary + Copy + std::fmt::Debug + 'static>(
    specials: Vec<T>,
    from_i64: fn(i64) -> T,
) -> impl Strategy<Value = Vec<Option<T>>> {
    let pattern = prop_oneof![
        Just(0u8), // arbitrary
        Just(1u8), // specials only
        Just(2u8), // small range
        Just(3u8), // sorted
        Just(4u8), // all equal
        Just(5u8), // mostly one value, rare specials (SPARSE, dictionary mode)
        Just(6u8), // mostly one value, rare arbitrary values (SPARSE, FOR mode)
    ];
    (lengths(), pattern, 0u8..4, any::<u64>()).prop_flat_map(
        move |(len, pattern, null_kind, seed)| {
            let specials = specials.clone();
            proptest::collection::vec((any::<T>(), any::<u32>(), any::<u8>()), len).prop_map(
                move |raw| {
                    let mut sorted = seed as i64 >> 8;
                    raw.into_iter()
                        .map(|(value, small, pick)| {
                            let null = match null_kind {
                                0 => false,
                                1 => pick % 5 == 0,
                                2 => pick % 2 == 0,
                                _ => pick != 0,
                            };
                            if null {
                                return None;
                            }
                            Some(match pattern {
                                0 => value,
                                1 => specials[pick as usize % specials.len()],
                                2 => from_i64((seed as i64 >> 40) + i64::from(small % 1000)),
                                3 => {
                                    sorted += i64::from(small % 4);
                                    from_i64(sorted)
                                }
                                5 if pick < 16 => specials[pick as usize % specials.len()],
                                6 if pick < 32 => value,
                                _ => from_i64(seed as i64),
                            })
                        })
                        .collect()
                },
            )
        },
    )
}

fn float_column<T: Arbitrary + Copy + std::fmt::Debug + 'static>(
    specials: Vec<T>,
    from_f64: fn(f64) -> T,
) -> impl Strategy<Value = Vec<Option<T>>> {
    (lengths(), 0u8..5, 0u8..3, any::<u64>()).prop_flat_map(
        move |(len, pattern, null_kind, seed)| {
            let specials = specials.clone();
            proptest::collection::vec((any::<T>(), any::<u32>(), any::<u8>()), len).prop_map(
                move |raw| {
                    raw.into_iter()
                        .map(|(value, small, pick)| {
                            if null_kind > 0 && pick % (null_kind * 2) == 0 {
                                return None;
                            }
                            let base = (seed % 360) as f64;
                            Some(match pattern {
                                0 => value,
                                1 => specials[pick as usize % specials.len()],
                                // Decimal values with 4 digits (ALP), with some specials mixed in.
                                2 if pick < 240 => from_f64(
                                    ((base + f64::from(small % 100_000) / 1e4) * 1e4).round() / 1e4,
                                ),
                                2 => specials[pick as usize % specials.len()],
                                // Clustered full-precision values (float FOR).
                                3 => from_f64(base + f64::from(small) / f64::from(u32::MAX) * 0.25),
                                _ => from_f64(f64::from(small % 4)),
                            })
                        })
                        .collect()
                },
            )
        },
    )
}

fn var_column(utf8: bool) -> impl Strategy<Value = Vec<Option<Vec<u8>>>> {
    let value = prop_oneof![
        3 => proptest::sample::select(vec!["u", "g", "r", "i", "z", "y", ""]).prop_map(|s| s.as_bytes().to_vec()),
        2 => "[a-zA-Z0-9 é漢🙂]{0,12}".prop_map(|s| s.into_bytes()),
        1 => "[a-z]{60,200}".prop_map(|s| s.into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => proptest::collection::vec(Just(0xFFu8), 60..80),
    ];
    let value = value.prop_map(move |bytes| {
        if utf8 && std::str::from_utf8(&bytes).is_err() {
            b"x".to_vec()
        } else {
            bytes
        }
    });
    proptest::collection::vec(proptest::option::weighted(0.85, value), 0..700)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn i8_roundtrip(values in int_column(vec![i8::MIN, i8::MAX, 0, -1, 1], |v| v as i8)) {
        check_all_encodings(&ColumnData::I8(PrimitiveColumn::from_options(&values)));
    }

    #[test]
    fn i16_roundtrip(values in int_column(vec![i16::MIN, i16::MAX, 0, -1], |v| v as i16)) {
        check_all_encodings(&ColumnData::I16(PrimitiveColumn::from_options(&values)));
    }

    #[test]
    fn i32_roundtrip(values in int_column(vec![i32::MIN, i32::MAX, 0, -1, 1 << 17], |v| v as i32)) {
        check_all_encodings(&ColumnData::I32(PrimitiveColumn::from_options(&values)));
    }

    #[test]
    fn i64_roundtrip(values in int_column(vec![i64::MIN, i64::MAX, 0, -1, 1 << 40], |v| v)) {
        check_all_encodings(&ColumnData::I64(PrimitiveColumn::from_options(&values)));
    }

    #[test]
    fn f32_roundtrip(values in float_column(
        vec![f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, f32::MIN, f32::MAX,
             f32::MIN_POSITIVE, 1e-45, f32::from_bits(0x7FC0_0001), 0.1, 1234.567],
        |v| v as f32,
    )) {
        check_all_encodings(&ColumnData::F32(PrimitiveColumn::from_options(&values)));
    }

    #[test]
    fn f64_roundtrip(values in float_column(
        vec![f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, f64::MIN, f64::MAX,
             f64::MIN_POSITIVE, 5e-324, f64::from_bits(0x7FF8_0000_0000_0001), 0.1, 359.999999,
             (1u64 << 53) as f64, -1e300],
        |v| v,
    )) {
        check_all_encodings(&ColumnData::F64(PrimitiveColumn::from_options(&values)));
    }

    #[test]
    fn bool_roundtrip(values in proptest::collection::vec(proptest::option::weighted(0.8, any::<bool>()), 0..1200)) {
        check_all_encodings(&ColumnData::Bool(BoolColumn::from_options(&values)));
    }

    #[test]
    fn utf8_roundtrip(values in var_column(true)) {
        check_all_encodings(&ColumnData::Utf8(VarColumn::from_options(&values)));
    }

    #[test]
    fn binary_roundtrip(values in var_column(false)) {
        check_all_encodings(&ColumnData::Binary(VarColumn::from_options(&values)));
    }
}

#[test]
fn edge_cases() {
    // Empty, all null, all equal, single value, extremes.
    check_all_encodings(&ColumnData::I64(PrimitiveColumn::new(vec![])));
    check_all_encodings(&ColumnData::I64(PrimitiveColumn::from_options(
        &[None; 700],
    )));
    check_all_encodings(&ColumnData::I32(PrimitiveColumn::new(vec![42; 1500])));
    check_all_encodings(&ColumnData::I64(PrimitiveColumn::new(vec![
        i64::MIN,
        i64::MAX,
        i64::MIN,
    ])));
    check_all_encodings(&ColumnData::I64(PrimitiveColumn::new(
        (0..2000)
            .map(|i| if i % 2 == 0 { i64::MIN } else { i64::MAX })
            .collect(),
    )));
    check_all_encodings(&ColumnData::I8(PrimitiveColumn::new(
        (0..1030).map(|i| i as i8).collect(),
    )));
    check_all_encodings(&ColumnData::F64(PrimitiveColumn::new(vec![f64::NAN; 600])));
    check_all_encodings(&ColumnData::F64(PrimitiveColumn::new(vec![-0.0; 600])));
    check_all_encodings(&ColumnData::F32(PrimitiveColumn::from_options(&[
        None,
        Some(f32::NAN),
        None,
    ])));
    // One-byte dictionary entries (band names): the byte-table decode path.
    let bands: Vec<Option<&str>> = (0..1300)
        .map(|i| Some(["u", "g", "r", "i", "z", "y"][(i * 7 + i / 5) % 6]))
        .collect();
    check_all_encodings(&ColumnData::Utf8(VarColumn::from_options(&bands)));
    let many: Vec<Option<String>> = (0..700)
        .map(|i| Some(char::from(b'a' + (i % 20) as u8).to_string()))
        .collect();
    check_all_encodings(&ColumnData::Utf8(VarColumn::from_options(&many)));
    check_all_encodings(&ColumnData::Utf8(VarColumn::from_options::<&str>(&[])));
    check_all_encodings(&ColumnData::Utf8(VarColumn::from_options(&[
        Some(""),
        None,
        Some(""),
    ])));
    let long = "ÿ".repeat(5000);
    check_all_encodings(&ColumnData::Utf8(VarColumn::from_options(&[
        Some(long.as_str()),
        Some("a"),
    ])));
    check_all_encodings(&ColumnData::Binary(VarColumn::from_options(&[Some(
        vec![0xFFu8; 100],
    )])));
    check_all_encodings(&ColumnData::Bool(BoolColumn::from_options(&[None, None])));
    let mut bits = BoolColumn::from_options(&[Some(true); 130]);
    bits.validity = Some(Bitmap::new_set(130));
    check_all_encodings(&ColumnData::Bool(bits));
    // 65 536 distinct values: the largest forced dictionary.
    check_all_encodings(&ColumnData::I32(PrimitiveColumn::new(
        (0..65_536).rev().collect(),
    )));
}

#[test]
fn automatic_choice_picks_the_expected_encodings() {
    let schema = |column_type| ColumnSchema::new("c", column_type, false);
    let chosen = |data: &ColumnData| {
        encode_block(&schema(data.column_type()), data, &EncodeOptions::default())
            .unwrap()
            .meta
            .encoding
    };
    let ids: Vec<i64> = (0..10_000).map(|i| (1 << 40) + i * 3).collect();
    assert_eq!(
        chosen(&ColumnData::I64(PrimitiveColumn::new(ids))),
        Encoding::DeltaBitpack
    );
    let counts: Vec<i32> = (0..10_000).map(|i| (i * 7919) % 50).collect();
    assert_eq!(
        chosen(&ColumnData::I32(PrimitiveColumn::new(counts))),
        Encoding::ForBitpack
    );
    let flags: Vec<i64> = (0..10_000).map(|i| [0, 1 << 40, 1 << 62][i % 3]).collect();
    assert_eq!(
        chosen(&ColumnData::I64(PrimitiveColumn::new(flags))),
        Encoding::Dictionary
    );
    let parents: Vec<i64> = (0..10_000)
        .map(|i| if i % 9 == 4 { (7 << 32) | (i * 13) } else { 0 })
        .collect();
    assert_eq!(
        chosen(&ColumnData::I64(PrimitiveColumn::new(parents))),
        Encoding::Sparse
    );
    let n_child: Vec<i16> = (0..10_000)
        .map(|i| if i % 13 == 0 { 2 + (i % 5) as i16 } else { 0 })
        .collect();
    assert_eq!(
        chosen(&ColumnData::I16(PrimitiveColumn::new(n_child))),
        Encoding::Sparse
    );
    let mut rng = common::SplitMix(5);
    let ra: Vec<f64> = (0..10_000)
        .map(|_| (120_000_000 + rng.below(250_000)) as f64 / 1e6)
        .collect();
    assert_eq!(
        chosen(&ColumnData::F64(PrimitiveColumn::new(ra))),
        Encoding::Alp
    );
    let bands: Vec<Option<&str>> = (0..10_000).map(|i| Some(["u", "g", "r"][i % 3])).collect();
    assert_eq!(
        chosen(&ColumnData::Utf8(VarColumn::from_options(&bands))),
        Encoding::Dictionary
    );
    let _ = ColumnType::I8;
}
