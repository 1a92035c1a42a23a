//! The host model: what hostguard observes and guards in the namespace it runs in.

pub mod baseline;
pub mod route_guard;
pub mod routes;
pub mod uplink;
