//! The SQL dialect: MySQL as Qserv speaks it.
//!
//! sqlparser's MySQL dialect misses operators Qserv's test queries use and
//! gets some precedences wrong for MySQL; this dialect fixes them, in the
//! order of MySQL's operator precedence (highest first): `!`, `^`,
//! `* / DIV % MOD`, `+ -`, `<< >>`, `&`, `|`, comparisons, `NOT`,
//! `AND &&`, `XOR`, `OR ||`.
//!
//! * `&&` is `AND` and `||` is `OR` (MySQL's default, no PIPES_AS_CONCAT);
//! * `MOD` is `%`; `DIV` binds like `*` (sqlparser's MySQL dialect parsed
//!   the whole rest of the expression as its right operand, and panicked
//!   on a missing one);
//! * `<<` and `>>` are shifts; `!x` is `NOT x`;
//! * `XOR` binds between `AND` and `OR`; `^` above `*`.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator};
use sqlparser::dialect::{Dialect, MySqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// Precedences (sqlparser's scale: `*` = 40, `+` = 30, `=` = 20, `AND` = 10, `OR` = 5).
const PREC_CARET: u8 = 45;
const PREC_MUL: u8 = 40;
const PREC_SHIFT: u8 = 25;
const PREC_AND: u8 = 10;
const PREC_XOR: u8 = 7;
const PREC_OR: u8 = 5;
const PREC_BANG: u8 = 50;

/// MySQL as Qserv speaks it (see the module documentation).
#[derive(Debug)]
pub struct QservDialect {
    mysql: MySqlDialect,
}

impl Default for QservDialect {
    fn default() -> Self {
        QservDialect {
            mysql: MySqlDialect {},
        }
    }
}

impl QservDialect {
    fn binary(
        parser: &mut Parser,
        left: &Expr,
        op: BinaryOperator,
        precedence: u8,
    ) -> Result<Expr, ParserError> {
        let right = parser.parse_subexpr(precedence)?;
        Ok(Expr::BinaryOp {
            left: Box::new(left.clone()),
            op,
            right: Box::new(right),
        })
    }
}

impl Dialect for QservDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        self.mysql.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.mysql.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.mysql.is_delimited_identifier_start(ch)
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.mysql.identifier_quote_style(identifier)
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        true
    }

    fn supports_numeric_prefix(&self) -> bool {
        true
    }

    fn supports_limit_comma(&self) -> bool {
        true
    }

    fn requires_single_line_comment_whitespace(&self) -> bool {
        true
    }

    fn supports_data_type_signed_suffix(&self) -> bool {
        true
    }

    fn ignores_wildcard_escapes(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if parser.peek_token_ref().token == Token::ExclamationMark {
            parser.next_token();
            return Some(parser.parse_subexpr(PREC_BANG).map(|expr| Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: Box::new(expr),
            }));
        }
        None
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        _precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        let token = parser.peek_token_ref().token.clone();
        let (op, precedence) = match token {
            Token::Word(w) if w.keyword == Keyword::DIV => {
                (BinaryOperator::MyIntegerDivide, PREC_MUL)
            }
            Token::Word(w) if w.keyword == Keyword::MOD => (BinaryOperator::Modulo, PREC_MUL),
            Token::Word(w) if w.keyword == Keyword::XOR => (BinaryOperator::Xor, PREC_XOR),
            Token::Overlap => (BinaryOperator::And, PREC_AND),
            Token::StringConcat => (BinaryOperator::Or, PREC_OR),
            Token::ShiftLeft => (BinaryOperator::PGBitwiseShiftLeft, PREC_SHIFT),
            Token::ShiftRight => (BinaryOperator::PGBitwiseShiftRight, PREC_SHIFT),
            Token::Caret => (BinaryOperator::BitwiseXor, PREC_CARET),
            _ => return None,
        };
        parser.next_token();
        Some(QservDialect::binary(parser, expr, op, precedence))
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        let precedence = match &parser.peek_token_ref().token {
            Token::Word(w) if w.keyword == Keyword::DIV || w.keyword == Keyword::MOD => PREC_MUL,
            Token::Word(w) if w.keyword == Keyword::XOR => PREC_XOR,
            Token::Overlap => PREC_AND,
            Token::StringConcat => PREC_OR,
            Token::ShiftLeft | Token::ShiftRight => PREC_SHIFT,
            Token::Caret => PREC_CARET,
            _ => return None,
        };
        Some(Ok(precedence))
    }

    fn parse_statement(
        &self,
        parser: &mut Parser,
    ) -> Option<Result<sqlparser::ast::Statement, ParserError>> {
        self.mysql.parse_statement(parser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> String {
        let statements = Parser::parse_sql(&QservDialect::default(), sql).unwrap();
        statements[0].to_string()
    }

    #[test]
    fn mysql_operators_parse_with_mysql_precedence() {
        assert_eq!(
            parse("SELECT a FROM t WHERE x > .5 && y < 2 || z = 1"),
            "SELECT a FROM t WHERE x > .5 AND y < 2 OR z = 1"
        );
        assert_eq!(
            parse("SELECT a DIV 2 > 1 FROM t"),
            "SELECT a DIV 2 > 1 FROM t"
        );
        assert_eq!(
            parse("SELECT a MOD 3 > 1.5 FROM t"),
            "SELECT a % 3 > 1.5 FROM t"
        );
        assert_eq!(
            parse("SELECT e >> 1 = 1, f << 1 = 2, !g FROM t"),
            "SELECT e >> 1 = 1, f << 1 = 2, NOT g FROM t"
        );
        // DIV binds tighter than >: (a DIV 2) > 1, not a DIV (2 > 1).
        let top_op = |sql: &str| {
            let statements = Parser::parse_sql(&QservDialect::default(), sql).unwrap();
            let sqlparser::ast::Statement::Query(query) = &statements[0] else {
                panic!("not a query");
            };
            let sqlparser::ast::SetExpr::Select(select) = query.body.as_ref() else {
                panic!("not a select");
            };
            let sqlparser::ast::SelectItem::UnnamedExpr(Expr::BinaryOp { op, .. }) =
                &select.projection[0]
            else {
                panic!("not a binary operation");
            };
            op.clone()
        };
        assert_eq!(top_op("SELECT a DIV 2 > 1"), BinaryOperator::Gt);
        assert_eq!(top_op("SELECT a MOD 2 = 1"), BinaryOperator::Eq);
        assert_eq!(top_op("SELECT a > 1 && b < 2 || c"), BinaryOperator::Or);
        assert_eq!(top_op("SELECT a XOR b AND c"), BinaryOperator::Xor);
        assert_eq!(top_op("SELECT a | b & c"), BinaryOperator::BitwiseOr);
        assert_eq!(
            top_op("SELECT a + 1 << 2"),
            BinaryOperator::PGBitwiseShiftLeft
        );
    }

    #[test]
    fn a_missing_operand_is_an_error_not_a_panic() {
        for sql in [
            "SELECT 1 DIV",
            "SELECT 1 MOD",
            "SELECT 1 &&",
            "SELECT !",
            "SELECT 1 <<",
        ] {
            assert!(
                Parser::parse_sql(&QservDialect::default(), sql).is_err(),
                "{sql}"
            );
        }
    }
}
