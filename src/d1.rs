//! The core's SQL port on D1. Values cross as JS numbers/strings/null; rows come back as JSON.

use async_trait::async_trait;
use gatehouse_core::db::{Row, Value};
use gatehouse_core::error::InternalError;
use gatehouse_core::ports::Db;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

pub struct D1(pub D1Database);

fn js_value(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        // Safe: the core keeps integers (seconds, counts, flags) far below 2^53.
        Value::Int(i) => JsValue::from_f64(*i as f64),
        Value::Text(s) => JsValue::from_str(s),
    }
}

fn err(context: &str, e: worker::Error) -> InternalError {
    InternalError::new(format!("D1 {context}: {e}"))
}

impl D1 {
    fn statement(&self, sql: &str, params: &[Value]) -> Result<D1PreparedStatement, InternalError> {
        let values: Vec<JsValue> = params.iter().map(js_value).collect();
        self.0.prepare(sql).bind(&values).map_err(|e| err("bind", e))
    }
}

#[async_trait(?Send)]
impl Db for D1 {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, InternalError> {
        let result = self.statement(sql, params)?.all().await.map_err(|e| err("query", e))?;
        result.results::<Row>().map_err(|e| err("rows", e))
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, InternalError> {
        let result = self
            .statement(sql, params)?
            .run()
            .await
            .map_err(|e| err("execute", e))?;
        let changes = result
            .meta()
            .map_err(|e| err("meta", e))?
            .and_then(|m| m.changes)
            .unwrap_or(0);
        Ok(changes as u64)
    }

    async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError> {
        let prepared = statements
            .iter()
            .map(|(sql, params)| self.statement(sql, params))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.0.batch(prepared).await.map_err(|e| err("batch", e))?;
        results
            .iter()
            .map(|r| {
                let meta = r.meta().map_err(|e| err("meta", e))?;
                Ok(meta.and_then(|m| m.changes).unwrap_or(0) as u64)
            })
            .collect()
    }
}
