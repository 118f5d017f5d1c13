use skyscan_format::{BoolColumn, PrimitiveColumn, VarColumn};

use super::*;
use crate::build::scalar_at;
use crate::expr::Func;
use crate::like::LikePattern;

fn col(slot: usize, t: DataType) -> Expr {
    Expr::column(slot, t)
}

fn lit(s: Scalar) -> Expr {
    Expr::literal(s)
}

fn int(v: i64) -> Expr {
    lit(Scalar::Int(v))
}

fn values(expr: &Expr, columns: &[Option<ColumnData>]) -> Vec<Scalar> {
    let rows = columns
        .iter()
        .flatten()
        .map(ColumnData::len)
        .next()
        .unwrap_or(1);
    let batch = Batch::new(columns, rows);
    let datum = eval(expr, &batch).unwrap();
    let column = datum.into_column(expr.data_type(), rows);
    (0..rows).map(|row| scalar_at(&column, row)).collect()
}

fn ints(values: &[Option<i64>]) -> Option<ColumnData> {
    Some(ColumnData::I64(PrimitiveColumn::from_options(values)))
}

fn floats(values: &[Option<f64>]) -> Option<ColumnData> {
    Some(ColumnData::F64(PrimitiveColumn::from_options(values)))
}

#[test]
fn arithmetic_nulls_and_division_by_zero() {
    let columns = [
        ints(&[Some(7), None, Some(-7), Some(5)]),
        ints(&[Some(2), Some(1), Some(0), Some(-3)]),
    ];
    let a = || col(0, DataType::I64);
    let b = || col(1, DataType::I64);
    use Scalar::{Float, Int, Null};
    assert_eq!(
        values(&Expr::binary(BinaryOp::Add, a(), b()), &columns),
        vec![Int(9), Null, Int(-7), Int(2)]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::Div, a(), b()), &columns),
        vec![Float(3.5), Null, Null, Float(5.0 / -3.0)]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::IntDiv, a(), b()), &columns),
        vec![Int(3), Null, Null, Int(-1)]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::Mod, a(), b()), &columns),
        vec![Int(1), Null, Null, Int(2)]
    );
    // Integer overflow is an error, as in MySQL.
    let big = [ints(&[Some(i64::MAX)])];
    let batch = Batch::new(&big, 1);
    assert!(matches!(
        eval(
            &Expr::binary(BinaryOp::Add, col(0, DataType::I64), int(1)),
            &batch
        ),
        Err(KernelError::Overflow(_))
    ));
}

#[test]
fn float_modulo_and_div_follow_mysql() {
    let columns = [floats(&[Some(5.5), Some(-5.5), Some(0.5)])];
    let ra = || col(0, DataType::F64);
    use Scalar::{Float, Int};
    assert_eq!(
        values(&Expr::binary(BinaryOp::Mod, ra(), int(3)), &columns),
        vec![Float(2.5), Float(-2.5), Float(0.5)]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::IntDiv, ra(), int(2)), &columns),
        vec![Int(2), Int(-2), Int(0)]
    );
}

#[test]
fn large_ids_compare_exactly() {
    // 2^53 + 1 and 2^53 are equal as doubles but not as integers.
    let columns = [ints(&[Some((1 << 53) + 1), Some(1 << 53)])];
    let eq = Expr::binary(BinaryOp::Eq, col(0, DataType::I64), int((1 << 53) + 1));
    assert_eq!(
        values(&eq, &columns),
        vec![Scalar::Bool(true), Scalar::Bool(false)]
    );
    let list = Expr::InList {
        arg: Box::new(col(0, DataType::I64)),
        list: vec![Scalar::Int(1 << 53)],
        negated: false,
    };
    assert_eq!(
        values(&list, &columns),
        vec![Scalar::Bool(false), Scalar::Bool(true)]
    );
}

#[test]
fn three_valued_logic() {
    let columns = [
        ints(&[Some(1), Some(1), Some(1), Some(0), Some(0), None]),
        ints(&[Some(1), Some(0), None, Some(0), None, None]),
    ];
    let t = |slot| Expr::binary(BinaryOp::Eq, col(slot, DataType::I64), int(1));
    use Scalar::{Bool, Null};
    assert_eq!(
        values(&Expr::binary(BinaryOp::And, t(0), t(1)), &columns),
        vec![
            Bool(true),
            Bool(false),
            Null,
            Bool(false),
            Bool(false),
            Null
        ]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::Or, t(0), t(1)), &columns),
        vec![Bool(true), Bool(true), Bool(true), Bool(false), Null, Null]
    );
    assert_eq!(
        values(&Expr::negation(t(1)), &columns),
        vec![Bool(false), Bool(true), Null, Bool(true), Null, Null]
    );
    // Filters keep TRUE rows only.
    let batch = Batch::new(&columns, 6);
    let kept = eval_filter(&Expr::binary(BinaryOp::Or, t(0), t(1)), &batch).unwrap();
    assert_eq!(crate::batch::selection_of(&kept), vec![0, 1, 2]);
}

#[test]
fn null_safe_equality_and_is_null() {
    let columns = [floats(&[Some(1.0), None])];
    let expr = Expr::binary(
        BinaryOp::NullSafeEq,
        col(0, DataType::F64),
        lit(Scalar::Null),
    );
    assert_eq!(
        values(&expr, &columns),
        vec![Scalar::Bool(false), Scalar::Bool(true)]
    );
    let expr = Expr::IsNull {
        arg: Box::new(col(0, DataType::F64)),
        negated: true,
    };
    assert_eq!(
        values(&expr, &columns),
        vec![Scalar::Bool(true), Scalar::Bool(false)]
    );
}

#[test]
fn in_list_with_null_is_unknown_when_not_found() {
    let columns = [ints(&[Some(1), Some(2), None])];
    let expr = |negated| Expr::InList {
        arg: Box::new(col(0, DataType::I64)),
        list: vec![Scalar::Int(1), Scalar::Null],
        negated,
    };
    use Scalar::{Bool, Null};
    assert_eq!(values(&expr(false), &columns), vec![Bool(true), Null, Null]);
    assert_eq!(values(&expr(true), &columns), vec![Bool(false), Null, Null]);
}

#[test]
fn text_compares_without_case() {
    let text = Some(ColumnData::Utf8(VarColumn::from_options(&[
        Some("R"),
        Some("g"),
        None,
    ])));
    let columns = [text];
    let eq = Expr::binary(
        BinaryOp::Eq,
        col(0, DataType::Utf8),
        lit(Scalar::Utf8("r".into())),
    );
    use Scalar::{Bool, Null};
    assert_eq!(values(&eq, &columns), vec![Bool(true), Bool(false), Null]);
    let like = Expr::Like {
        arg: Box::new(col(0, DataType::Utf8)),
        pattern: LikePattern::new(b"G%", b'\\', true),
        negated: true,
    };
    assert_eq!(values(&like, &columns), vec![Bool(true), Bool(false), Null]);
}

#[test]
fn bit_operators_and_shifts() {
    let columns = [ints(&[Some(6), Some(-1)])];
    let x = || col(0, DataType::I64);
    use Scalar::Int;
    assert_eq!(
        values(&Expr::binary(BinaryOp::BitAnd, x(), int(3)), &columns),
        vec![Int(2), Int(3)]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::Shr, x(), int(1)), &columns),
        vec![Int(3), Int(i64::MAX)]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::Shl, x(), int(64)), &columns),
        vec![Int(0), Int(0)]
    );
    assert_eq!(
        values(&Expr::binary(BinaryOp::BitXor, x(), int(3)), &columns),
        vec![Int(5), Int(-4)]
    );
}

#[test]
fn case_and_functions() {
    let columns = [floats(&[Some(-4.0), Some(9.0), None, Some(2.5)])];
    let x = || col(0, DataType::F64);
    use Scalar::{Float, Null, Utf8};
    let sqrt = Expr::Call {
        func: Func::Sqrt,
        args: vec![x()],
        data_type: DataType::F64,
    };
    assert_eq!(
        values(&sqrt, &columns),
        vec![Null, Float(3.0), Null, Float(2.5f64.sqrt())]
    );
    let round = Expr::Call {
        func: Func::Round,
        args: vec![x()],
        data_type: DataType::F64,
    };
    assert_eq!(
        values(&round, &columns),
        vec![Float(-4.0), Float(9.0), Null, Float(3.0)]
    );
    let case = Expr::Case {
        operand: None,
        branches: vec![
            (
                Expr::binary(BinaryOp::Lt, x(), int(0)),
                lit(Utf8("neg".into())),
            ),
            (
                Expr::binary(BinaryOp::Gt, x(), int(5)),
                lit(Utf8("big".into())),
            ),
        ],
        otherwise: Some(Box::new(lit(Utf8("other".into())))),
        data_type: DataType::Utf8,
    };
    assert_eq!(
        values(&case, &columns),
        vec![
            Utf8("neg".into()),
            Utf8("big".into()),
            Utf8("other".into()),
            Utf8("other".into())
        ]
    );
    let coalesce = Expr::Call {
        func: Func::Coalesce,
        args: vec![x(), lit(Float(0.0))],
        data_type: DataType::F64,
    };
    assert_eq!(
        values(&coalesce, &columns),
        vec![Float(-4.0), Float(9.0), Float(0.0), Float(2.5)]
    );
}

#[test]
fn constants_fold_to_scalars() {
    let expr = Expr::binary(
        BinaryOp::Mul,
        Expr::binary(BinaryOp::Add, int(1), int(2)),
        lit(Scalar::Float(1.5)),
    );
    assert_eq!(eval_constant(&expr).unwrap(), Scalar::Float(4.5));
    assert_eq!(
        eval_constant(&Expr::binary(BinaryOp::Lt, int(1), lit(Scalar::Null))).unwrap(),
        Scalar::Null
    );
}

#[test]
fn bool_columns_are_integers_in_arithmetic() {
    let columns = [Some(ColumnData::Bool(BoolColumn::from_options(&[
        Some(true),
        Some(false),
    ])))];
    let expr = Expr::binary(BinaryOp::Add, col(0, DataType::Bool), int(1));
    assert_eq!(
        values(&expr, &columns),
        vec![Scalar::Int(2), Scalar::Int(1)]
    );
}
