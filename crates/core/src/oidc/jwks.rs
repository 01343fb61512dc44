//! `GET /oauth2/jwks.json`: every published key, the active signers and the retired ones whose
//! tokens may still be valid.

use serde_json::{json, Value};

use crate::http::Response;
use crate::Ctx;

pub fn handle(ctx: &Ctx<'_>) -> Response {
    let keys: Vec<Value> = ctx
        .signer
        .public_keys()
        .iter()
        .map(|k| {
            let mut jwk = k.jwk.clone();
            jwk.insert("kid".into(), json!(k.kid));
            jwk.insert("alg".into(), json!(k.alg.as_str()));
            jwk.insert("use".into(), json!("sig"));
            Value::Object(jwk)
        })
        .collect();
    let mut resp = Response::json(200, &json!({ "keys": keys }));
    // Short enough that a rotation reaches relying parties well before the retired key goes.
    resp.set_header("cache-control", "public, max-age=300");
    resp
}
