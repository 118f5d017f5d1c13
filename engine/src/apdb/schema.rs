//! The APDB schema: felis YAML (`apdb.yaml`, the schema `lsst-dax-apdb`
//! ships) read into skyscan table schemas.
//!
//! felis → skyscan types (felis `datatype`, see felis' `datamodel.py`):
//!
//! | felis | skyscan | why |
//! |---|---|---|
//! | `boolean` | `bool` | |
//! | `byte` | `i8` | |
//! | `short` | `i16` | |
//! | `int` | `i32` | |
//! | `long` | `i64` | |
//! | `float` | `f32` | |
//! | `double` | `f64` | |
//! | `char`, `string`, `unicode`, `text` | `utf8` | `length` is a database hint, not a limit we enforce |
//! | `binary` | `binary` | |
//! | `timestamp` | `i64` | microseconds since 1970-01-01T00:00:00 (the felis `precision: 6` of the schema) |
//!
//! Nullability: felis' default is nullable; `nullable: false` makes a column
//! NOT NULL, and every column of `primaryKey` is NOT NULL whatever it says
//! (SQL semantics). Keys come from `primaryKey` (a string or a list of
//! `#Table.column` references).

use std::collections::HashSet;
use std::path::Path;

use skyscan_format::{ColumnSchema, ColumnType, TableSchema};
use yaml_rust2::{Yaml, YamlLoader};

use super::error::ApdbError;

/// Largest schema file read, bytes (apdb.yaml is ~100 KB).
pub const MAX_SCHEMA_BYTES: u64 = 16 << 20;

/// One table of a felis schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FelisTable {
    /// Name and columns in skyscan types.
    pub schema: TableSchema,
    /// Primary-key column names, in key order (empty when the table has none).
    pub primary_key: Vec<String>,
    /// felis datatype of each column, as written (for documentation and errors).
    pub felis_types: Vec<String>,
}

/// A felis schema: its name, version and tables in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FelisSchema {
    /// `name` of the schema (`ApdbSchema`).
    pub name: String,
    /// `version` of the schema (may be empty).
    pub version: String,
    /// Tables in file order.
    pub tables: Vec<FelisTable>,
}

impl FelisSchema {
    /// Reads a felis YAML file.
    pub fn from_file(path: &Path) -> Result<FelisSchema, ApdbError> {
        let len = std::fs::metadata(path)
            .map_err(|e| ApdbError::io(format!("reading {}", path.display()), e))?
            .len();
        if len > MAX_SCHEMA_BYTES {
            return Err(ApdbError::Schema(format!(
                "{}: {len} bytes, more than the {MAX_SCHEMA_BYTES} a schema may have",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ApdbError::io(format!("reading {}", path.display()), e))?;
        FelisSchema::parse(&text)
            .map_err(|e| ApdbError::Schema(format!("{}: {}", path.display(), e.message())))
    }

    /// Parses felis YAML text.
    pub fn parse(text: &str) -> Result<FelisSchema, ApdbError> {
        let docs = YamlLoader::load_from_str(text)
            .map_err(|e| ApdbError::Schema(format!("not valid YAML: {e}")))?;
        let [doc] = docs.as_slice() else {
            return Err(ApdbError::Schema(format!(
                "expected one YAML document, found {}",
                docs.len()
            )));
        };
        let top = as_hash(doc, "the schema")?;
        let name = opt_str(top, "name", "the schema")?.unwrap_or_default();
        let version = match get(top, "version") {
            None | Some(Yaml::Null) => String::new(),
            Some(Yaml::String(s)) | Some(Yaml::Real(s)) => s.clone(),
            Some(Yaml::Integer(i)) => i.to_string(),
            Some(_) => return Err(ApdbError::Schema("`version` is not a scalar".into())),
        };
        let tables_yaml = match get(top, "tables") {
            Some(Yaml::Array(a)) => a,
            _ => return Err(ApdbError::Schema("no `tables` list".into())),
        };
        let mut tables = Vec::with_capacity(tables_yaml.len());
        let mut names = HashSet::new();
        for (index, table) in tables_yaml.iter().enumerate() {
            let table = parse_table(table, index)?;
            if !names.insert(table.schema.name.clone()) {
                return Err(ApdbError::Schema(format!(
                    "table `{}` defined twice",
                    table.schema.name
                )));
            }
            tables.push(table);
        }
        Ok(FelisSchema {
            name,
            version,
            tables,
        })
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&FelisTable> {
        self.tables.iter().find(|t| t.schema.name == name)
    }
}

/// The skyscan type of a felis datatype, `None` for an unknown one.
pub fn felis_type(datatype: &str) -> Option<ColumnType> {
    Some(match datatype {
        "boolean" => ColumnType::Bool,
        "byte" => ColumnType::I8,
        "short" => ColumnType::I16,
        "int" => ColumnType::I32,
        "long" => ColumnType::I64,
        "float" => ColumnType::F32,
        "double" => ColumnType::F64,
        "char" | "string" | "unicode" | "text" => ColumnType::Utf8,
        "binary" => ColumnType::Binary,
        "timestamp" => ColumnType::I64,
        _ => return None,
    })
}

fn get<'a>(hash: &'a yaml_rust2::yaml::Hash, key: &str) -> Option<&'a Yaml> {
    hash.get(&Yaml::String(key.to_string()))
}

fn as_hash<'a>(value: &'a Yaml, what: &str) -> Result<&'a yaml_rust2::yaml::Hash, ApdbError> {
    match value {
        Yaml::Hash(h) => Ok(h),
        _ => Err(ApdbError::Schema(format!("{what} is not a mapping"))),
    }
}

fn opt_str(
    hash: &yaml_rust2::yaml::Hash,
    key: &str,
    what: &str,
) -> Result<Option<String>, ApdbError> {
    match get(hash, key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApdbError::Schema(format!(
            "{what}: `{key}` is not a string"
        ))),
    }
}

/// `#Table.column` (or a bare column name) → column name, checking the table.
fn column_ref(reference: &str, table: &str) -> Result<String, ApdbError> {
    let body = reference.strip_prefix('#').unwrap_or(reference);
    match body.split_once('.') {
        Some((t, column)) if t == table && !column.is_empty() => Ok(column.to_string()),
        Some(_) => Err(ApdbError::Schema(format!(
            "table `{table}`: key reference `{reference}` names another table"
        ))),
        None if !body.is_empty() => Ok(body.to_string()),
        None => Err(ApdbError::Schema(format!(
            "table `{table}`: empty key reference"
        ))),
    }
}

fn parse_table(value: &Yaml, index: usize) -> Result<FelisTable, ApdbError> {
    let hash = as_hash(value, &format!("table {}", index + 1))?;
    let name = opt_str(hash, "name", &format!("table {}", index + 1))?
        .ok_or_else(|| ApdbError::Schema(format!("table {} has no name", index + 1)))?;
    let what = format!("table `{name}`");
    let primary_key = match get(hash, "primaryKey") {
        None | Some(Yaml::Null) => Vec::new(),
        Some(Yaml::String(s)) => vec![column_ref(s, &name)?],
        Some(Yaml::Array(items)) => items
            .iter()
            .map(|item| match item {
                Yaml::String(s) => column_ref(s, &name),
                _ => Err(ApdbError::Schema(format!(
                    "{what}: `primaryKey` entries must be strings"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApdbError::Schema(format!(
                "{what}: `primaryKey` must be a string or a list"
            )));
        }
    };
    let columns_yaml = match get(hash, "columns") {
        Some(Yaml::Array(a)) if !a.is_empty() => a,
        _ => return Err(ApdbError::Schema(format!("{what} has no columns"))),
    };
    let mut columns = Vec::with_capacity(columns_yaml.len());
    let mut felis_types = Vec::with_capacity(columns_yaml.len());
    let mut seen = HashSet::new();
    for (column_index, column) in columns_yaml.iter().enumerate() {
        let chash = as_hash(column, &format!("{what}, column {}", column_index + 1))?;
        let cname = opt_str(chash, "name", &what)?.ok_or_else(|| {
            ApdbError::Schema(format!("{what}: column {} has no name", column_index + 1))
        })?;
        let cwhat = format!("{what}, column `{cname}`");
        let datatype = opt_str(chash, "datatype", &cwhat)?
            .ok_or_else(|| ApdbError::Schema(format!("{cwhat} has no datatype")))?;
        let column_type = felis_type(&datatype).ok_or_else(|| {
            ApdbError::Schema(format!("{cwhat}: unknown felis datatype `{datatype}`"))
        })?;
        let nullable = match get(chash, "nullable") {
            None | Some(Yaml::Null) => true,
            Some(Yaml::Boolean(b)) => *b,
            Some(_) => {
                return Err(ApdbError::Schema(format!(
                    "{cwhat}: `nullable` must be true or false"
                )));
            }
        };
        if !seen.insert(cname.clone()) {
            return Err(ApdbError::Schema(format!("{what}: column `{cname}` twice")));
        }
        let nullable = nullable && !primary_key.contains(&cname);
        columns.push(ColumnSchema::new(cname, column_type, nullable));
        felis_types.push(datatype);
    }
    if let Some(missing) = primary_key.iter().find(|k| !seen.contains(*k)) {
        return Err(ApdbError::Schema(format!(
            "{what}: primary key column `{missing}` is not a column"
        )));
    }
    Ok(FelisTable {
        schema: TableSchema::new(name, columns),
        primary_key,
        felis_types,
    })
}
