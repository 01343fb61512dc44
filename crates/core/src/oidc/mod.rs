//! The OpenID Connect provider: one module per endpoint.

pub mod access;
pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod discovery;
pub mod id_token_hint;
pub mod introspect;
pub mod jwks;
pub mod logout;
pub mod pkce;
pub mod redirect_uri;
pub mod revoke;
pub mod scope;
pub mod token;
pub mod userinfo;
