//! The full felis schema of lsst-dax-apdb loads, with every column, type,
//! nullability and key; bad schemas are clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apdb_support;

use apdb_support::*;
use skyscan_engine::apdb::{ApdbError, ApdbLayout, FelisSchema};
use skyscan_format::ColumnType;

#[test]
fn full_apdb_yaml_loads() {
    let schema = felis();
    assert_eq!(schema.name, "ApdbSchema");
    let text = std::fs::read_to_string(schema_path()).unwrap();
    // Every table and every column of the file is there, in order.
    let table_names: Vec<&str> = schema
        .tables
        .iter()
        .map(|t| t.schema.name.as_str())
        .collect();
    let expected_tables = text.lines().filter(|l| l.starts_with("- name: ")).count();
    assert_eq!(table_names.len(), expected_tables);
    for name in [
        "DiaObject",
        "DiaSource",
        "DiaForcedSource",
        "SSObject",
        "SSSource",
        "DiaObjectLast",
    ] {
        assert!(table_names.contains(&name), "{name} missing");
    }
    let object = schema.table("DiaObject").unwrap();
    assert_eq!(
        object.primary_key,
        vec!["diaObjectId", "validityStartMjdTai"]
    );
    let col = |t: &str, c: &str| {
        let t = schema.table(t).unwrap();
        let i = t.schema.column_index(c).unwrap_or_else(|| panic!("{c}"));
        (
            t.schema.columns[i].column_type,
            t.schema.columns[i].nullable,
        )
    };
    assert_eq!(col("DiaObject", "diaObjectId"), (ColumnType::I64, false));
    assert_eq!(
        col("DiaObject", "validityEndMjdTai"),
        (ColumnType::F64, true)
    );
    assert_eq!(col("DiaObject", "raErr"), (ColumnType::F32, true)); // felis default: nullable
    assert_eq!(col("DiaObject", "u_psfFluxNdata"), (ColumnType::I32, false));
    assert_eq!(col("DiaSource", "detector"), (ColumnType::I16, false));
    assert_eq!(col("DiaSource", "diaObjectId"), (ColumnType::I64, true));
    assert_eq!(col("DiaForcedSource", "band").0, ColumnType::Utf8);
    let forced = schema.table("DiaForcedSource").unwrap();
    assert_eq!(forced.primary_key, vec!["diaObjectId", "visit", "detector"]);
    // Every felis datatype of the file maps, and the map is the documented one.
    for t in &schema.tables {
        for (c, felis_type) in t.schema.columns.iter().zip(&t.felis_types) {
            assert_eq!(
                skyscan_engine::apdb::felis_type(felis_type),
                Some(c.column_type)
            );
        }
    }
    // The column count of DiaObject matches the file's entries between its
    // `columns:` and `primaryKey:` lines.
    let start = text.find("- name: DiaObject\n").unwrap();
    let end = start + text[start..].find("  primaryKey:").unwrap();
    let entries = text[start..end]
        .lines()
        .filter(|l| l.starts_with("  - name: "))
        .count();
    assert_eq!(object.schema.columns.len(), entries);
    assert_eq!(object.schema.columns.len(), 83);
    // The APDB finds its columns.
    let layout = ApdbLayout::new(schema).unwrap();
    assert_eq!(layout.tables[1].schema.name, "DiaSource");
}

#[test]
fn bad_schemas_are_clear_errors() {
    let cases = [
        ("tables: [", "not valid YAML"),
        ("name: x\n", "no `tables` list"),
        (
            "tables:\n- name: T\n  columns:\n  - name: a\n    datatype: quaternion\n",
            "unknown felis datatype",
        ),
        (
            "tables:\n- name: T\n  columns:\n  - name: a\n",
            "no datatype",
        ),
        (
            "tables:\n- name: T\n  columns:\n  - name: a\n    datatype: int\n  - name: a\n    datatype: int\n",
            "twice",
        ),
        (
            "tables:\n- name: T\n  primaryKey: '#T.b'\n  columns:\n  - name: a\n    datatype: int\n",
            "not a column",
        ),
        (
            "tables:\n- name: T\n  columns:\n  - name: a\n    datatype: int\n    nullable: maybe\n",
            "nullable",
        ),
    ];
    for (text, want) in cases {
        match FelisSchema::parse(text) {
            Err(ApdbError::Schema(m)) => assert!(m.contains(want), "{text:?}: {m}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // A schema without the APDB tables is refused by the layout.
    let s = FelisSchema::parse("tables:\n- name: T\n  columns:\n  - name: a\n    datatype: int\n")
        .unwrap();
    assert!(matches!(ApdbLayout::new(s), Err(ApdbError::Schema(m)) if m.contains("DiaObject")));
}
