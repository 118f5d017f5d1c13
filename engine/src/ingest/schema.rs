//! MySQL `CREATE TABLE` statements → [`TableSchema`] plus what the loader
//! needs to read values strictly (the accepted value range of each column,
//! its text encoding) and the keys and indexes declared.
//!
//! A schema file may hold several statements, comments, `SET`, `DROP TABLE`,
//! `LOCK TABLES` and MySQL version comments (`/*!40101 … */`), as mysqldump
//! writes them: the file is tokenized with sqlparser's MySQL dialect, split at
//! top-level `;`, and only `CREATE TABLE` statements are parsed (strictly);
//! every other statement is ignored. The type map is in `docs/ingest.md`.

use std::collections::HashSet;
use std::path::Path;

use skyscan_format::limits::{MAX_COLUMNS, MAX_NAME_LEN};
use skyscan_format::{ColumnSchema, ColumnType, TableSchema};
use sqlparser::ast::{
    CharacterLength, ColumnOption, CreateTable, DataType, ExactNumberInfo, Expr, IndexColumn,
    ObjectName, SqlOption, Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::text::TextEncoding;
use super::{IngestError, Result};

/// Largest schema file read, in bytes: a schema is text written by people or
/// mysqldump, and 16 MiB is thousands of tables.
pub const MAX_SCHEMA_BYTES: u64 = 16 << 20;

/// Recursion limit handed to the SQL parser (nested expressions in
/// `DEFAULT`/`CHECK` clauses): keeps hostile input from exhausting the stack.
/// sqlparser's default (50) overflows a 2 MiB thread stack in debug builds
/// (measured: 64 levels need 2–4 MiB); schema expressions are literals.
const PARSER_RECURSION_LIMIT: usize = 16;

/// How the loader reads and checks the text of one column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// An integer stored as `column_type` (I8..I64), accepted when
    /// `min <= value <= max` (the MySQL type's range, e.g. `0..=255` for
    /// `TINYINT UNSIGNED` stored as i16).
    Int {
        /// Storage type.
        column_type: ColumnType,
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// `FLOAT`: parsed as f64 and rounded to f32, as MySQL does.
    Float32,
    /// `DOUBLE`/`REAL`.
    Float64,
    /// `DECIMAL(precision, scale)` stored as f64 (precision loss beyond 15–17
    /// significant digits; documented).
    Decimal {
        /// Declared precision (digits), 0 when not given.
        precision: u8,
        /// Declared scale (digits after the point).
        scale: u8,
    },
    /// `BOOL`/`BOOLEAN` (`0`/`1`) and `BIT(1)` (also the raw bytes 0x00/0x01
    /// that `SELECT … INTO OUTFILE` writes for BIT columns).
    Bool,
    /// Text stored as UTF-8, converted from `encoding`.
    Text {
        /// The character set of the input bytes.
        encoding: TextEncoding,
    },
    /// Bytes kept as they are.
    Binary,
    /// `DATE`, stored as its text `YYYY-MM-DD` (checked).
    Date,
    /// `DATETIME`/`TIMESTAMP`, stored as text `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    DateTime,
    /// `TIME`, stored as text `[-]HH:MM:SS[.ffffff]` (hours up to 838).
    Time,
    /// `YEAR`, stored as i16 (0 or 1901..=2155).
    Year,
}

impl ValueKind {
    /// The skyscan column type values of this kind are stored as.
    pub fn column_type(self) -> ColumnType {
        match self {
            ValueKind::Int { column_type, .. } => column_type,
            ValueKind::Float32 => ColumnType::F32,
            ValueKind::Float64 | ValueKind::Decimal { .. } => ColumnType::F64,
            ValueKind::Bool => ColumnType::Bool,
            ValueKind::Text { .. } | ValueKind::Date | ValueKind::DateTime | ValueKind::Time => {
                ColumnType::Utf8
            }
            ValueKind::Binary => ColumnType::Binary,
            ValueKind::Year => ColumnType::I16,
        }
    }
}

/// One column as declared in SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlColumn {
    /// Column name as declared (case preserved).
    pub name: String,
    /// The declared type, as sqlparser prints it (e.g. `BIGINT(20)`).
    pub declared_type: String,
    /// How values are read and checked.
    pub kind: ValueKind,
    /// False for `NOT NULL` columns and primary-key columns.
    pub nullable: bool,
}

/// An index or key declared in the table (`KEY`, `UNIQUE KEY`, `INDEX`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlIndex {
    /// Its name, if it has one.
    pub name: Option<String>,
    /// True for `UNIQUE` keys.
    pub unique: bool,
    /// Indexed columns in order (prefix lengths dropped).
    pub columns: Vec<String>,
}

/// A table parsed from a `CREATE TABLE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTable {
    /// Names and storage types, ready for the chunk format.
    pub schema: TableSchema,
    /// Per column (same order as `schema.columns`): how to read its values.
    pub columns: Vec<SqlColumn>,
    /// Primary key columns, in key order (empty when there is none).
    pub primary_key: Vec<String>,
    /// Other keys and indexes.
    pub indexes: Vec<SqlIndex>,
    /// The table's `DEFAULT CHARSET`, lower-cased, if declared.
    pub default_charset: Option<String>,
}

impl SqlTable {
    /// Table name.
    pub fn name(&self) -> &str {
        &self.schema.name
    }

    /// Index of the column `name`, compared case-insensitively as MySQL does.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|column| column.name.eq_ignore_ascii_case(name))
    }
}

/// Reads a schema file and parses its `CREATE TABLE` statements.
pub fn parse_schema_file(path: &Path) -> Result<Vec<SqlTable>> {
    let source_name = path.display().to_string();
    let io_error = |source| IngestError::Io {
        source_name: source_name.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io_error)?.len();
    if len > MAX_SCHEMA_BYTES {
        return Err(IngestError::Limit {
            source_name,
            line: 0,
            message: format!("schema file of {len} bytes; the limit is {MAX_SCHEMA_BYTES}"),
        });
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    // Schema files are ASCII in practice; a latin-1 comment must not stop us.
    let sql = match String::from_utf8(bytes) {
        Ok(sql) => sql,
        Err(error) => error
            .as_bytes()
            .iter()
            .map(|&byte| char::from(byte))
            .collect(),
    };
    parse_schema_sql(&sql, &source_name)
}

/// Parses every `CREATE TABLE` statement of `sql` (named `source_name` in
/// errors); other statements are ignored. An empty result is not an error.
pub fn parse_schema_sql(sql: &str, source_name: &str) -> Result<Vec<SqlTable>> {
    let schema_error = |message: String| IngestError::Schema {
        source_name: source_name.to_string(),
        message,
    };
    let dialect = MySqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|error| schema_error(format!("cannot tokenize: {error}")))?;
    let mut tables: Vec<SqlTable> = Vec::new();
    for statement in split_statements(tokens) {
        if !is_create_table(&statement) {
            continue;
        }
        let parsed = Parser::new(&dialect)
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .with_tokens_with_locations(statement)
            .parse_statement()
            .map_err(|error| schema_error(format!("bad CREATE TABLE: {error}")))?;
        let Statement::CreateTable(create) = parsed else {
            return Err(schema_error(
                "a CREATE TABLE statement did not parse as one".into(),
            ));
        };
        let table = convert_table(&create, source_name)?;
        if tables
            .iter()
            .any(|other| other.name().eq_ignore_ascii_case(table.name()))
        {
            return Err(schema_error(format!(
                "table `{}` is created twice",
                table.name()
            )));
        }
        tables.push(table);
    }
    Ok(tables)
}

/// Splits a token stream at top-level semicolons, dropping whitespace,
/// comments and MySQL's `ZEROFILL` attribute (display-only, and a syntax
/// sqlparser does not accept).
fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut statements = Vec::new();
    let mut current = Vec::new();
    for token in tokens {
        match &token.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => {
                if !current.is_empty() {
                    statements.push(std::mem::take(&mut current));
                }
            }
            Token::Word(word)
                if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("ZEROFILL") => {}
            _ => current.push(token),
        }
    }
    if !current.is_empty() {
        statements.push(current);
    }
    statements
}

/// `CREATE [OR REPLACE] [TEMPORARY] TABLE …`?
fn is_create_table(statement: &[TokenWithSpan]) -> bool {
    let mut words = statement.iter().map(|token| match &token.token {
        Token::Word(word) if word.quote_style.is_none() => word.keyword,
        _ => Keyword::NoKeyword,
    });
    if words.next() != Some(Keyword::CREATE) {
        return false;
    }
    for keyword in words.take(3) {
        match keyword {
            Keyword::TABLE => return true,
            Keyword::OR | Keyword::REPLACE | Keyword::TEMPORARY => {}
            _ => return false,
        }
    }
    false
}

fn last_name_part(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map_or_else(|| name.to_string(), |ident| ident.value.clone())
}

fn convert_table(create: &CreateTable, source_name: &str) -> Result<SqlTable> {
    let table_name = last_name_part(&create.name);
    let schema_error = |message: String| IngestError::Schema {
        source_name: source_name.to_string(),
        message: format!("table `{table_name}`: {message}"),
    };
    if table_name.len() > MAX_NAME_LEN {
        return Err(schema_error(format!(
            "name longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if create.query.is_some() || create.like.is_some() || create.clone.is_some() {
        return Err(schema_error(
            "CREATE TABLE … AS SELECT / LIKE / CLONE has no column list to load into".into(),
        ));
    }
    if create.columns.is_empty() || create.columns.len() > MAX_COLUMNS {
        return Err(schema_error(format!(
            "{} columns; a table has 1..={MAX_COLUMNS}",
            create.columns.len()
        )));
    }
    let default_charset = table_default_charset(create);
    let table_encoding = match &default_charset {
        Some(charset) => Some(charset_encoding(charset).ok_or_else(|| {
            schema_error(format!(
                "character set `{charset}` is not supported (latin1, utf8, utf8mb4, ascii are)"
            ))
        })?),
        None => None,
    };

    let mut primary_key = Vec::new();
    let mut indexes = Vec::new();
    let mut columns = Vec::with_capacity(create.columns.len());
    let mut seen = HashSet::new();
    for def in &create.columns {
        let name = def.name.value.clone();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(schema_error(format!(
                "column name `{name}`: 1..={MAX_NAME_LEN} bytes"
            )));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(schema_error(format!("duplicate column `{name}`")));
        }
        let mut nullable = true;
        let mut column_encoding = None;
        for option in &def.options {
            match &option.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null => nullable = true,
                ColumnOption::Unique {
                    is_primary: true, ..
                } => {
                    nullable = false;
                    primary_key.push(name.clone());
                }
                ColumnOption::Unique {
                    is_primary: false, ..
                } => indexes.push(SqlIndex {
                    name: None,
                    unique: true,
                    columns: vec![name.clone()],
                }),
                ColumnOption::CharacterSet(charset) => {
                    let charset = last_name_part(charset).to_ascii_lowercase();
                    column_encoding = Some(charset_encoding(&charset).ok_or_else(|| {
                        schema_error(format!(
                            "column `{name}`: character set `{charset}` is not supported"
                        ))
                    })?);
                }
                _ => {}
            }
        }
        let encoding = column_encoding
            .or(table_encoding)
            .unwrap_or(TextEncoding::Utf8);
        let kind =
            map_type(&def.data_type, encoding).ok_or_else(|| IngestError::UnsupportedType {
                table: table_name.clone(),
                column: name.clone(),
                sql_type: def.data_type.to_string(),
            })?;
        columns.push(SqlColumn {
            name,
            declared_type: def.data_type.to_string(),
            kind,
            nullable,
        });
    }

    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey { columns: key, .. } => {
                if !primary_key.is_empty() {
                    return Err(schema_error("more than one primary key".into()));
                }
                primary_key = index_column_names(key);
            }
            TableConstraint::Unique {
                name,
                index_name,
                columns: key,
                ..
            } => indexes.push(SqlIndex {
                name: index_name
                    .as_ref()
                    .or(name.as_ref())
                    .map(|ident| ident.value.clone()),
                unique: true,
                columns: index_column_names(key),
            }),
            TableConstraint::Index {
                name, columns: key, ..
            }
            | TableConstraint::FulltextOrSpatial {
                opt_index_name: name,
                columns: key,
                ..
            } => indexes.push(SqlIndex {
                name: name.as_ref().map(|ident| ident.value.clone()),
                unique: false,
                columns: index_column_names(key),
            }),
            _ => {}
        }
    }
    // Key columns must exist; primary-key columns are NOT NULL in MySQL.
    for key_column in primary_key
        .iter()
        .chain(indexes.iter().flat_map(|index| &index.columns))
    {
        if !columns
            .iter()
            .any(|column| column.name.eq_ignore_ascii_case(key_column))
        {
            return Err(schema_error(format!(
                "key names unknown column `{key_column}`"
            )));
        }
    }
    for column in &mut columns {
        if primary_key
            .iter()
            .any(|key| key.eq_ignore_ascii_case(&column.name))
        {
            column.nullable = false;
        }
    }

    let schema = TableSchema::new(
        table_name.clone(),
        columns
            .iter()
            .map(|column| {
                ColumnSchema::new(&column.name, column.kind.column_type(), column.nullable)
            })
            .collect(),
    );
    Ok(SqlTable {
        schema,
        columns,
        primary_key,
        indexes,
        default_charset,
    })
}

fn index_column_names(key: &[IndexColumn]) -> Vec<String> {
    key.iter()
        .map(|column| match &column.column.expr {
            Expr::Identifier(ident) => ident.value.clone(),
            // `KEY (name(10))`: a prefix index on `name`.
            Expr::Function(function) => last_name_part(&function.name),
            other => other.to_string(),
        })
        .collect()
}

fn table_default_charset(create: &CreateTable) -> Option<String> {
    let options = match &create.table_options {
        sqlparser::ast::CreateTableOptions::Plain(options)
        | sqlparser::ast::CreateTableOptions::With(options)
        | sqlparser::ast::CreateTableOptions::Options(options)
        | sqlparser::ast::CreateTableOptions::TableProperties(options) => options.as_slice(),
        sqlparser::ast::CreateTableOptions::None => &[],
    };
    options.iter().find_map(|option| match option {
        SqlOption::KeyValue { key, value } => {
            let key = key.value.to_ascii_uppercase();
            let is_charset = matches!(
                key.as_str(),
                "DEFAULT CHARSET" | "CHARSET" | "DEFAULT CHARACTER SET" | "CHARACTER SET"
            );
            is_charset.then(|| match value {
                Expr::Identifier(ident) => ident.value.to_ascii_lowercase(),
                other => other
                    .to_string()
                    .trim_matches(['\'', '"'])
                    .to_ascii_lowercase(),
            })
        }
        _ => None,
    })
}

/// The text encoding of a MySQL character set, or `None` when unsupported.
fn charset_encoding(charset: &str) -> Option<TextEncoding> {
    match charset {
        "latin1" => Some(TextEncoding::Latin1),
        "utf8" | "utf8mb3" | "utf8mb4" | "ascii" => Some(TextEncoding::Utf8),
        _ => None,
    }
}

/// Maps a MySQL type to how its values are read; `None` when unsupported.
/// The table in `docs/ingest.md` mirrors this function.
pub fn map_type(data_type: &DataType, encoding: TextEncoding) -> Option<ValueKind> {
    use ColumnType::{I8, I16, I32, I64};
    let int = |column_type, min: i64, max: i64| {
        Some(ValueKind::Int {
            column_type,
            min,
            max,
        })
    };
    match data_type {
        DataType::TinyInt(_) => int(I8, i8::MIN.into(), i8::MAX.into()),
        DataType::TinyIntUnsigned(_) | DataType::UTinyInt => int(I16, 0, u8::MAX.into()),
        DataType::SmallInt(_) | DataType::Int2(_) => int(I16, i16::MIN.into(), i16::MAX.into()),
        DataType::SmallIntUnsigned(_) | DataType::Int2Unsigned(_) | DataType::USmallInt => {
            int(I32, 0, u16::MAX.into())
        }
        // MEDIUMINT is 24 bits.
        DataType::MediumInt(_) => int(I32, -(1 << 23), (1 << 23) - 1),
        DataType::MediumIntUnsigned(_) => int(I32, 0, (1 << 24) - 1),
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => {
            int(I32, i32::MIN.into(), i32::MAX.into())
        }
        DataType::IntUnsigned(_) | DataType::IntegerUnsigned(_) | DataType::Int4Unsigned(_) => {
            int(I64, 0, u32::MAX.into())
        }
        DataType::BigInt(_) | DataType::Int8(_) => int(I64, i64::MIN, i64::MAX),
        // No wider signed type: values above i64::MAX are refused at load.
        DataType::BigIntUnsigned(_) | DataType::Int8Unsigned(_) | DataType::UBigInt => {
            int(I64, 0, i64::MAX)
        }
        // FLOAT(p): single precision for p <= 24, double above (MySQL manual,
        // "Floating-Point Types"). FLOAT(M,D) is single precision.
        DataType::Float(info) | DataType::FloatUnsigned(info) => match info {
            ExactNumberInfo::Precision(precision) if *precision > 24 => Some(ValueKind::Float64),
            _ => Some(ValueKind::Float32),
        },
        DataType::Float4 | DataType::Float32 => Some(ValueKind::Float32),
        DataType::Double(_)
        | DataType::DoubleUnsigned(_)
        | DataType::DoublePrecision
        | DataType::DoublePrecisionUnsigned
        | DataType::Real
        | DataType::RealUnsigned
        | DataType::Float8
        | DataType::Float64 => Some(ValueKind::Float64),
        DataType::Decimal(info)
        | DataType::DecimalUnsigned(info)
        | DataType::Numeric(info)
        | DataType::Dec(info)
        | DataType::DecUnsigned(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(precision) => (*precision, 0),
                ExactNumberInfo::PrecisionAndScale(precision, scale) => {
                    (*precision, u64::try_from(*scale).ok()?)
                }
            };
            // MySQL: precision 1..=65, scale 0..=30 and <= precision.
            if precision == 0 || precision > 65 || scale > 30 || scale > precision {
                return None;
            }
            Some(ValueKind::Decimal {
                precision: u8::try_from(precision).ok()?,
                scale: u8::try_from(scale).ok()?,
            })
        }
        DataType::Bool | DataType::Boolean => Some(ValueKind::Bool),
        DataType::Bit(None) | DataType::Bit(Some(1)) => Some(ValueKind::Bool),
        DataType::Char(length)
        | DataType::Character(length)
        | DataType::Varchar(length)
        | DataType::CharVarying(length)
        | DataType::CharacterVarying(length)
        | DataType::Nvarchar(length) => {
            if matches!(length, Some(CharacterLength::IntegerLength { length, .. }) if *length > u32::MAX.into())
            {
                return None;
            }
            Some(ValueKind::Text { encoding })
        }
        DataType::Text
        | DataType::TinyText
        | DataType::MediumText
        | DataType::LongText
        | DataType::Enum(..)
        | DataType::Set(_)
        | DataType::JSON => Some(ValueKind::Text { encoding }),
        DataType::Binary(_)
        | DataType::Varbinary(_)
        | DataType::Blob(_)
        | DataType::TinyBlob
        | DataType::MediumBlob
        | DataType::LongBlob => Some(ValueKind::Binary),
        DataType::Date => Some(ValueKind::Date),
        DataType::Datetime(_) | DataType::Timestamp(..) => Some(ValueKind::DateTime),
        DataType::Time(..) => Some(ValueKind::Time),
        DataType::Custom(name, _) if last_name_part(name).eq_ignore_ascii_case("year") => {
            Some(ValueKind::Year)
        }
        _ => None,
    }
}
