//! Values with a meaning of their own, as types rather than strings: the protocol's enums, the
//! kinds of events, an app's header policy. A lower layer: it imports no endpoint.

pub mod email;
pub mod event_kind;
pub mod header_policy;
pub mod profile;
pub mod protocol;
