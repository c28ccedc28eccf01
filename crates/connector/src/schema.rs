//! The Arrow schema of a table's Parquet files, from the registry's plain column types.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use wxcube_registry::{ColumnType, Table};

/// A table's Arrow schema: its columns in order, without `ref_date` (the partition).
pub trait ArrowSchema {
    fn schema(&self) -> SchemaRef;
}

impl ArrowSchema for Table {
    fn schema(&self) -> SchemaRef {
        static SCHEMAS: OnceLock<HashMap<String, SchemaRef>> = OnceLock::new();
        let schemas =
            SCHEMAS.get_or_init(|| wxcube_registry::tables().iter().map(|t| (t.name.clone(), build(t))).collect());
        // A table outside the registry (a test's own) is built each time.
        schemas.get(&self.name).cloned().unwrap_or_else(|| build(self))
    }
}

fn build(table: &Table) -> SchemaRef {
    Arc::new(Schema::new(
        table.columns.iter().map(|c| Field::new(&c.name, arrow_type(&c.ty), c.nullable)).collect::<Vec<_>>(),
    ))
}

/// The Arrow type of a column type: portable types every reader understands.
///
/// A list column is a list of structs whose items are named `element`, as the Parquet format
/// names them, so that every reader (DuckDB, Spark, Polars) maps it the same way; the struct
/// fields are nullable, since an element may leave one out.
pub fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::TimestampUsUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::List(elements) => {
            let fields: Vec<Field> = elements.iter().map(|e| Field::new(&e.name, arrow_type(&e.ty), true)).collect();
            DataType::List(Arc::new(Field::new("element", DataType::Struct(fields.into()), true)))
        }
    }
}
