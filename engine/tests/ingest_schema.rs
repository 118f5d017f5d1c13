//! `CREATE TABLE` parsing: mysqldump files with their noise, the type map,
//! keys, and clear errors.

// Test code: unwrap/expect/panic are how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use skyscan_engine::ingest::IngestError;
use skyscan_engine::ingest::schema::{ValueKind, parse_schema_sql};
use skyscan_engine::ingest::text::TextEncoding;
use skyscan_format::ColumnType;

const MYSQLDUMP: &str = r#"
-- MySQL dump 10.13  Distrib 5.1.73
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8 */;
SET @saved_cs_client     = @@character_set_client;
SET character_set_client = utf8;
DROP TABLE IF EXISTS `T`;
CREATE TABLE `db`.`T` (
  `a` tinyint(3) unsigned zerofill NOT NULL,
  `b` smallint(5) unsigned DEFAULT NULL,
  `c` mediumint(8) unsigned,
  `d` int unsigned,
  `e` bigint(20) unsigned NOT NULL,
  `f` decimal(10,3) DEFAULT NULL,
  `g` bit(1) DEFAULT b'0',
  `h` bool,
  `i` datetime(6), `j` date, `k` time, `l` year(4), `m` real, `n` double precision,
  `o` enum('a','b') CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'semi;colon',
  `p` longblob, `q` float(30), `r` numeric(5), `s` tinytext, `t` json, `u` set('x','y'),
  `v` float, `w` char(3), `x` binary(16), `y` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`a`,`b`), UNIQUE KEY `uq` (`c`), KEY `k1` (`w`(2)), FULLTEXT KEY `ft` (`s`), INDEX (`e`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT='x';
SET character_set_client = @saved_cs_client;
LOCK TABLES `T` WRITE;
/*!40000 ALTER TABLE `T` DISABLE KEYS */;
UNLOCK TABLES;
CREATE TABLE second (id BIGINT PRIMARY KEY, v VARCHAR(3));
"#;

#[test]
fn mysqldump_file_with_every_supported_type() {
    let tables = parse_schema_sql(MYSQLDUMP, "dump.sql").unwrap();
    assert_eq!(tables.len(), 2);
    let t = &tables[0];
    assert_eq!(t.name(), "T");
    assert_eq!(t.default_charset.as_deref(), Some("latin1"));
    let kinds: Vec<(&str, ColumnType, bool)> = t
        .schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.column_type, c.nullable))
        .collect();
    use ColumnType::*;
    assert_eq!(
        kinds,
        vec![
            ("a", I16, false),
            ("b", I32, false), // primary-key columns are NOT NULL
            ("c", I32, true),
            ("d", I64, true),
            ("e", I64, false),
            ("f", F64, true),
            ("g", Bool, true),
            ("h", Bool, true),
            ("i", Utf8, true),
            ("j", Utf8, true),
            ("k", Utf8, true),
            ("l", I16, true),
            ("m", F64, true),
            ("n", F64, true),
            ("o", Utf8, false),
            ("p", Binary, true),
            ("q", F64, true),
            ("r", F64, true),
            ("s", Utf8, true),
            ("t", Utf8, true),
            ("u", Utf8, true),
            ("v", F32, true),
            ("w", Utf8, true),
            ("x", Binary, true),
            ("y", Utf8, false),
        ]
    );
    assert_eq!(
        t.columns[0].kind,
        ValueKind::Int {
            column_type: I16,
            min: 0,
            max: 255
        }
    );
    assert_eq!(
        t.columns[4].kind,
        ValueKind::Int {
            column_type: I64,
            min: 0,
            max: i64::MAX
        }
    );
    assert_eq!(
        t.columns[5].kind,
        ValueKind::Decimal {
            precision: 10,
            scale: 3
        }
    );
    // Column charset wins over the table default.
    assert_eq!(
        t.columns[14].kind,
        ValueKind::Text {
            encoding: TextEncoding::Utf8
        }
    );
    assert_eq!(
        t.columns[22].kind,
        ValueKind::Text {
            encoding: TextEncoding::Latin1
        }
    );
    assert_eq!(t.primary_key, vec!["a", "b"]);
    let indexes: Vec<(Option<&str>, bool, Vec<&str>)> = t
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.as_deref(),
                i.unique,
                i.columns.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        indexes,
        vec![
            (Some("uq"), true, vec!["c"]),
            (Some("k1"), false, vec!["w"]),
            (Some("ft"), false, vec!["s"]),
            (None, false, vec!["e"]),
        ]
    );
    let second = &tables[1];
    assert_eq!(second.primary_key, vec!["id"]);
    assert!(!second.schema.columns[0].nullable);
    // No charset anywhere: text is read as UTF-8.
    assert_eq!(
        second.columns[1].kind,
        ValueKind::Text {
            encoding: TextEncoding::Utf8
        }
    );
    assert_eq!(second.column_index("ID"), Some(0));
}

#[test]
fn errors_name_table_column_and_type() {
    let error =
        parse_schema_sql("CREATE TABLE obj (id BIGINT, shape GEOMETRY)", "s.sql").unwrap_err();
    match &error {
        IngestError::UnsupportedType {
            table,
            column,
            sql_type,
        } => {
            assert_eq!((table.as_str(), column.as_str()), ("obj", "shape"));
            assert!(sql_type.eq_ignore_ascii_case("geometry"), "{sql_type}");
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("`shape`"));
    let error = parse_schema_sql("CREATE TABLE obj (flags BIT(8))", "s.sql").unwrap_err();
    assert!(
        matches!(error, IngestError::UnsupportedType { .. }),
        "{error}"
    );

    for (sql, needle) in [
        ("CREATE TABLE t (a INT, A BIGINT)", "duplicate column `A`"),
        ("CREATE TABLE t (a INT,, b INT)", "s.sql: bad CREATE TABLE"),
        ("CREATE TABLE t (a INT, KEY (zz))", "unknown column `zz`"),
        ("CREATE TABLE t (a INT) DEFAULT CHARSET=koi8r", "koi8r"),
        (
            "CREATE TABLE t (a INT); CREATE TABLE T (b INT)",
            "created twice",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, PRIMARY KEY (a))",
            "more than one primary key",
        ),
        ("CREATE TABLE t (a VARCHAR(3) CHARACTER SET sjis)", "sjis"),
        ("CREATE TABLE t AS SELECT 1", "no column list"),
    ] {
        let message = parse_schema_sql(sql, "s.sql").unwrap_err().to_string();
        assert!(message.contains(needle), "{sql}: {message}");
    }
    // Nothing to create is not an error; an unterminated string is.
    assert!(
        parse_schema_sql("SET x = 1; -- nothing\n", "s.sql")
            .unwrap()
            .is_empty()
    );
    assert!(parse_schema_sql("CREATE TABLE t (a INT COMMENT 'oops)", "s.sql").is_err());
}

#[test]
fn hostile_nesting_is_refused_not_a_stack_overflow() {
    let depth = 10_000;
    let sql = format!(
        "CREATE TABLE t (a INT DEFAULT {}1{})",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    assert!(parse_schema_sql(&sql, "deep.sql").is_err());
}
