//! The event loop: subscribe, look once, then sleep in poll(2) until the kernel reports a change,
//! a signal arrives or a timer (settle, grace, back-off, the safety resync) is due.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::args::Options;
use super::metrics::Status;
use super::timing::{Fights, Grace, Item, Settle, RESYNC_EVERY};
use super::{http, source};
use crate::config::{PluginConfig, RefuseConfig, RulesConfig};
use crate::host::baseline::{self, GuardReport};
use crate::host::links::LinkTable;
use crate::host::route_guard::{self, GuardOptions};
use crate::host::routes::DefaultRoute;
use crate::host::{refusal, rules};
use crate::log::{Logger, Rotation};
use crate::netlink::{
    describe_rule, EventSocket, LinkExt, LinkMessage, Netlink, RouteMessage, RouteNetlinkMessage,
    RuleMessage, HOST_GUARD_GROUPS,
};
use crate::state::StateDir;

const VERB: &str = "GUARD";

pub struct Daemon {
    opts: Options,
    config: PluginConfig,
    log: Logger,
    signals: SignalFd,
    events: EventSocket,
    status: Arc<Mutex<Status>>,
    settle: Settle,
    fights: Fights,
    grace: Grace,
    /// ifindex → (name, administratively up), kept current from link notifications.
    links: HashMap<u32, (String, bool)>,
    /// The devices of the baseline's routes: their link and address changes are worth a look.
    watched: HashSet<String>,
    /// Missing-and-unrestorable items of the last look, so each is logged and counted once.
    failing: HashSet<String>,
    last_error: Option<String>,
    last_look: Instant,
    last_full: Instant,
    resync: bool,
}

enum Wake {
    Continue,
    Stop(Signal),
}

impl Daemon {
    pub fn start(opts: Options) -> Result<Daemon> {
        let (config, origin) = source::load(&opts)?;
        // Blocked before any thread exists, so every thread inherits the mask and the signals
        // are only ever read from the signalfd, between two looks.
        let mut mask = SigSet::empty();
        for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            mask.add(signal);
        }
        mask.thread_block()
            .context("block SIGTERM, SIGINT and SIGHUP")?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("open a signalfd")?;
        // Subscribed before the first look: whatever changes after it is already queued.
        let events = EventSocket::subscribe(&HOST_GUARD_GROUPS)
            .context("subscribe to route, rule, link and address notifications")?;
        let status = Arc::new(Mutex::new(Status::default()));
        if let Some(addr) = &opts.metrics_addr {
            let listener = TcpListener::bind(addr)
                .with_context(|| format!("listen on --metrics-addr {addr}"))?;
            http::spawn(listener, Arc::clone(&status)).context("start the HTTP thread")?;
        }
        let log = logger_for(&config);
        let now = Instant::now();
        let mut daemon = Daemon {
            settle: Settle::new(opts.settle),
            grace: Grace::new(Duration::from_millis(config.routes_dhcp_grace_ms)),
            opts,
            config,
            log,
            signals,
            events,
            status,
            fights: Fights::default(),
            links: HashMap::new(),
            watched: HashSet::new(),
            failing: HashSet::new(),
            last_error: None,
            last_look: now,
            last_full: now,
            resync: true,
        };
        daemon.log.info(&format!(
            "guarding the default routes and rules of this network namespace (configuration \
             from {origin}, settle {} ms, grace {} ms, metrics {})",
            daemon.opts.settle.as_millis(),
            daemon.config.routes_dhcp_grace_ms,
            daemon.opts.metrics_addr.as_deref().unwrap_or("off")
        ));
        Ok(daemon)
    }

    pub fn run(&mut self) -> Result<()> {
        loop {
            let now = Instant::now();
            if self.resync || now >= self.last_full + RESYNC_EVERY {
                self.full_look();
            } else if self.settle.due().is_some_and(|due| due <= now)
                || self.grace.grace_ended(self.last_look, now)
                || self.fights.hold_ended(self.last_look, now)
            {
                self.look(Instant::now());
            }
            self.wait()?;
            if let Wake::Stop(signal) = self.read_signals() {
                self.log.info(&format!("{signal} received; stopping"));
                return Ok(());
            }
            self.read_events()?;
            self.fights.settle_restores(Instant::now());
            self.status().fight_backoff_seconds = self.fights.backoff_seconds();
        }
    }

    /// Sleeps until a signal, an event, or the next timer.
    fn wait(&self) -> Result<()> {
        let now = Instant::now();
        let wake = [
            self.settle.due(),
            self.grace.next_expiry(now),
            self.fights.next_wakeup(now),
            Some(self.last_full + RESYNC_EVERY),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        // Round up, so the last sub-millisecond does not become a zero-timeout spin.
        let ms = wake
            .saturating_duration_since(now)
            .as_micros()
            .div_ceil(1000);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.events.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(errno) => Err(errno).context("wait for events"),
        }
    }

    fn read_signals(&mut self) -> Wake {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => self.reload(),
                Ok(signal) => return Wake::Stop(signal),
                Err(_) => {}
            }
        }
        Wake::Continue
    }

    fn reload(&mut self) {
        match source::load(&self.opts) {
            Ok((config, origin)) => {
                self.log = logger_for(&config);
                self.grace
                    .set_period(Duration::from_millis(config.routes_dhcp_grace_ms));
                self.config = config;
                self.log
                    .info(&format!("SIGHUP: configuration re-read from {origin}"));
                self.resync = true;
            }
            Err(err) => self.log.error(&format!(
                "SIGHUP: keeping the configuration in use: {err:#}"
            )),
        }
    }

    fn read_events(&mut self) -> Result<()> {
        match self.events.queued() {
            Ok(batch) => {
                let now = Instant::now();
                for message in batch {
                    self.note(message, now);
                }
                Ok(())
            }
            // Lost or unreadable notifications: what changed is unknown, so look at everything.
            Err(err) if err.is_overrun() || err.errno().is_none() => {
                self.log
                    .warn(&format!("{err}; resynchronizing with a full look"));
                self.status().overruns += 1;
                self.resync = true;
                Ok(())
            }
            Err(err) => Err(err).context("read notifications"),
        }
    }

    /// Files one notification: whether it is worth a look, and what it means for the fight and
    /// grace clocks.
    fn note(&mut self, message: RouteNetlinkMessage, now: Instant) {
        match message {
            RouteNetlinkMessage::NewRoute(msg) => self.route_event(&msg, false, now),
            RouteNetlinkMessage::DelRoute(msg) => self.route_event(&msg, true, now),
            RouteNetlinkMessage::NewRule(msg) => self.rule_event(&msg, false, now),
            RouteNetlinkMessage::DelRule(msg) => self.rule_event(&msg, true, now),
            RouteNetlinkMessage::NewLink(msg) => self.link_seen(&msg, now),
            RouteNetlinkMessage::DelLink(msg) => {
                if let Some((name, _)) = self.links.remove(&msg.header.index) {
                    self.status().links_down.remove(&name);
                    if self.watched.contains(&name) {
                        self.log.warn(&format!(
                            "link {name} was deleted; the baseline routes through it cannot be                              restored until it is back"
                        ));
                        self.settle.event(now);
                    }
                }
            }
            RouteNetlinkMessage::NewAddress(msg) | RouteNetlinkMessage::DelAddress(msg) => {
                // IPv4 drops routes whose gateway left with an address without a notification
                // of their own; the address change is the only sign.
                let watched = self
                    .links
                    .get(&msg.header.index)
                    .is_some_and(|(name, _)| self.watched.contains(name));
                if watched {
                    self.settle.event(now);
                }
            }
            _ => {}
        }
    }
    fn route_event(&mut self, msg: &RouteMessage, deleted: bool, now: Instant) {
        let links = &self.links;
        let name_of = |i: u32| links.get(&i).map(|(name, _)| name.clone());
        let Some(route) = DefaultRoute::from_message(msg, &name_of) else {
            return;
        };
        self.settle.event(now);
        if deleted {
            self.grace.emptied(&route, now);
            for slot in route.slots() {
                self.fought(Item::Route(slot), &route.to_string(), now);
            }
        } else {
            self.grace.filled(&route);
        }
    }

    fn rule_event(&mut self, msg: &RuleMessage, deleted: bool, now: Instant) {
        let selectors = &self.config.rules.selectors;
        if !selectors.iter().any(|s| rules::selects(s, msg)) {
            return;
        }
        self.settle.event(now);
        if deleted {
            let text = describe_rule(msg);
            self.fought(Item::Rule(text.clone()), &text, now);
        }
    }

    /// A deletion of something hostguard may have just restored.
    fn fought(&mut self, item: Item, what: &str, now: Instant) {
        if let Some(backoff) = self.fights.deleted(&item, now) {
            self.log.warn(&format!(
                "{} {what} was deleted again within {} ms of being restored, {} times in a row: \
                 something on this node removes it on purpose (`hostguard doctor` names known \
                 culprits); next restore in {} s (back-off step {})",
                item.kind(),
                super::timing::FIGHT_WINDOW.as_millis(),
                super::timing::FIGHT_STREAK,
                backoff.delay.as_secs(),
                backoff.step
            ));
        }
    }

    /// Keeps the link table current; a watched link going down is logged and counted, and never
    /// touched.
    fn link_seen(&mut self, msg: &LinkMessage, now: Instant) {
        let Some(name) = msg.name().map(str::to_string) else {
            return;
        };
        let up = msg.is_up();
        let before = self.links.insert(msg.header.index, (name.clone(), up));
        let renamed = before.as_ref().is_some_and(|(old, _)| *old != name);
        if self.watched.contains(&name) || renamed {
            self.settle.event(now);
        }
        match before {
            Some((_, true)) if !up => {
                if let Some(why) = self.watch_reason(&name) {
                    self.log.warn(&format!(
                        "link {name} went down ({why}); hostguard never changes a link's state"
                    ));
                    self.status().links_down.insert(name);
                }
            }
            Some((_, false)) if up && self.status().links_down.remove(&name) => {
                self.log.info(&format!("link {name} is up again"));
            }
            _ => {}
        }
    }

    /// Why a link's state is worth watching, if it is: it carries a baseline route, or it is one
    /// that hostguard refuses to touch (team, NetworkManager), whose loss cuts nodes off.
    fn watch_reason(&self, name: &str) -> Option<String> {
        if self.watched.contains(name) {
            return Some("a baseline default route's device".into());
        }
        let mut nl = Netlink::new().ok()?;
        let table = LinkTable::load(&mut nl).ok()?;
        let every_kind = RefuseConfig {
            team: true,
            network_manager: true,
        };
        refusal::refusal(&table, name, every_kind, &self.config.network_manager)
            .map(|refused| refused.evidence)
    }

    /// The start-up look and the safety net: the link table anew, a look, and the watched links'
    /// state. Routes found missing with no deletion heard start their grace now.
    fn full_look(&mut self) {
        self.resync = false;
        let now = Instant::now();
        self.last_full = now;
        match Netlink::new().and_then(|mut nl| nl.links()) {
            Ok(links) => {
                self.links = links
                    .iter()
                    .filter_map(|l| Some((l.header.index, (l.name()?.to_string(), l.is_up()))))
                    .collect();
            }
            Err(err) => self.log.error(&format!("cannot list the links: {err}")),
        }
        if let Ok(state) = StateDir::open(&self.config.state_dir, &self.config.run_dir) {
            let plugin = &self.config;
            let refused = refusal::check(plugin.refuse, &plugin.network_manager);
            let options = baseline::route_options(plugin, &refused);
            if let Ok(missing) = baseline::missing(&state, &options, &plugin.rules.selectors) {
                let gone = missing.unrestorable.into_iter().map(|u| u.route);
                for route in missing.restorable.into_iter().chain(gone) {
                    self.grace.emptied(&route, now);
                }
            }
        }
        self.look(now);
        let down: Vec<String> = self
            .links
            .values()
            .filter(|(_, up)| !up)
            .map(|(name, _)| name.clone())
            .collect();
        let watched_down: std::collections::BTreeSet<String> = down
            .into_iter()
            .filter(|name| self.watch_reason(name).is_some())
            .collect();
        self.status().links_down = watched_down;
    }

    /// One look at the host through the shared guard, and what it means for readiness, metrics
    /// and the clocks.
    fn look(&mut self, now: Instant) {
        let started = self.settle.pending_since().unwrap_or(now);
        self.settle.clear();
        self.last_look = now;
        self.status().looks += 1;
        // Routes are held one by one, through the guard's options: a DHCP or RA route until its
        // grace has elapsed, any route while it is in fight back-off (the guard asks `held` of
        // every route, `grace_elapsed` only of DHCP and RA ones). Rules only as a kind, since
        // the rule guard takes no per-rule answer.
        let hold_rules = self.fights.holds_kind("rule", now);
        let report =
            StateDir::open(&self.config.state_dir, &self.config.run_dir).and_then(|state| {
                guard_host(
                    &state,
                    &self.config,
                    &|route| self.grace.grace_elapsed(route, now),
                    &|route| self.route_held(route, now),
                    !hold_rules,
                )
            });
        let report = match report {
            Ok(report) => report,
            Err(err) => {
                let text = format!("cannot guard the host: {err:#}");
                if self.last_error.as_ref() != Some(&text) {
                    self.log.error(&text);
                }
                self.status().not_ready = Some(text.clone());
                self.last_error = Some(text);
                return;
            }
        };
        self.last_error = None;
        let done = Instant::now();
        let took = done.saturating_duration_since(started).as_secs_f64();
        if report.recorded {
            self.log.info(&format!(
                "baseline recorded with {} default routes",
                report.routes.current.len()
            ));
        }
        for route in &report.routes.current {
            self.grace.filled(route);
        }
        for route in &report.routes.restored {
            self.log.warn(&format!(
                "restored missing default route: {route} ({:.1} ms after the first event)",
                took * 1000.0
            ));
            for slot in route.slots() {
                self.fights.restored(Item::Route(slot), done);
            }
        }
        for rule in &report.rules.restored {
            self.log.warn(&format!(
                "restored missing policy rule: {rule} ({:.1} ms after the first event)",
                took * 1000.0
            ));
            self.fights.restored(Item::Rule(rule.clone()), done);
        }

        let mut reasons = Vec::new();
        let mut failing = HashSet::new();
        let mut new_failures = Vec::new();
        for gone in &report.routes.unrestored {
            if self.route_held(&gone.route, now) {
                reasons.push(format!(
                    "default route {} is missing: its repair is in fight back-off",
                    gone.route
                ));
                continue;
            }
            // Inside its grace a DHCP or RA route is no failure: its own daemon may be renewing
            // it. The look at the grace's end judges it.
            if route_guard::daemon_owned(&gone.route) && !self.grace.grace_elapsed(&gone.route, now)
            {
                continue;
            }
            let key = format!("route {}: {}", gone.route, gone.reason);
            if !self.failing.contains(&key) {
                self.log.warn(&format!(
                    "default route missing and not restored: {}: {}",
                    gone.route, gone.reason
                ));
                new_failures.push(("route", reason_label(&gone.reason)));
            }
            failing.insert(key);
            reasons.push(format!(
                "default route {} is missing: {}",
                gone.route, gone.reason
            ));
        }
        for (rule, reason) in &report.rules.unrestored {
            if self.fights.held(&Item::Rule(rule.clone()), now) {
                reasons.push(format!(
                    "policy rule {rule} is missing: its repair is in fight back-off"
                ));
                continue;
            }
            if hold_rules && self.config.rules.restore {
                continue;
            }
            let key = format!("rule {rule}: {reason}");
            if !self.failing.contains(&key) {
                self.log.warn(&format!(
                    "policy rule missing and not restored: {rule}: {reason}"
                ));
                new_failures.push(("rule", reason_label(reason)));
            }
            failing.insert(key);
            reasons.push(format!("policy rule {rule} is missing: {reason}"));
        }
        // A route that left without a deletion heard (IPv4 drops a downed link's routes
        // silently) starts its grace when a look first finds it missing.
        for gone in &report.routes.unrestored {
            self.grace.emptied(&gone.route, now);
        }
        self.failing = failing;
        self.watched = report
            .routes
            .current
            .iter()
            .chain(report.routes.unrestored.iter().map(|u| &u.route))
            .flat_map(|route| route.devices())
            .map(str::to_string)
            .collect();

        let backoff = self.fights.backoff_seconds();
        let mut status = self.status();
        status.baseline_loaded = true;
        status.routes_missing = report.routes.unrestored.len();
        status.rules_missing = report.rules.unrestored.len();
        let restored = [
            ("route", report.routes.restored.len()),
            ("rule", report.rules.restored.len()),
        ];
        for (kind, n) in restored {
            *status.restores.entry(kind).or_default() += n as u64;
            for _ in 0..n {
                status.observe_repair(took);
            }
        }
        for failure in new_failures {
            *status.failures.entry(failure).or_default() += 1;
        }
        status.fight_backoff_seconds = backoff;
        status.not_ready = match reasons.len() {
            0 => None,
            1 => reasons.pop(),
            n => Some(format!("{} (and {} more)", reasons[0], n - 1)),
        };
    }

    /// A route in fight back-off: not restored now, whoever owns it.
    fn route_held(&self, route: &DefaultRoute, now: Instant) -> bool {
        route
            .slots()
            .into_iter()
            .any(|slot| self.fights.held(&Item::Route(slot), now))
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        match self.status.lock() {
            Ok(status) => status,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn logger_for(config: &PluginConfig) -> Logger {
    let mut log = Logger::for_daemon(VERB, config.log_level);
    if let Some(path) = &config.log_file {
        let rotation = Rotation::from_config(config.log_max_size_mb, config.log_max_files);
        log.open_file(path, config.log_level, rotation);
    }
    log
}

/// The daemon's one call into the host guards: the function a CNI ADD runs, with its locks, so an
/// ADD and the daemon never act on a half-moved uplink or race each other's restore. Only the
/// timing is the daemon's: which DHCP or RA route's grace has elapsed, and which route is held
/// in fight back-off. A rule in back-off turns the restore of rules off for that look.
fn guard_host(
    state: &StateDir,
    plugin: &PluginConfig,
    grace_elapsed: &dyn Fn(&DefaultRoute) -> bool,
    held: &dyn Fn(&DefaultRoute) -> bool,
    restore_rules: bool,
) -> Result<GuardReport> {
    let refused = refusal::check(plugin.refuse, &plugin.network_manager);
    let options = GuardOptions {
        grace_elapsed,
        held,
        ..baseline::route_options(plugin, &refused)
    };
    let rules = RulesConfig {
        selectors: plugin.rules.selectors.clone(),
        restore: plugin.rules.restore && restore_rules,
    };
    baseline::guard_and_adopt(state, &options, &rules)
}

/// A small, fixed set of values for the failures metric's `reason` label (the full reason is in
/// the log and in /readyz).
fn reason_label(reason: &str) -> &'static str {
    // The route guard's own wording (route_guard, route_identity): a device that is now another
    // device counts as gone, and a port without a successor is its own reason.
    const LABELS: [(&str, &str); 7] = [
        (" is down", "device_down"),
        (" is gone", "device_gone"),
        ("belongs to another device", "device_gone"),
        (" is a port of ", "device_is_port"),
        ("does not touch", "refused"),
        ("restore is false", "restore_off"),
        ("on-link", "gateway_not_onlink"),
    ];
    LABELS
        .iter()
        .find(|(needle, _)| reason.contains(needle))
        .map_or("error", |(_, label)| label)
}
