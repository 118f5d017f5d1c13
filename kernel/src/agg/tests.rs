use skyscan_format::PrimitiveColumn;

use super::*;
use crate::build::scalar_at;
use crate::value::Scalar;

fn batch_columns(keys: &[i64], values: &[Option<f64>]) -> Vec<Option<ColumnData>> {
    vec![
        Some(ColumnData::I64(PrimitiveColumn::new(keys.to_vec()))),
        Some(ColumnData::F64(PrimitiveColumn::from_options(values))),
    ]
}

fn specs() -> Vec<AggSpec> {
    let x = Expr::column(1, DataType::F64);
    vec![
        AggSpec {
            func: AggFunc::Count,
            args: vec![],
            distinct: false,
        },
        AggSpec {
            func: AggFunc::Count,
            args: vec![x.clone()],
            distinct: false,
        },
        AggSpec {
            func: AggFunc::Sum,
            args: vec![x.clone()],
            distinct: false,
        },
        AggSpec {
            func: AggFunc::Avg,
            args: vec![x.clone()],
            distinct: false,
        },
        AggSpec {
            func: AggFunc::Min,
            args: vec![x.clone()],
            distinct: false,
        },
        AggSpec {
            func: AggFunc::Max,
            args: vec![x.clone()],
            distinct: false,
        },
        AggSpec {
            func: AggFunc::Count,
            args: vec![x.clone()],
            distinct: true,
        },
        AggSpec {
            func: AggFunc::VarPop,
            args: vec![x],
            distinct: false,
        },
    ]
}

fn rows_of(columns: &[ColumnData]) -> Vec<Vec<Scalar>> {
    let mut rows: Vec<Vec<Scalar>> = (0..columns[0].len())
        .map(|row| columns.iter().map(|c| scalar_at(c, row)).collect())
        .collect();
    rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    rows
}

#[test]
fn grouped_aggregates_with_nulls() {
    let columns = batch_columns(
        &[1, 2, 1, 1, 2],
        &[Some(1.0), None, Some(3.0), Some(3.0), None],
    );
    let batch = Batch::new(&columns, 5);
    let mut agg = Aggregator::new(
        vec![Expr::column(0, DataType::I64)],
        specs(),
        AggLimits::default(),
    );
    agg.update(&batch, None).unwrap();
    let rows = rows_of(&agg.finish().unwrap());
    use Scalar::{Float, Int, Null};
    assert_eq!(
        rows,
        vec![
            vec![
                Int(1),
                Int(3),
                Int(3),
                Float(7.0),
                Float(7.0 / 3.0),
                Float(1.0),
                Float(3.0),
                Int(2),
                Float(8.0 / 9.0)
            ],
            vec![Int(2), Int(2), Int(0), Null, Null, Null, Null, Int(0), Null],
        ]
    );
}

#[test]
fn merged_partials_equal_one_pass() {
    let keys: Vec<i64> = (0..1000).map(|i| (i * 7919) % 37).collect();
    let values: Vec<Option<f64>> = (0..1000)
        .map(|i| {
            if i % 11 == 0 {
                None
            } else {
                Some((i % 13) as f64)
            }
        })
        .collect();
    let columns = batch_columns(&keys, &values);
    let batch = Batch::new(&columns, 1000);
    let key = || vec![Expr::column(0, DataType::I64)];
    let mut whole = Aggregator::new(key(), specs(), AggLimits::default());
    whole.update(&batch, None).unwrap();
    let mut merged = Aggregator::new(key(), specs(), AggLimits::default());
    for part in 0..4u32 {
        let selection: Vec<u32> = (0..1000u32).filter(|r| r % 4 == part).collect();
        let mut partial = merged.empty_like();
        partial.update(&batch, Some(&selection)).unwrap();
        merged.merge(partial).unwrap();
    }
    let a = rows_of(&whole.finish().unwrap());
    let b = rows_of(&merged.finish().unwrap());
    assert_eq!(a.len(), 37);
    for (x, y) in a.iter().zip(&b) {
        for (p, q) in x.iter().zip(y) {
            match (p, q) {
                (Scalar::Float(p), Scalar::Float(q)) => {
                    assert!((p - q).abs() <= 1e-9 * p.abs().max(1.0))
                }
                _ => assert_eq!(p, q),
            }
        }
    }
}

#[test]
fn ungrouped_aggregate_of_nothing_is_one_row() {
    let columns = batch_columns(&[], &[]);
    let batch = Batch::new(&columns, 0);
    let mut agg = Aggregator::new(vec![], specs(), AggLimits::default());
    agg.update(&batch, None).unwrap();
    let out = agg.finish().unwrap();
    assert_eq!(out[0].len(), 1);
    assert_eq!(scalar_at(&out[0], 0), Scalar::Int(0));
    assert_eq!(scalar_at(&out[2], 0), Scalar::Null);
}

#[test]
fn group_limit_is_an_error() {
    let keys: Vec<i64> = (0..100).collect();
    let columns = batch_columns(&keys, &vec![Some(1.0); 100]);
    let batch = Batch::new(&columns, 100);
    let limits = AggLimits {
        max_groups: 10,
        ..AggLimits::default()
    };
    let mut agg = Aggregator::new(vec![Expr::column(0, DataType::I64)], specs(), limits);
    assert!(matches!(
        agg.update(&batch, None),
        Err(KernelError::Limit(_))
    ));
}

#[test]
fn text_keys_group_without_case() {
    let columns = vec![Some(ColumnData::Utf8(
        skyscan_format::VarColumn::from_options(&[Some("a"), Some("A "), Some("b")]),
    ))];
    let batch = Batch::new(&columns, 3);
    let mut agg = Aggregator::new(
        vec![Expr::column(0, DataType::Utf8)],
        vec![AggSpec {
            func: AggFunc::Count,
            args: vec![],
            distinct: false,
        }],
        AggLimits::default(),
    );
    agg.update(&batch, None).unwrap();
    let out = agg.finish().unwrap();
    assert_eq!(out[0].len(), 2);
    assert_eq!(scalar_at(&out[1], 0), Scalar::Int(2));
}
