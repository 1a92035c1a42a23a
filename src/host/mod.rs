//! The host model: what hostguard observes and guards in the namespace it runs in.

pub mod baseline;
pub mod links;
pub mod nm;
pub mod refusal;
pub mod route_guard;
pub mod route_identity;
pub mod routes;
pub mod rules;
pub mod uplink;
pub mod wait;
