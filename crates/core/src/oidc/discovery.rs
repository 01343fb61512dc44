//! `GET /.well-known/openid-configuration` (OIDC Discovery 1.0 §3): exactly what is supported.

use serde_json::json;

use crate::factors::amr;
use crate::http::Response;
use crate::oidc::{claims, scope};
use crate::types::protocol::{AuthMethod, GrantType, Prompt};
use crate::Ctx;

/// The claims every ID token may carry besides the user's (`claims::supported`).
const PROTOCOL_CLAIMS: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "azp",
    "sid",
    "acr",
    "amr",
];

pub fn handle(ctx: &Ctx<'_>) -> Response {
    let iss = ctx.issuer();
    let body = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "jwks_uri": format!("{iss}/oauth2/jwks.json"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "end_session_endpoint": format!("{iss}/oauth2/logout"),
        "scopes_supported": scope::SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": AuthMethod::ALL.map(AuthMethod::as_str),
        "revocation_endpoint_auth_methods_supported": AuthMethod::ALL.map(AuthMethod::as_str),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": Prompt::ALL.map(Prompt::as_str),
        // The multi-factor class only where a second factor can be passed.
        "acr_values_supported": amr::acr_values_supported(iss, ctx.settings.mfa != crate::flow::plan::MfaMode::Off),
        "claims_supported": PROTOCOL_CLAIMS.iter().copied().chain(claims::supported()).collect::<Vec<_>>(),
        "claims_parameter_supported": true,
        "claim_types_supported": ["normal"],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    let mut resp = Response::json(200, &body);
    resp.set_header("cache-control", "public, max-age=300");
    resp
}
