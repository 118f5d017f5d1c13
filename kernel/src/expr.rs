//! Bound expressions: what the planner produces from SQL, with column
//! references resolved to batch slots and every node's type known.

use crate::like::LikePattern;
use crate::scisql::Photometry;
use crate::value::{DataType, Scalar};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (always a double in MySQL; division by zero is NULL)
    Div,
    /// `DIV` (integer division, truncating; by zero is NULL)
    IntDiv,
    /// `%`, `MOD` (sign of the dividend; by zero is NULL)
    Mod,
    /// `=`
    Eq,
    /// `<>`, `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `<=>` (NULL-safe equality: never NULL)
    NullSafeEq,
    /// `AND`, `&&`
    And,
    /// `OR`, `||`
    Or,
    /// `XOR`
    Xor,
    /// `&` (on unsigned 64-bit values, as MySQL)
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
    /// `<<`
    Shl,
    /// `>>`
    Shr,
}

impl BinaryOp {
    /// Comparison operators.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
                | BinaryOp::NullSafeEq
        )
    }

    /// Logical connectives.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }

    /// Bit operators (their results are integers).
    pub fn is_bitwise(self) -> bool {
        matches!(
            self,
            BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor | BinaryOp::Shl | BinaryOp::Shr
        )
    }

    /// The comparison with operands swapped (`a < b` ⇔ `b > a`).
    pub fn swapped(self) -> BinaryOp {
        match self {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            other => other,
        }
    }

    /// The SQL spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::IntDiv => "DIV",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::NullSafeEq => "<=>",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Xor => "XOR",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
        }
    }
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `NOT x`, `!x`
    Not,
    /// `~x` (unsigned 64-bit complement)
    BitNot,
}

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Func {
    // Math (double results unless noted).
    Abs,
    Sign,
    Round,
    Truncate,
    Floor,
    Ceil,
    Sqrt,
    Exp,
    Ln,
    Log,
    Log2,
    Log10,
    Pow,
    Sin,
    Cos,
    Tan,
    Cot,
    Asin,
    Acos,
    Atan,
    Atan2,
    Degrees,
    Radians,
    Pi,
    // Control flow and NULLs.
    Coalesce,
    IfNull,
    NullIf,
    If,
    Greatest,
    Least,
    // Strings.
    Hex,
    Length,
    CharLength,
    Concat,
    Upper,
    Lower,
    // sciSQL (BRIEF §3).
    AngSep,
    PtInBox,
    PtInCircle,
    PtInEllipse,
    PtInCPoly,
    Photometry(Photometry),
}

impl Func {
    /// Looks up a function by its SQL name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Func> {
        if let Some(photometry) = Photometry::from_sql_name(name) {
            return Some(Func::Photometry(photometry));
        }
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "abs" => Func::Abs,
            "sign" => Func::Sign,
            "round" => Func::Round,
            "truncate" => Func::Truncate,
            "floor" => Func::Floor,
            "ceil" | "ceiling" => Func::Ceil,
            "sqrt" => Func::Sqrt,
            "exp" => Func::Exp,
            "ln" => Func::Ln,
            "log" => Func::Log,
            "log2" => Func::Log2,
            "log10" => Func::Log10,
            "pow" | "power" => Func::Pow,
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "cot" => Func::Cot,
            "asin" => Func::Asin,
            "acos" => Func::Acos,
            "atan" => Func::Atan,
            "atan2" => Func::Atan2,
            "degrees" => Func::Degrees,
            "radians" => Func::Radians,
            "pi" => Func::Pi,
            "coalesce" => Func::Coalesce,
            "ifnull" => Func::IfNull,
            "nullif" => Func::NullIf,
            "if" => Func::If,
            "greatest" => Func::Greatest,
            "least" => Func::Least,
            "hex" => Func::Hex,
            "length" | "octet_length" => Func::Length,
            "char_length" | "character_length" => Func::CharLength,
            "concat" => Func::Concat,
            "upper" | "ucase" => Func::Upper,
            "lower" | "lcase" => Func::Lower,
            "scisql_angsep" => Func::AngSep,
            "scisql_s2ptinbox" => Func::PtInBox,
            "scisql_s2ptincircle" => Func::PtInCircle,
            "scisql_s2ptinellipse" => Func::PtInEllipse,
            "scisql_s2ptincpoly" => Func::PtInCPoly,
            _ => return None,
        })
    }

    /// The accepted argument counts `(min, max)`; `max = usize::MAX` for variadic.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Pi => (0, 0),
            Func::Round | Func::Log => (1, 2),
            Func::Truncate | Func::Pow | Func::Atan2 | Func::IfNull | Func::NullIf => (2, 2),
            Func::Atan => (1, 2),
            Func::If => (3, 3),
            Func::Coalesce | Func::Concat => (1, usize::MAX),
            Func::Greatest | Func::Least => (2, usize::MAX),
            Func::AngSep => (4, 4),
            Func::PtInBox => (6, 6),
            Func::PtInCircle => (5, 5),
            Func::PtInEllipse => (7, 7),
            // lon, lat and at least 3 vertices.
            Func::PtInCPoly => (8, usize::MAX),
            Func::Photometry(p) => (p.arity(), p.arity()),
            _ => (1, 1),
        }
    }

    /// The SQL name, for messages.
    pub fn name(self) -> String {
        match self {
            Func::Photometry(p) => p.sql_name().to_string(),
            Func::AngSep => "scisql_angSep".to_string(),
            Func::PtInBox => "scisql_s2PtInBox".to_string(),
            Func::PtInCircle => "scisql_s2PtInCircle".to_string(),
            Func::PtInEllipse => "scisql_s2PtInEllipse".to_string(),
            Func::PtInCPoly => "scisql_s2PtInCPoly".to_string(),
            other => format!("{other:?}").to_ascii_uppercase(),
        }
    }
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `COUNT(*)` (argument-less) or `COUNT(x)` (non-null values).
    Count,
    /// `SUM(x)`
    Sum,
    /// `AVG(x)`
    Avg,
    /// `MIN(x)`
    Min,
    /// `MAX(x)`
    Max,
    /// `STDDEV_POP(x)`, `STD(x)`, `STDDEV(x)`
    StddevPop,
    /// `STDDEV_SAMP(x)`
    StddevSamp,
    /// `VAR_POP(x)`, `VARIANCE(x)`
    VarPop,
    /// `VAR_SAMP(x)`
    VarSamp,
}

impl AggFunc {
    /// Looks up an aggregate by its SQL name (case-insensitive).
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "avg" => AggFunc::Avg,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "std" | "stddev" | "stddev_pop" => AggFunc::StddevPop,
            "stddev_samp" => AggFunc::StddevSamp,
            "variance" | "var_pop" => AggFunc::VarPop,
            "var_samp" => AggFunc::VarSamp,
            _ => return None,
        })
    }

    /// The result type for an argument of type `arg`.
    pub fn result_type(self, arg: DataType) -> DataType {
        match self {
            AggFunc::Count => DataType::I64,
            AggFunc::Sum => {
                if arg.is_integer() {
                    DataType::I64
                } else {
                    DataType::F64
                }
            }
            AggFunc::Min | AggFunc::Max => {
                if arg == DataType::Null {
                    DataType::I64
                } else {
                    arg
                }
            }
            _ => DataType::F64,
        }
    }
}

/// A bound expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Column `slot` of the batch.
    Column {
        /// Slot in the batch.
        slot: usize,
        /// The column's type.
        data_type: DataType,
    },
    /// A constant.
    Literal(Scalar),
    /// The `chunkId` pseudo-column (the batch's chunk).
    ChunkId,
    /// The `subChunkId` pseudo-column (the batch's sub-chunk).
    SubChunkId,
    /// A unary operation.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        arg: Box<Expr>,
    },
    /// A binary operation.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `arg IS [NOT] NULL`.
    IsNull {
        /// The operand.
        arg: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `arg [NOT] IN (constants)`.
    InList {
        /// The operand.
        arg: Box<Expr>,
        /// The constants.
        list: Vec<Scalar>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `arg [NOT] LIKE pattern`.
    Like {
        /// The operand.
        arg: Box<Expr>,
        /// The compiled pattern.
        pattern: LikePattern,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`.
    Case {
        /// The operand of the simple form (`CASE x WHEN 1 THEN ..`).
        operand: Option<Box<Expr>>,
        /// `(WHEN, THEN)` pairs.
        branches: Vec<(Expr, Expr)>,
        /// `ELSE` (NULL when absent).
        otherwise: Option<Box<Expr>>,
        /// The result type.
        data_type: DataType,
    },
    /// `CAST(arg AS type)`.
    Cast {
        /// The operand.
        arg: Box<Expr>,
        /// The target type.
        to: DataType,
    },
    /// A scalar function call.
    Call {
        /// The function.
        func: Func,
        /// The arguments.
        args: Vec<Expr>,
        /// The result type.
        data_type: DataType,
    },
}

impl Expr {
    /// A column reference.
    pub fn column(slot: usize, data_type: DataType) -> Expr {
        Expr::Column { slot, data_type }
    }

    /// A literal.
    pub fn literal(scalar: Scalar) -> Expr {
        Expr::Literal(scalar)
    }

    /// A binary node.
    pub fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        }
    }

    /// `NOT arg`.
    pub fn negation(arg: Expr) -> Expr {
        Expr::Unary {
            op: UnaryOp::Not,
            arg: Box::new(arg),
        }
    }

    /// The conjunction of `parts` (TRUE when empty).
    pub fn and_all(parts: Vec<Expr>) -> Expr {
        let mut iter = parts.into_iter();
        let Some(first) = iter.next() else {
            return Expr::Literal(Scalar::Bool(true));
        };
        iter.fold(first, |acc, next| Expr::binary(BinaryOp::And, acc, next))
    }

    /// The static result type.
    pub fn data_type(&self) -> DataType {
        match self {
            Expr::Column { data_type, .. } => *data_type,
            Expr::Literal(scalar) => scalar.data_type(),
            Expr::ChunkId | Expr::SubChunkId => DataType::I64,
            Expr::Unary { op, arg } => match op {
                UnaryOp::Not => DataType::Bool,
                UnaryOp::BitNot => DataType::I64,
                UnaryOp::Neg => {
                    let t = arg.data_type();
                    if t.is_float() || t.is_string() {
                        DataType::F64
                    } else if t == DataType::Null {
                        DataType::Null
                    } else {
                        DataType::I64
                    }
                }
            },
            Expr::Binary { op, left, right } => {
                let (l, r) = (left.data_type(), right.data_type());
                match op {
                    _ if op.is_comparison() || op.is_logical() => DataType::Bool,
                    _ if op.is_bitwise() => DataType::I64,
                    BinaryOp::Div => DataType::F64,
                    BinaryOp::IntDiv => DataType::I64,
                    _ => {
                        if l == DataType::Null || r == DataType::Null {
                            DataType::Null
                        } else {
                            l.arithmetic(r)
                        }
                    }
                }
            }
            Expr::IsNull { .. } | Expr::InList { .. } | Expr::Like { .. } => DataType::Bool,
            Expr::Case { data_type, .. } | Expr::Call { data_type, .. } => *data_type,
            Expr::Cast { to, .. } => *to,
        }
    }

    /// Calls `visit` on this node and every node below it.
    pub fn walk(&self, visit: &mut impl FnMut(&Expr)) {
        visit(self);
        match self {
            Expr::Column { .. } | Expr::Literal(_) | Expr::ChunkId | Expr::SubChunkId => {}
            Expr::Unary { arg, .. }
            | Expr::IsNull { arg, .. }
            | Expr::InList { arg, .. }
            | Expr::Like { arg, .. }
            | Expr::Cast { arg, .. } => arg.walk(visit),
            Expr::Binary { left, right, .. } => {
                left.walk(visit);
                right.walk(visit);
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
                ..
            } => {
                if let Some(operand) = operand {
                    operand.walk(visit);
                }
                for (when, then) in branches {
                    when.walk(visit);
                    then.walk(visit);
                }
                if let Some(otherwise) = otherwise {
                    otherwise.walk(visit);
                }
            }
            Expr::Call { args, .. } => args.iter().for_each(|arg| arg.walk(visit)),
        }
    }

    /// The slots this expression reads.
    pub fn slots(&self) -> Vec<usize> {
        let mut slots = Vec::new();
        self.walk(&mut |node| {
            if let Expr::Column { slot, .. } = node
                && !slots.contains(slot)
            {
                slots.push(*slot);
            }
        });
        slots.sort_unstable();
        slots
    }

    /// Rewrites every column slot with `map`.
    pub fn remap_slots(&mut self, map: &impl Fn(usize) -> usize) {
        match self {
            Expr::Column { slot, .. } => *slot = map(*slot),
            Expr::Literal(_) | Expr::ChunkId | Expr::SubChunkId => {}
            Expr::Unary { arg, .. }
            | Expr::IsNull { arg, .. }
            | Expr::InList { arg, .. }
            | Expr::Like { arg, .. }
            | Expr::Cast { arg, .. } => arg.remap_slots(map),
            Expr::Binary { left, right, .. } => {
                left.remap_slots(map);
                right.remap_slots(map);
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
                ..
            } => {
                if let Some(operand) = operand {
                    operand.remap_slots(map);
                }
                for (when, then) in branches {
                    when.remap_slots(map);
                    then.remap_slots(map);
                }
                if let Some(otherwise) = otherwise {
                    otherwise.remap_slots(map);
                }
            }
            Expr::Call { args, .. } => args.iter_mut().for_each(|arg| arg.remap_slots(map)),
        }
    }

    /// True when the expression reads no column (and no pseudo-column): it
    /// has the same value for every row and can be folded.
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |node| {
            if matches!(node, Expr::Column { .. } | Expr::ChunkId | Expr::SubChunkId) {
                constant = false;
            }
        });
        constant
    }

    /// Splits a conjunction into its parts.
    pub fn conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::Binary {
                op: BinaryOp::And,
                left,
                right,
            } => {
                let mut parts = left.conjuncts();
                parts.extend(right.conjuncts());
                parts
            }
            other => vec![other],
        }
    }
}
