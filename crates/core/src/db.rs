//! Values and rows crossing the SQL port. Integers stay within 2^53 (D1 passes them through
//! JavaScript numbers), so ids are TEXT and times are seconds.

use serde::de::DeserializeOwned;

use crate::error::InternalError;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v as i64)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row, column name to value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// One SQL statement with its parameters, for a batch.
pub type Statement = (&'static str, Vec<Value>);

/// Decodes a row into a typed record.
pub fn decode<T: DeserializeOwned>(row: Row) -> Result<T, InternalError> {
    serde_json::from_value(serde_json::Value::Object(row)).map_err(|e| InternalError::new(format!("decoding row: {e}")))
}

/// Decodes the first row, if any.
pub fn first<T: DeserializeOwned>(rows: Vec<Row>) -> Result<Option<T>, InternalError> {
    rows.into_iter().next().map(decode).transpose()
}

/// Builds a parameter array from values of mixed types.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { [$($crate::db::Value::from($v)),*] };
}

/// The same as an owned list, for batched statements.
#[macro_export]
macro_rules! params_vec {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Value::from($v)),*] };
}
