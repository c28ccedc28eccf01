//! A table's Delta schema (`metaData.schemaString`) and properties, from the registry.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wxcube_registry::{ColumnType, Table};

/// The partition column: a DATE in the table schema, its value in each file's log entry, not
/// in the file (the data files are the Parquet output's, which has no `ref_date` column).
pub const PARTITION_COLUMN: &str = "ref_date";

/// Commits between two checkpoints (Delta's own default, written down so readers agree).
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// The schema string: the table's columns in order, then `ref_date`.
pub fn schema_string(table: &Table) -> String {
    let mut fields: Vec<Value> = table.columns.iter().map(|c| field(&c.name, &c.ty, c.nullable)).collect();
    fields.push(field(PARTITION_COLUMN, &ColumnType::Date, false));
    json!({"type": "struct", "fields": fields}).to_string()
}

fn field(name: &str, ty: &ColumnType, nullable: bool) -> Value {
    json!({"name": name, "type": delta_type(ty), "nullable": nullable, "metadata": {}})
}

fn delta_type(ty: &ColumnType) -> Value {
    match ty {
        ColumnType::String => json!("string"),
        ColumnType::Int32 => json!("integer"),
        ColumnType::Int64 => json!("long"),
        ColumnType::Double => json!("double"),
        ColumnType::Bool => json!("boolean"),
        ColumnType::Date => json!("date"),
        // Delta's `timestamp` is microseconds, adjusted to UTC: the column's type exactly.
        ColumnType::TimestampUsUtc => json!("timestamp"),
        ColumnType::List(elements) => {
            let fields: Vec<Value> = elements.iter().map(|e| field(&e.name, &e.ty, true)).collect();
            json!({"type": "array", "elementType": {"type": "struct", "fields": fields}, "containsNull": true})
        }
    }
}

/// Table properties: who writes the table and from which endpoint, and the checkpoint interval.
pub fn configuration(table: &Table) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("delta.checkpointInterval".into(), CHECKPOINT_INTERVAL.to_string()),
        ("wxcube.writer".into(), concat!("wxcube ", env!("CARGO_PKG_VERSION")).into()),
        ("wxcube.table".into(), table.name.clone()),
        ("wxcube.endpoint".into(), format!("https://api.weixin.qq.com/datacube/{}", table.endpoint)),
        ("wxcube.family".into(), table.family.to_string()),
    ])
}

/// Whether two schema strings describe the same columns (JSON compared as values, so that
/// another writer's spacing or key order does not matter).
pub fn same_schema(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<Value>(a), serde_json::from_str::<Value>(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_names_every_column_and_the_date_partition() {
        let table = wxcube_registry::find("upstream_msg").unwrap();
        let schema: Value = serde_json::from_str(&schema_string(table)).unwrap();
        let fields = schema["fields"].as_array().unwrap();
        assert_eq!(fields.len(), table.columns.len() + 1);
        assert_eq!(fields.last().unwrap()["type"], "date");
        assert_eq!(fields[0]["name"], "appid");
        let at = fields.iter().find(|f| f["name"] == "extracted_at").unwrap();
        assert_eq!(at["type"], "timestamp");
    }

    #[test]
    fn list_columns_are_arrays_of_structs() {
        let table = wxcube_registry::tables()
            .iter()
            .find(|t| t.columns.iter().any(|c| matches!(c.ty, ColumnType::List(_))))
            .expect("a table with a list column");
        let schema: Value = serde_json::from_str(&schema_string(table)).unwrap();
        let list = schema["fields"].as_array().unwrap().iter().find(|f| f["type"].is_object()).unwrap();
        assert_eq!(list["type"]["type"], "array");
        assert_eq!(list["type"]["elementType"]["type"], "struct");
    }
}
