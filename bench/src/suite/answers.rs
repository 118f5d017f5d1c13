//! Answers of every engine in one shape, and their comparison: integers
//! exactly (object ids exceed 2^53), floats to a relative 1e-6 (sums of f32
//! values in different orders), text exactly; multisets of rows sorted
//! first when the query has no ORDER BY.

use std::cmp::Ordering;

use skyscan_engine::query::QueryResult;
use skyscan_kernel::value::Scalar;

/// One value of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// SQL NULL.
    Null,
    /// An integer (also booleans).
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text (also NaN/inf as a peer spells it).
    Text(String),
}

/// Relative tolerance of float comparisons.
const REL_TOLERANCE: f64 = 1e-6;

impl Val {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A total order for sorting multisets: NULL, numbers, text.
    fn order(&self, other: &Val) -> Ordering {
        match (self, other) {
            (Val::Null, Val::Null) => Ordering::Equal,
            (Val::Null, _) => Ordering::Less,
            (_, Val::Null) => Ordering::Greater,
            (Val::Int(a), Val::Int(b)) => a.cmp(b),
            (Val::Text(a), Val::Text(b)) => a.cmp(b),
            (Val::Text(_), _) => Ordering::Greater,
            (_, Val::Text(_)) => Ordering::Less,
            (a, b) => a
                .as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&b.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// Equal within the tolerance.
    fn matches(&self, other: &Val) -> bool {
        match (self, other) {
            (Val::Null, Val::Null) => true,
            (Val::Int(a), Val::Int(b)) => a == b,
            (Val::Text(a), Val::Text(b)) => a == b,
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => {
                    (x - y).abs() <= REL_TOLERANCE * x.abs().max(y.abs()) || (x - y).abs() < 1e-9
                }
                _ => false,
            },
        }
    }
}

/// skyscan's result as rows.
pub fn from_result(result: &QueryResult) -> Vec<Vec<Val>> {
    result
        .to_rows()
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| match v {
                    Scalar::Null => Val::Null,
                    Scalar::Bool(b) => Val::Int(i64::from(b)),
                    Scalar::Int(i) => Val::Int(i),
                    Scalar::Float(f) => Val::Float(f),
                    Scalar::Utf8(s) => Val::Text(s),
                    Scalar::Binary(b) => Val::Text(format!("{b:?}")),
                })
                .collect()
        })
        .collect()
}

/// A peer's rows from its JSON (integers stay integers).
pub fn from_json(rows: &serde_json::Value) -> Vec<Vec<Val>> {
    let Some(rows) = rows.as_array() else {
        return Vec::new();
    };
    rows.iter()
        .map(|row| {
            row.as_array()
                .map(|values| {
                    values
                        .iter()
                        .map(|v| match v {
                            serde_json::Value::Null => Val::Null,
                            serde_json::Value::Bool(b) => Val::Int(i64::from(*b)),
                            serde_json::Value::Number(n) => match n.as_i64() {
                                Some(i) => Val::Int(i),
                                None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
                            },
                            serde_json::Value::String(s) => Val::Text(s.clone()),
                            other => Val::Text(other.to_string()),
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

fn sort_rows(rows: &mut [Vec<Val>]) {
    rows.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.order(y))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
}

/// Checks that `theirs` (with `their_count` rows in all, of which the
/// shipped `theirs`) equals `ours`; the error says where they differ.
pub fn compare(
    ours: &[Vec<Val>],
    theirs: &[Vec<Val>],
    their_count: u64,
    ordered: bool,
) -> Result<(), String> {
    if ours.len() as u64 != their_count {
        return Err(format!("{} rows, the peer {their_count}", ours.len()));
    }
    if theirs.len() != ours.len() {
        return Err(format!(
            "the peer shipped only {} of its {their_count} rows: too many to compare",
            theirs.len()
        ));
    }
    let mut a = ours.to_vec();
    let mut b = theirs.to_vec();
    if !ordered {
        sort_rows(&mut a);
        sort_rows(&mut b);
    }
    for (index, (x, y)) in a.iter().zip(&b).enumerate() {
        if x.len() != y.len() || !x.iter().zip(y).all(|(p, q)| p.matches(q)) {
            return Err(format!("row {index}: skyscan {x:?}, the peer {y:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_exactly_and_floats_within_tolerance() {
        let big = (1i64 << 60) + 1;
        let ours = vec![vec![Val::Int(big), Val::Float(1.0)]];
        let same = vec![vec![Val::Int(big), Val::Float(1.0 + 1e-9)]];
        let off_by_one = vec![vec![Val::Int(big - 1), Val::Float(1.0)]];
        assert!(compare(&ours, &same, 1, true).is_ok());
        assert!(compare(&ours, &off_by_one, 1, true).is_err());
        let far = vec![vec![Val::Int(big), Val::Float(1.001)]];
        assert!(compare(&ours, &far, 1, true).is_err());
    }

    #[test]
    fn multisets_ignore_order_and_counts_must_match() {
        let ours = vec![vec![Val::Int(2)], vec![Val::Int(1)]];
        let theirs = vec![vec![Val::Int(1)], vec![Val::Int(2)]];
        assert!(compare(&ours, &theirs, 2, false).is_ok());
        assert!(compare(&ours, &theirs, 2, true).is_err());
        assert!(compare(&ours, &theirs[..1], 1, false).is_err());
        assert!(compare(&ours, &theirs[..1], 2, false).is_err());
    }

    #[test]
    fn ints_and_floats_compare_by_value() {
        let ours = vec![vec![Val::Int(12), Val::Null, Val::Text("g".into())]];
        let theirs = from_json(&serde_json::json!([[12.0, null, "g"]]));
        assert!(compare(&ours, &theirs, 1, true).is_ok());
        let theirs = from_json(&serde_json::json!([[12.0, 0, "g"]]));
        assert!(compare(&ours, &theirs, 1, true).is_err());
    }
}
