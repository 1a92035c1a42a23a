//! hostguard: a CNI chaining plugin that keeps the node's own network intact.
//!
//! `main.rs` is only the entry point; everything lives here so integration tests and benches
//! reach it.

pub mod args;
pub mod atomic;
pub mod cli;
pub mod cni;
pub mod config;
pub mod doctor;
pub mod guard;
pub mod host;
pub mod install;
pub mod keyfile;
pub mod lock;
pub mod log;
pub mod netlink;
pub mod rootfs;
pub mod state;
pub mod validate;
