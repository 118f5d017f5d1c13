//! Binding: sqlparser's AST expressions become the kernel's typed
//! [`Expr`], with column names resolved to slots of the [`Scope`],
//! uncorrelated subqueries executed and replaced by their values, and
//! (after GROUP BY) aggregates collected into [`AggSpec`]s.

use sqlparser::ast::{
    self, BinaryOperator, CeilFloorKind, DuplicateTreatment, FunctionArg, FunctionArgExpr,
    FunctionArguments, Spanned, UnaryOperator,
};
use sqlparser::tokenizer::Span;

use skyscan_kernel::agg::AggSpec;
use skyscan_kernel::eval::eval_constant;
use skyscan_kernel::expr::{AggFunc, BinaryOp, Expr, Func, UnaryOp};
use skyscan_kernel::like::LikePattern;
use skyscan_kernel::value::{DataType, Scalar};

use super::QueryResult;
use super::error::{ErrorKind, QueryError, Result, SqlPosition};
use super::scope::Scope;

/// The SQL text, for error positions and output column names.
#[derive(Debug, Clone)]
pub struct SourceText {
    text: String,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

impl SourceText {
    /// Wraps `text`.
    pub fn new(text: &str) -> SourceText {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceText {
            text: text.to_string(),
            line_starts,
        }
    }

    fn offset(&self, line: u64, column: u64) -> Option<usize> {
        let start = *self
            .line_starts
            .get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let line_text = &self.text[start..];
        let column = usize::try_from(column).ok()?.checked_sub(1)?;
        // sqlparser counts columns in characters.
        let byte = line_text
            .char_indices()
            .nth(column)
            .map_or(line_text.len(), |(i, _)| i);
        Some(start + byte)
    }

    /// The text of an expression: its span, extended to the closing
    /// parenthesis when the span stops inside a call (sqlparser's spans of
    /// function calls end at the name).
    pub fn expression_text(&self, span: Span) -> Option<String> {
        if span.start.line == 0 {
            return None;
        }
        let start = self.offset(span.start.line, span.start.column)?;
        let mut end = self.offset(span.end.line, span.end.column)?.max(start);
        let bytes = self.text.as_bytes();
        let depth_of = |text: &[u8]| {
            let mut depth = 0i64;
            let mut quote: Option<u8> = None;
            for &b in text {
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'\'' || b == b'"' || b == b'`' => quote = Some(b),
                    None if b == b'(' => depth += 1,
                    None if b == b')' => depth -= 1,
                    None => {}
                }
            }
            depth
        };
        let mut depth = depth_of(&bytes[start..end]);
        let mut probe = end;
        while probe < bytes.len() && bytes[probe].is_ascii_whitespace() {
            probe += 1;
        }
        if depth > 0 || (probe < bytes.len() && bytes[probe] == b'(') {
            let mut quote: Option<u8> = None;
            let mut i = if depth > 0 { end } else { probe };
            let mut seen_open = depth > 0;
            while i < bytes.len() {
                let b = bytes[i];
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'\'' || b == b'"' || b == b'`' => quote = Some(b),
                    None if b == b'(' => {
                        depth += 1;
                        seen_open = true;
                    }
                    None if b == b')' => depth -= 1,
                    None => {}
                }
                i += 1;
                if seen_open && depth == 0 {
                    end = i;
                    break;
                }
            }
        }
        self.text.get(start..end).map(|s| s.trim().to_string())
    }

    /// The position a span starts at.
    pub fn position(span: Span) -> Option<SqlPosition> {
        (span.start.line > 0).then_some(SqlPosition {
            line: span.start.line,
            column: span.start.column,
        })
    }
}

/// Runs uncorrelated subqueries for the binder.
pub trait SubqueryRunner {
    /// Executes `query` and returns its whole result.
    fn run_subquery(&self, query: &ast::Query) -> Result<QueryResult>;
}

/// Limits the binder enforces.
#[derive(Debug, Clone, Copy)]
pub struct BindLimits {
    /// Most elements of an IN list (literal or from a subquery).
    pub max_in_list: usize,
    /// Deepest expression nesting.
    pub max_depth: usize,
}

impl Default for BindLimits {
    fn default() -> Self {
        BindLimits {
            max_in_list: 1_000_000,
            max_depth: 256,
        }
    }
}

/// The aggregation a post-GROUP-BY expression is bound against: the group
/// keys (bound over the input) and the aggregates found so far. In the
/// aggregate output, slot `k` is key `k`, slot `keys.len() + a` aggregate `a`.
#[derive(Debug, Clone, Default)]
pub struct AggContext {
    /// Group keys.
    pub keys: Vec<Expr>,
    /// Aggregates.
    pub aggs: Vec<AggSpec>,
}

impl AggContext {
    fn agg_slot(&mut self, spec: AggSpec) -> Expr {
        let data_type = spec.result_type();
        let index = match self.aggs.iter().position(|s| *s == spec) {
            Some(index) => index,
            None => {
                self.aggs.push(spec);
                self.aggs.len() - 1
            }
        };
        Expr::column(self.keys.len() + index, data_type)
    }
}

enum Mode<'m> {
    Input,
    PostAgg(&'m mut AggContext),
}

/// Binds expressions over a scope.
pub struct Binder<'a> {
    /// The tables.
    pub scope: &'a Scope,
    /// Executes subqueries.
    pub subqueries: &'a dyn SubqueryRunner,
    /// Limits.
    pub limits: BindLimits,
}

fn ident_parts(name: &ast::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ast::ObjectNamePart::Identifier(ident) => ident.value.clone(),
            ast::ObjectNamePart::Function(f) => f.name.value.clone(),
        })
        .collect()
}

/// The last part of a function name, lower-cased.
pub fn function_name(name: &ast::ObjectName) -> String {
    ident_parts(name)
        .last()
        .cloned()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whether `name` is a Qserv spatial restrictor.
pub fn is_areaspec(name: &str) -> bool {
    name.starts_with("qserv_areaspec_")
}

/// Whether an expression contains an aggregate call (outside subqueries).
pub fn contains_aggregate(expr: &ast::Expr) -> bool {
    let mut found = false;
    visit(expr, &mut |e| {
        if let ast::Expr::Function(f) = e
            && AggFunc::from_name(&function_name(&f.name)).is_some()
        {
            found = true;
        }
    });
    found
}

fn contains_subquery(expr: &ast::Expr) -> bool {
    let mut found = false;
    visit(expr, &mut |e| {
        if matches!(
            e,
            ast::Expr::Subquery(_) | ast::Expr::InSubquery { .. } | ast::Expr::Exists { .. }
        ) {
            found = true;
        }
    });
    found
}

/// Calls `f` on `expr` and the expressions below it (not into subqueries).
pub fn visit(expr: &ast::Expr, f: &mut impl FnMut(&ast::Expr)) {
    f(expr);
    match expr {
        ast::Expr::BinaryOp { left, right, .. } => {
            visit(left, f);
            visit(right, f);
        }
        ast::Expr::UnaryOp { expr, .. }
        | ast::Expr::Nested(expr)
        | ast::Expr::IsNull(expr)
        | ast::Expr::IsNotNull(expr)
        | ast::Expr::IsTrue(expr)
        | ast::Expr::IsFalse(expr)
        | ast::Expr::Cast { expr, .. }
        | ast::Expr::Ceil { expr, .. }
        | ast::Expr::Floor { expr, .. }
        | ast::Expr::InSubquery { expr, .. } => visit(expr, f),
        ast::Expr::InList { expr, list, .. } => {
            visit(expr, f);
            list.iter().for_each(|e| visit(e, f));
        }
        ast::Expr::Between {
            expr, low, high, ..
        } => {
            visit(expr, f);
            visit(low, f);
            visit(high, f);
        }
        ast::Expr::Like { expr, pattern, .. } => {
            visit(expr, f);
            visit(pattern, f);
        }
        ast::Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(operand) = operand {
                visit(operand, f);
            }
            for when in conditions {
                visit(&when.condition, f);
                visit(&when.result, f);
            }
            if let Some(e) = else_result {
                visit(e, f);
            }
        }
        ast::Expr::Function(function) => {
            if let FunctionArguments::List(list) = &function.args {
                for arg in &list.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                        visit(e, f);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The constant a literal AST value stands for.
pub fn literal(value: &ast::Value) -> Result<Scalar> {
    Ok(match value {
        ast::Value::Number(text, _) => parse_number(text)?,
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
            Scalar::Utf8(s.clone())
        }
        ast::Value::HexStringLiteral(hex) => Scalar::Binary(parse_hex(hex)?),
        ast::Value::Boolean(b) => Scalar::Bool(*b),
        ast::Value::Null => Scalar::Null,
        other => {
            return Err(QueryError::unsupported(format!(
                "literal {other} is not supported"
            )));
        }
    })
}

fn parse_number(text: &str) -> Result<Scalar> {
    let integral = text.bytes().all(|b| b.is_ascii_digit());
    if integral && let Ok(value) = text.parse::<i64>() {
        return Ok(Scalar::Int(value));
    }
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(Scalar::Float)
        .ok_or_else(|| QueryError::invalid(format!("number {text} is out of range")))
}

fn parse_hex(hex: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = hex.bytes().collect();
    let padded: Vec<u8> = if digits.len() % 2 == 1 {
        std::iter::once(b'0').chain(digits).collect()
    } else {
        digits
    };
    padded
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).unwrap_or("zz");
            u8::from_str_radix(text, 16)
                .map_err(|_| QueryError::syntax(format!("bad hex literal X'{hex}'")))
        })
        .collect()
}

/// The common type of the branches of CASE / COALESCE / IF (MySQL's rules,
/// simplified: any string → string, any float → double, else integer).
pub fn common_type(types: &[DataType]) -> DataType {
    let concrete: Vec<DataType> = types
        .iter()
        .copied()
        .filter(|t| *t != DataType::Null)
        .collect();
    if concrete.is_empty() {
        return DataType::Null;
    }
    if concrete.contains(&DataType::Binary) {
        DataType::Binary
    } else if concrete.contains(&DataType::Utf8) {
        DataType::Utf8
    } else if concrete.iter().all(|t| *t == concrete[0]) {
        concrete[0]
    } else if concrete.iter().any(|t| t.is_float()) {
        DataType::F64
    } else if concrete.iter().all(|t| *t == DataType::Bool) {
        DataType::Bool
    } else {
        DataType::I64
    }
}

fn binary_op(op: &BinaryOperator) -> Option<BinaryOp> {
    Some(match op {
        BinaryOperator::Plus => BinaryOp::Add,
        BinaryOperator::Minus => BinaryOp::Sub,
        BinaryOperator::Multiply => BinaryOp::Mul,
        BinaryOperator::Divide => BinaryOp::Div,
        BinaryOperator::MyIntegerDivide => BinaryOp::IntDiv,
        BinaryOperator::Modulo => BinaryOp::Mod,
        BinaryOperator::Eq => BinaryOp::Eq,
        BinaryOperator::NotEq => BinaryOp::NotEq,
        BinaryOperator::Lt => BinaryOp::Lt,
        BinaryOperator::LtEq => BinaryOp::LtEq,
        BinaryOperator::Gt => BinaryOp::Gt,
        BinaryOperator::GtEq => BinaryOp::GtEq,
        BinaryOperator::Spaceship => BinaryOp::NullSafeEq,
        BinaryOperator::And => BinaryOp::And,
        // `||` is OR in MySQL's default mode.
        BinaryOperator::Or | BinaryOperator::StringConcat => BinaryOp::Or,
        BinaryOperator::Xor => BinaryOp::Xor,
        BinaryOperator::BitwiseAnd => BinaryOp::BitAnd,
        BinaryOperator::BitwiseOr => BinaryOp::BitOr,
        BinaryOperator::BitwiseXor => BinaryOp::BitXor,
        BinaryOperator::PGBitwiseShiftLeft => BinaryOp::Shl,
        BinaryOperator::PGBitwiseShiftRight => BinaryOp::Shr,
        _ => return None,
    })
}

/// The argument expressions of a function call.
pub fn function_args(function: &ast::Function) -> Result<(Vec<&ast::Expr>, bool, bool)> {
    match &function.args {
        FunctionArguments::None => Ok((Vec::new(), false, false)),
        FunctionArguments::Subquery(_) => Err(QueryError::unsupported(format!(
            "a subquery as the argument of {}",
            function.name
        ))),
        FunctionArguments::List(list) => {
            let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
            let mut star = false;
            let mut exprs = Vec::with_capacity(list.args.len());
            for arg in &list.args {
                match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => exprs.push(e),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                    other => {
                        return Err(QueryError::unsupported(format!(
                            "argument `{other}` of {}",
                            function.name
                        )));
                    }
                }
            }
            if !list.clauses.is_empty() {
                return Err(QueryError::unsupported(format!(
                    "clauses inside the arguments of {}",
                    function.name
                )));
            }
            Ok((exprs, distinct, star))
        }
    }
}

/// The result type of a scalar function.
fn function_type(func: Func, args: &[Expr]) -> DataType {
    let types: Vec<DataType> = args.iter().map(Expr::data_type).collect();
    let first = types.first().copied().unwrap_or(DataType::Null);
    match func {
        Func::Abs | Func::Sign | Func::Floor | Func::Ceil | Func::Round | Func::Truncate => {
            if first.is_integer() {
                DataType::I64
            } else {
                DataType::F64
            }
        }
        Func::Coalesce | Func::IfNull | Func::Greatest | Func::Least => common_type(&types),
        Func::NullIf => first,
        Func::If => common_type(&types[1.min(types.len())..]),
        Func::Hex | Func::Upper | Func::Lower => DataType::Utf8,
        Func::Concat => {
            if types.contains(&DataType::Binary) {
                DataType::Binary
            } else {
                DataType::Utf8
            }
        }
        Func::Length | Func::CharLength => DataType::I64,
        Func::PtInBox | Func::PtInCircle | Func::PtInEllipse | Func::PtInCPoly => DataType::Bool,
        _ => DataType::F64,
    }
}

/// The type a `CAST(… AS t)` target names.
fn cast_type(data_type: &ast::DataType) -> Result<DataType> {
    let text = data_type.to_string().to_ascii_lowercase();
    let base = text.split(['(', ' ']).next().unwrap_or("");
    Ok(match base {
        "signed" | "unsigned" | "int" | "integer" | "bigint" | "smallint" | "tinyint" => {
            DataType::I64
        }
        "double" | "float" | "real" | "decimal" | "numeric" | "dec" => DataType::F64,
        "char" | "varchar" | "text" | "nchar" | "string" => DataType::Utf8,
        "binary" | "varbinary" | "blob" => DataType::Binary,
        _ => return Err(QueryError::unsupported(format!("CAST to {data_type}"))),
    })
}

impl Binder<'_> {
    fn error_at(&self, err: QueryError, expr: &ast::Expr) -> QueryError {
        err.at(SourceText::position(expr.span()))
    }

    /// Binds an expression over the input rows (no aggregates allowed).
    pub fn bind(&self, expr: &ast::Expr) -> Result<Expr> {
        self.bind_in(expr, &mut Mode::Input, 0)
    }

    /// Binds an expression over the output of an aggregation: aggregate
    /// calls become slots of `context.aggs`, subexpressions equal to a group
    /// key become key slots, and a column that is neither is taken from
    /// one row of its group (MySQL without ONLY_FULL_GROUP_BY; skyscan takes
    /// the smallest value, so the answer is repeatable).
    pub fn bind_post_agg(&self, expr: &ast::Expr, context: &mut AggContext) -> Result<Expr> {
        self.bind_in(expr, &mut Mode::PostAgg(context), 0)
    }

    fn bind_in(&self, expr: &ast::Expr, mode: &mut Mode<'_>, depth: usize) -> Result<Expr> {
        if depth > self.limits.max_depth {
            return Err(self.error_at(
                QueryError::limit(format!(
                    "expression nested deeper than {}",
                    self.limits.max_depth
                )),
                expr,
            ));
        }
        if let Mode::PostAgg(context) = mode
            && !contains_aggregate(expr)
            && !contains_subquery(expr)
        {
            let bound = self.bind_in(expr, &mut Mode::Input, depth)?;
            if let Some(index) = context.keys.iter().position(|k| *k == bound) {
                return Ok(Expr::column(index, bound.data_type()));
            }
            if bound.is_constant() {
                return Ok(bound);
            }
            if let Expr::Column { .. } = bound {
                let spec = AggSpec {
                    func: AggFunc::Min,
                    args: vec![bound],
                    distinct: false,
                };
                return Ok(context.agg_slot(spec));
            }
            // Otherwise bind the parts: keys and columns inside it resolve below.
        }
        self.bind_node(expr, mode, depth)
            .map_err(|e| self.error_at(e, expr))
    }

    fn bind_node(&self, expr: &ast::Expr, mode: &mut Mode<'_>, depth: usize) -> Result<Expr> {
        let next = depth + 1;
        match expr {
            ast::Expr::Identifier(ident) => self.column(std::slice::from_ref(&ident.value)),
            ast::Expr::CompoundIdentifier(idents) => {
                self.column(&idents.iter().map(|i| i.value.clone()).collect::<Vec<_>>())
            }
            ast::Expr::Value(value) => Ok(Expr::literal(literal(&value.value)?)),
            ast::Expr::Nested(inner) => self.bind_in(inner, mode, next),
            ast::Expr::BinaryOp { left, op, right } => {
                let op = binary_op(op)
                    .ok_or_else(|| QueryError::unsupported(format!("operator {op}")))?;
                let l = self.bind_in(left, mode, next)?;
                let r = self.bind_in(right, mode, next)?;
                Ok(Expr::binary(op, l, r))
            }
            ast::Expr::UnaryOp { op, expr: inner } => {
                let arg = self.bind_in(inner, mode, next)?;
                Ok(match op {
                    UnaryOperator::Plus => arg,
                    UnaryOperator::Minus => match arg {
                        // Keep `-5` a literal (and `-9223372036854775808` in range).
                        Expr::Literal(Scalar::Int(v)) => {
                            Expr::literal(Scalar::Int(v.wrapping_neg()))
                        }
                        Expr::Literal(Scalar::Float(v)) => Expr::literal(Scalar::Float(-v)),
                        other => Expr::Unary {
                            op: UnaryOp::Neg,
                            arg: Box::new(other),
                        },
                    },
                    UnaryOperator::Not | UnaryOperator::BangNot => Expr::negation(arg),
                    UnaryOperator::PGBitwiseNot => Expr::Unary {
                        op: UnaryOp::BitNot,
                        arg: Box::new(arg),
                    },
                    other => return Err(QueryError::unsupported(format!("operator {other}"))),
                })
            }
            ast::Expr::IsNull(inner) | ast::Expr::IsNotNull(inner) => Ok(Expr::IsNull {
                arg: Box::new(self.bind_in(inner, mode, next)?),
                negated: matches!(expr, ast::Expr::IsNotNull(_)),
            }),
            ast::Expr::IsTrue(inner) | ast::Expr::IsFalse(inner) => {
                // x IS TRUE: never NULL; TRUE exactly when x is true.
                let arg = self.bind_in(inner, mode, next)?;
                let value = Scalar::Bool(matches!(expr, ast::Expr::IsTrue(_)));
                Ok(Expr::binary(
                    BinaryOp::NullSafeEq,
                    Expr::Cast {
                        arg: Box::new(arg),
                        to: DataType::Bool,
                    },
                    Expr::literal(value),
                ))
            }
            ast::Expr::Between {
                expr: inner,
                negated,
                low,
                high,
            } => {
                let value = self.bind_in(inner, mode, next)?;
                let low = self.bind_in(low, mode, next)?;
                let high = self.bind_in(high, mode, next)?;
                let between = Expr::binary(
                    BinaryOp::And,
                    Expr::binary(BinaryOp::GtEq, value.clone(), low),
                    Expr::binary(BinaryOp::LtEq, value, high),
                );
                Ok(if *negated {
                    Expr::negation(between)
                } else {
                    between
                })
            }
            ast::Expr::InList {
                expr: inner,
                list,
                negated,
            } => {
                if list.len() > self.limits.max_in_list {
                    return Err(QueryError::limit(format!(
                        "IN list of {} values (at most {})",
                        list.len(),
                        self.limits.max_in_list
                    )));
                }
                let arg = self.bind_in(inner, mode, next)?;
                let items: Vec<Expr> = list
                    .iter()
                    .map(|e| self.bind_in(e, mode, next))
                    .collect::<Result<_>>()?;
                if items.iter().all(Expr::is_constant) {
                    let values = items
                        .iter()
                        .map(eval_constant)
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(Expr::InList {
                        arg: Box::new(arg),
                        list: values,
                        negated: *negated,
                    });
                }
                // Non-constant elements: a disjunction of equalities.
                let any = items
                    .into_iter()
                    .map(|item| Expr::binary(BinaryOp::Eq, arg.clone(), item))
                    .reduce(|a, b| Expr::binary(BinaryOp::Or, a, b))
                    .unwrap_or(Expr::literal(Scalar::Bool(false)));
                Ok(if *negated { Expr::negation(any) } else { any })
            }
            ast::Expr::InSubquery {
                expr: inner,
                subquery,
                negated,
            } => {
                let arg = self.bind_in(inner, mode, next)?;
                let result = self.run_subquery(subquery)?;
                if result.columns.len() != 1 {
                    return Err(QueryError::invalid(format!(
                        "the subquery of IN returns {} columns, not 1",
                        result.columns.len()
                    )));
                }
                let values = result.column_values(0);
                if values.len() > self.limits.max_in_list {
                    return Err(QueryError::limit(format!(
                        "the subquery of IN returns {} values (at most {})",
                        values.len(),
                        self.limits.max_in_list
                    )));
                }
                Ok(Expr::InList {
                    arg: Box::new(arg),
                    list: values,
                    negated: *negated,
                })
            }
            ast::Expr::Subquery(subquery) => {
                let result = self.run_subquery(subquery)?;
                if result.columns.len() != 1 {
                    return Err(QueryError::invalid(format!(
                        "a scalar subquery returns {} columns, not 1",
                        result.columns.len()
                    )));
                }
                let values = result.column_values(0);
                match values.as_slice() {
                    [] => Ok(Expr::literal(Scalar::Null)),
                    [one] => Ok(Expr::literal(one.clone())),
                    _ => Err(QueryError::invalid("Subquery returns more than 1 row")),
                }
            }
            ast::Expr::Exists { subquery, negated } => {
                let result = self.run_subquery(subquery)?;
                Ok(Expr::literal(Scalar::Bool((result.rows() > 0) != *negated)))
            }
            ast::Expr::Like {
                negated,
                any,
                expr: inner,
                pattern,
                escape_char,
            } => {
                if *any {
                    return Err(QueryError::unsupported("LIKE ANY"));
                }
                let arg = self.bind_in(inner, mode, next)?;
                let pattern = self.bind_in(pattern, mode, next)?;
                if !pattern.is_constant() {
                    return Err(QueryError::unsupported(
                        "LIKE with a pattern that is not a constant",
                    ));
                }
                let pattern_value = eval_constant(&pattern)?;
                let escape = match escape_char {
                    None => b'\\',
                    Some(value) => match literal(value)? {
                        Scalar::Utf8(s) if s.len() == 1 => s.as_bytes()[0],
                        _ => return Err(QueryError::invalid("ESCAPE takes one character")),
                    },
                };
                let Some(bytes) = pattern_value.as_bytes() else {
                    if pattern_value.is_null() {
                        return Ok(Expr::literal(Scalar::Null));
                    }
                    return Err(QueryError::type_error("LIKE needs a string pattern"));
                };
                let text = arg.data_type() != DataType::Binary;
                Ok(Expr::Like {
                    arg: Box::new(arg),
                    pattern: LikePattern::new(bytes, escape, text),
                    negated: *negated,
                })
            }
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = operand
                    .as_ref()
                    .map(|o| self.bind_in(o, mode, next).map(Box::new))
                    .transpose()?;
                let mut branches = Vec::with_capacity(conditions.len());
                for when in conditions {
                    branches.push((
                        self.bind_in(&when.condition, mode, next)?,
                        self.bind_in(&when.result, mode, next)?,
                    ));
                }
                let otherwise = else_result
                    .as_ref()
                    .map(|e| self.bind_in(e, mode, next).map(Box::new))
                    .transpose()?;
                let mut types: Vec<DataType> =
                    branches.iter().map(|(_, t)| t.data_type()).collect();
                if let Some(o) = &otherwise {
                    types.push(o.data_type());
                }
                let data_type = match common_type(&types) {
                    DataType::Null => DataType::I64,
                    t => t,
                };
                Ok(Expr::Case {
                    operand,
                    branches,
                    otherwise,
                    data_type,
                })
            }
            ast::Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => Ok(Expr::Cast {
                arg: Box::new(self.bind_in(inner, mode, next)?),
                to: cast_type(data_type)?,
            }),
            ast::Expr::Ceil { expr: inner, field } | ast::Expr::Floor { expr: inner, field } => {
                if let CeilFloorKind::Scale(_) | CeilFloorKind::DateTimeField(_) = field
                    && !matches!(
                        field,
                        CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)
                    )
                {
                    return Err(QueryError::unsupported(format!("{expr}")));
                }
                let arg = self.bind_in(inner, mode, next)?;
                let func = if matches!(expr, ast::Expr::Ceil { .. }) {
                    Func::Ceil
                } else {
                    Func::Floor
                };
                let args = vec![arg];
                let data_type = function_type(func, &args);
                Ok(Expr::Call {
                    func,
                    args,
                    data_type,
                })
            }
            ast::Expr::Function(function) => self.function(function, mode, next),
            other => Err(QueryError::unsupported(format!("expression `{other}`"))),
        }
    }

    fn column(&self, parts: &[String]) -> Result<Expr> {
        let (table, column) = self.scope.resolve(parts)?;
        let data_type = self.scope.tables[table].column_type(column);
        Ok(Expr::column(self.scope.slot(table, column), data_type))
    }

    fn run_subquery(&self, query: &ast::Query) -> Result<QueryResult> {
        self.subqueries.run_subquery(query).map_err(|e| {
            if e.kind == ErrorKind::Name {
                QueryError::new(
                    ErrorKind::Name,
                    format!(
                        "{} (in a subquery; correlated subqueries are not supported)",
                        e.message
                    ),
                )
                .at(e.position)
            } else {
                e
            }
        })
    }

    fn function(
        &self,
        function: &ast::Function,
        mode: &mut Mode<'_>,
        depth: usize,
    ) -> Result<Expr> {
        let name = function_name(&function.name);
        if function.over.is_some() {
            return Err(QueryError::unsupported(format!(
                "window function {}",
                function.name
            )));
        }
        if is_areaspec(&name) {
            return Err(QueryError::invalid(format!(
                "{name} is a spatial restrictor: it must be a top-level condition of WHERE \
                 (at most one, combined with AND)"
            )));
        }
        let (arg_asts, distinct, star) = function_args(function)?;
        if let Some(agg) = AggFunc::from_name(&name) {
            let Mode::PostAgg(context) = mode else {
                return Err(QueryError::invalid(format!(
                    "aggregate {} is not allowed here (only in SELECT, HAVING and ORDER BY)",
                    function.name
                )));
            };
            if star && agg != AggFunc::Count {
                return Err(QueryError::invalid(format!(
                    "{}(*) is not valid",
                    function.name
                )));
            }
            let args = arg_asts
                .iter()
                .map(|a| {
                    if contains_aggregate(a) {
                        Err(QueryError::invalid("aggregates cannot be nested"))
                    } else {
                        self.bind_in(a, &mut Mode::Input, depth)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let expected = if agg == AggFunc::Count && star { 0 } else { 1 };
            let count_ok =
                args.len() == expected || (agg == AggFunc::Count && distinct && !args.is_empty());
            if !count_ok {
                return Err(QueryError::type_error(format!(
                    "{} takes {expected} argument(s), got {}",
                    function.name,
                    args.len()
                )));
            }
            let spec = AggSpec {
                func: agg,
                args,
                distinct,
            };
            return Ok(context.agg_slot(spec));
        }
        let func = Func::from_name(&name)
            .ok_or_else(|| QueryError::name(format!("unknown function {}", function.name)))?;
        if distinct || star {
            return Err(QueryError::invalid(format!(
                "{} takes no DISTINCT or *",
                function.name
            )));
        }
        let (min, max) = func.arity();
        if arg_asts.len() < min || arg_asts.len() > max {
            let expected = if min == max {
                min.to_string()
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(QueryError::type_error(format!(
                "{} takes {expected} arguments, got {}",
                function.name,
                arg_asts.len()
            )));
        }
        if func == Func::PtInCPoly && arg_asts.len() % 2 != 0 {
            return Err(QueryError::type_error(format!(
                "{} takes a point and pairs of vertex coordinates: an even number of arguments",
                function.name
            )));
        }
        let args = arg_asts
            .iter()
            .map(|a| self.bind_in(a, mode, depth))
            .collect::<Result<Vec<_>>>()?;
        let data_type = function_type(func, &args);
        Ok(Expr::Call {
            func,
            args,
            data_type,
        })
    }
}
