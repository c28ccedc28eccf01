//! Classic single-file checkpoints: the table state at a version, as one Parquet file, so that
//! a reader replays at most `delta.checkpointInterval` commits after it instead of the whole
//! log. Written by wxcube every [`CHECKPOINT_INTERVAL`](super::schema::CHECKPOINT_INTERVAL)
//! versions; read back by wxcube too (its own and other writers' classic checkpoints).
//!
//! One row per action, one struct column per action type (`txn`, `add`, `remove`, `metaData`,
//! `protocol`), every other column of the row null: the layout the Delta protocol specifies.
//! Maps use Parquet's `key_value`/`key`/`value` names, as Spark's checkpoints do.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListArray, MapArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::log::{Action, Add, Format, Metadata, Protocol, Remove, TableState, Txn};

/// Removed files stay in checkpoints this long after their removal (Delta's default
/// `delta.deletedFileRetentionDuration`): a VACUUM run by a reader relies on them.
const TOMBSTONE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// The checkpoint of `state` (its actions, one per row), as Parquet bytes, and its row count.
pub fn encode(state: &TableState, now_ms: i64) -> Result<(Bytes, usize), String> {
    let mut actions: Vec<Action> = Vec::new();
    if let Some(p) = &state.protocol {
        actions.push(Action { protocol: Some(p.clone()), ..Default::default() });
    }
    if let Some(m) = &state.metadata {
        actions.push(Action { metadata: Some(m.clone()), ..Default::default() });
    }
    actions.extend(state.txns.values().map(|t| Action { txn: Some(t.clone()), ..Default::default() }));
    actions.extend(state.files.values().map(|a| Action { add: Some(a.clone()), ..Default::default() }));
    actions.extend(
        state
            .tombstones
            .values()
            .filter(|r| r.deletion_timestamp.is_none_or(|t| t >= now_ms - TOMBSTONE_RETENTION_MS))
            .map(|r| Action { remove: Some(r.clone()), ..Default::default() }),
    );
    let batch = to_batch(&actions)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("1 is a valid level")))
        .set_created_by(concat!("wxcube ", env!("CARGO_PKG_VERSION")).to_string())
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok((Bytes::from(buf), actions.len()))
}

/// The state a checkpoint holds, as the actions of one version.
pub fn decode(bytes: Bytes) -> Result<Vec<Action>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| format!("unreadable checkpoint ({e})"))?;
    let mut actions = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("unreadable checkpoint ({e})"))?;
        let column = |name: &str| batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StructArray>());
        let (add, remove, txn, meta, protocol) =
            (column("add"), column("remove"), column("txn"), column("metaData"), column("protocol"));
        for row in 0..batch.num_rows() {
            let mut a = Action::default();
            if let Some(s) = set(add, row) {
                a.add = Some(Add {
                    path: text(s, "path", row).ok_or("an add without a path")?,
                    partition_values: map(s, "partitionValues", row).unwrap_or_default(),
                    size: long(s, "size", row).unwrap_or(0),
                    modification_time: long(s, "modificationTime", row).unwrap_or(0),
                    data_change: flag(s, "dataChange", row).unwrap_or(false),
                    stats: text(s, "stats", row),
                });
            } else if let Some(s) = set(remove, row) {
                a.remove = Some(Remove {
                    path: text(s, "path", row).ok_or("a remove without a path")?,
                    deletion_timestamp: long(s, "deletionTimestamp", row),
                    data_change: flag(s, "dataChange", row).unwrap_or(false),
                    extended_file_metadata: flag(s, "extendedFileMetadata", row),
                    partition_values: map(s, "partitionValues", row),
                    size: long(s, "size", row),
                });
            } else if let Some(s) = set(txn, row) {
                a.txn = Some(Txn {
                    app_id: text(s, "appId", row).ok_or("a txn without an appId")?,
                    version: long(s, "version", row).unwrap_or(0),
                    last_updated: long(s, "lastUpdated", row),
                });
            } else if let Some(s) = set(meta, row) {
                let format = s.column_by_name("format").and_then(|c| c.as_any().downcast_ref::<StructArray>());
                a.metadata = Some(Metadata {
                    id: text(s, "id", row).unwrap_or_default(),
                    name: text(s, "name", row),
                    description: text(s, "description", row),
                    format: Format {
                        provider: format.and_then(|f| text(f, "provider", row)).unwrap_or_else(|| "parquet".into()),
                        options: BTreeMap::new(),
                    },
                    schema_string: text(s, "schemaString", row).ok_or("metaData without a schema")?,
                    partition_columns: strings(s, "partitionColumns", row),
                    configuration: map(s, "configuration", row)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v?)))
                        .collect(),
                    created_time: long(s, "createdTime", row),
                });
            } else if let Some(s) = set(protocol, row) {
                a.protocol = Some(Protocol {
                    min_reader_version: int(s, "minReaderVersion", row).unwrap_or(1),
                    min_writer_version: int(s, "minWriterVersion", row).unwrap_or(2),
                    reader_features: Some(strings(s, "readerFeatures", row)).filter(|f| !f.is_empty()),
                    writer_features: Some(strings(s, "writerFeatures", row)).filter(|f| !f.is_empty()),
                });
            } else {
                continue;
            }
            actions.push(a);
        }
    }
    Ok(actions)
}

/// The action column `s` at `row`, if that row holds this action.
fn set(s: Option<&StructArray>, row: usize) -> Option<&StructArray> {
    s.filter(|s| s.is_valid(row))
}

fn child<'a, T: 'static>(s: &'a StructArray, name: &str, row: usize) -> Option<&'a T> {
    let c = s.column_by_name(name)?;
    if c.is_null(row) {
        return None;
    }
    c.as_any().downcast_ref::<T>()
}

fn text(s: &StructArray, name: &str, row: usize) -> Option<String> {
    child::<StringArray>(s, name, row).map(|a| a.value(row).to_string())
}

fn long(s: &StructArray, name: &str, row: usize) -> Option<i64> {
    child::<Int64Array>(s, name, row).map(|a| a.value(row))
}

fn int(s: &StructArray, name: &str, row: usize) -> Option<i32> {
    child::<Int32Array>(s, name, row).map(|a| a.value(row))
}

fn flag(s: &StructArray, name: &str, row: usize) -> Option<bool> {
    child::<BooleanArray>(s, name, row).map(|a| a.value(row))
}

fn map(s: &StructArray, name: &str, row: usize) -> Option<BTreeMap<String, Option<String>>> {
    let m = child::<MapArray>(s, name, row)?.value(row);
    let keys = m.column(0).as_any().downcast_ref::<StringArray>()?;
    let values = m.column(1).as_any().downcast_ref::<StringArray>()?;
    Some(
        (0..m.len())
            .map(|i| (keys.value(i).to_string(), values.is_valid(i).then(|| values.value(i).to_string())))
            .collect(),
    )
}

fn strings(s: &StructArray, name: &str, row: usize) -> Vec<String> {
    let Some(list) = child::<ListArray>(s, name, row) else { return Vec::new() };
    let items = list.value(row);
    let Some(items) = items.as_any().downcast_ref::<StringArray>() else { return Vec::new() };
    items.iter().flatten().map(str::to_string).collect()
}

// --- Writing ---------------------------------------------------------------------------------

fn names() -> MapFieldNames {
    MapFieldNames { entry: "key_value".into(), key: "key".into(), value: "value".into() }
}

/// A struct column from its children; row `i` is null where `present[i]` is false.
fn structure(children: Vec<(&str, ArrayRef)>, present: &[bool]) -> (Field, ArrayRef) {
    let fields: Fields = children.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let arrays: Vec<ArrayRef> = children.into_iter().map(|(_, a)| a).collect();
    let array = StructArray::try_new(fields.clone(), arrays, Some(NullBuffer::from(present.to_vec())))
        .expect("children have one value per row");
    (Field::new("", DataType::Struct(fields), true), Arc::new(array))
}

fn string_map<'a>(maps: impl Iterator<Item = Option<&'a BTreeMap<String, Option<String>>>>) -> ArrayRef {
    let mut b = MapBuilder::new(Some(names()), StringBuilder::new(), StringBuilder::new());
    for m in maps {
        if let Some(m) = m {
            for (k, v) in m {
                b.keys().append_value(k);
                b.values().append_option(v.as_deref());
            }
        }
        b.append(m.is_some()).expect("keys and values are appended in pairs");
    }
    Arc::new(b.finish())
}

fn to_batch(actions: &[Action]) -> Result<RecordBatch, String> {
    let strs =
        |f: &dyn Fn(&Action) -> Option<&str>| -> ArrayRef { Arc::new(actions.iter().map(f).collect::<StringArray>()) };
    let longs =
        |f: &dyn Fn(&Action) -> Option<i64>| -> ArrayRef { Arc::new(actions.iter().map(f).collect::<Int64Array>()) };
    let flags =
        |f: &dyn Fn(&Action) -> Option<bool>| -> ArrayRef { Arc::new(actions.iter().map(f).collect::<BooleanArray>()) };
    let ints =
        |f: &dyn Fn(&Action) -> Option<i32>| -> ArrayRef { Arc::new(actions.iter().map(f).collect::<Int32Array>()) };
    let present = |f: &dyn Fn(&Action) -> bool| -> Vec<bool> { actions.iter().map(f).collect() };

    let txn = structure(
        vec![
            ("appId", strs(&|a| a.txn.as_ref().map(|t| t.app_id.as_str()))),
            ("version", longs(&|a| a.txn.as_ref().map(|t| t.version))),
            ("lastUpdated", longs(&|a| a.txn.as_ref().and_then(|t| t.last_updated))),
        ],
        &present(&|a| a.txn.is_some()),
    );
    let add = structure(
        vec![
            ("path", strs(&|a| a.add.as_ref().map(|x| x.path.as_str()))),
            ("partitionValues", string_map(actions.iter().map(|a| a.add.as_ref().map(|x| &x.partition_values)))),
            ("size", longs(&|a| a.add.as_ref().map(|x| x.size))),
            ("modificationTime", longs(&|a| a.add.as_ref().map(|x| x.modification_time))),
            ("dataChange", flags(&|a| a.add.as_ref().map(|x| x.data_change))),
            ("stats", strs(&|a| a.add.as_ref().and_then(|x| x.stats.as_deref()))),
        ],
        &present(&|a| a.add.is_some()),
    );
    let remove = structure(
        vec![
            ("path", strs(&|a| a.remove.as_ref().map(|x| x.path.as_str()))),
            ("deletionTimestamp", longs(&|a| a.remove.as_ref().and_then(|x| x.deletion_timestamp))),
            ("dataChange", flags(&|a| a.remove.as_ref().map(|x| x.data_change))),
            ("extendedFileMetadata", flags(&|a| a.remove.as_ref().and_then(|x| x.extended_file_metadata))),
            (
                "partitionValues",
                string_map(actions.iter().map(|a| a.remove.as_ref().and_then(|x| x.partition_values.as_ref()))),
            ),
            ("size", longs(&|a| a.remove.as_ref().and_then(|x| x.size))),
        ],
        &present(&|a| a.remove.is_some()),
    );
    let meta_present = present(&|a| a.metadata.is_some());
    let no_options = BTreeMap::new();
    let format = structure(
        vec![
            ("provider", strs(&|a| a.metadata.as_ref().map(|m| m.format.provider.as_str()))),
            ("options", string_map(actions.iter().map(|a| a.metadata.as_ref().map(|_| &no_options)))),
        ],
        &meta_present,
    );
    let mut partition_columns = ListBuilder::new(StringBuilder::new());
    for a in actions {
        match &a.metadata {
            Some(m) => {
                for c in &m.partition_columns {
                    partition_columns.values().append_value(c);
                }
                partition_columns.append(true);
            }
            None => partition_columns.append(false),
        }
    }
    let configurations: Vec<Option<BTreeMap<String, Option<String>>>> = actions
        .iter()
        .map(|a| {
            a.metadata.as_ref().map(|m| m.configuration.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect())
        })
        .collect();
    let metadata = structure(
        vec![
            ("id", strs(&|a| a.metadata.as_ref().map(|m| m.id.as_str()))),
            ("name", strs(&|a| a.metadata.as_ref().and_then(|m| m.name.as_deref()))),
            ("description", strs(&|a| a.metadata.as_ref().and_then(|m| m.description.as_deref()))),
            ("format", format.1),
            ("schemaString", strs(&|a| a.metadata.as_ref().map(|m| m.schema_string.as_str()))),
            ("partitionColumns", Arc::new(partition_columns.finish())),
            ("configuration", string_map(configurations.iter().map(Option::as_ref))),
            ("createdTime", longs(&|a| a.metadata.as_ref().and_then(|m| m.created_time))),
        ],
        &meta_present,
    );
    let protocol = structure(
        vec![
            ("minReaderVersion", ints(&|a| a.protocol.as_ref().map(|p| p.min_reader_version))),
            ("minWriterVersion", ints(&|a| a.protocol.as_ref().map(|p| p.min_writer_version))),
        ],
        &present(&|a| a.protocol.is_some()),
    );
    let columns = [("txn", txn), ("add", add), ("remove", remove), ("metaData", metadata), ("protocol", protocol)];
    let fields: Vec<Field> = columns.iter().map(|(n, (f, _))| f.clone().with_name(*n)).collect();
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, (_, a))| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::delta::log::{TableState, decode_commit};

    #[test]
    fn a_checkpoint_reads_back_as_the_state_it_was_written_from() {
        let commit = br#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
{"metaData":{"id":"t","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":["ref_date"],"configuration":{"wxcube.table":"x"},"createdTime":5}}
{"txn":{"appId":"wxcube-r1","version":3,"lastUpdated":7}}
{"add":{"path":"ref_date=2024-03-01/part-00_wxcube-r-1.parquet","partitionValues":{"ref_date":"2024-03-01"},"size":10,"modificationTime":9,"dataChange":true,"stats":"{\"numRecords\":2}"}}
{"add":{"path":"ref_date=2024-03-02/part-00_wxcube-r-2.parquet","partitionValues":{"ref_date":"2024-03-02"},"size":11,"modificationTime":9,"dataChange":true}}
"#;
        let mut state = TableState::default();
        state.apply(0, decode_commit(commit).unwrap()).unwrap();
        let remove = br#"{"remove":{"path":"ref_date=2024-03-02/part-00_wxcube-r-2.parquet","deletionTimestamp":100,"dataChange":true,"size":11}}"#;
        state.apply(1, decode_commit(remove).unwrap()).unwrap();
        let (bytes, rows) = encode(&state, 100).unwrap();
        assert_eq!(rows, 5, "protocol, metaData, txn, one add, one tombstone");
        let mut back = TableState::default();
        back.apply(1, decode(bytes).unwrap()).unwrap();
        assert_eq!(back.files, state.files);
        assert_eq!(back.txns, state.txns);
        assert_eq!(back.metadata, state.metadata);
        assert_eq!(back.protocol, state.protocol);
        assert_eq!(back.tombstones.len(), 1);
    }
}
