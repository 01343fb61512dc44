//! The web layer every endpoint shares: the route table and the cookie jar.

pub mod cookies;
pub mod router;
