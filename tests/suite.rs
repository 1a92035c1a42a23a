//! The integration tests, linked into one binary: each file below is one module, as it was one
//! test binary before. A release build links every test binary with fat LTO, and on two cores
//! linking two dozen of them took most of `cargo test`. Four stay binaries of their own:
//! hostile_rss and install_no_inotify measure or lower limits of the whole test process, and
//! uplink and wait extend `common::Node` with methods of the same names as cni_protocol's and
//! rules_guard's.

mod common;
mod hostile_support;
mod install_support;

mod cli;
mod cni_protocol;
mod concurrency;
mod deploy_files;
mod doctor;
mod entry_schema;
mod faults;
mod faults_netlink;
mod guard;
mod guard_bench;
mod hostile_files;
mod hostile_input;
mod hostile_nm;
mod install;
mod install_coexist;
mod install_crash;
mod install_entry;
mod install_script;
mod install_wait;
mod install_watch;
mod log_rotation;
mod netns;
mod nm_oracle;
mod refusal_nm;
mod route_guard;
mod route_identity;
mod rules_guard;
mod run_dir;
mod static_binary;
mod wait_bench;
