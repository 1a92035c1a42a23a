//! `hostguard guard`: the node daemon that repairs the host between pods. It holds only the
//! event loop, the settle and back-off timing and the HTTP endpoints; every decision about the
//! host comes from `host`, through the same function a CNI ADD calls.

mod args;
mod daemon;
mod http;
mod metrics;
mod source;
pub mod timing;

pub use args::USAGE;

/// Runs the daemon until SIGTERM or SIGINT; returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let opts = match args::parse(args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(why) => {
            eprintln!("hostguard guard: {why}\n\n{USAGE}");
            return 2;
        }
    };
    match daemon::Daemon::start(opts).and_then(|mut daemon| daemon.run()) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("hostguard guard: {err:#}");
            1
        }
    }
}
