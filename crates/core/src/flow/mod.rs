//! Signing in as a flow of stages (issue 11). A flow is one in-progress sign-in: who it is for,
//! the user once identified, the factors passed so far with their times. [`plan`] decides the
//! next stage from that and from what the purpose and the deployment require; the stages
//! (identify, password, second factor, consent, new password) show a page and take its form.
//! Nothing here depends on `oidc` or `gateway`: each purpose completes itself.

pub mod plan;
