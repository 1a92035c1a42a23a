//! The install loop: look at the directory, wait for the upstream to be valid and settled, write
//! our conflist, and with `--watch` keep doing so on every change until SIGTERM.
//!
//! Every look is a full re-scan (a directory of a few files costs microseconds), so events are only
//! wake-ups: a missed or overflowed event cannot leave us acting on stale knowledge.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::binary::{self, Copied};
use super::chain::{self, Chained};
use super::discover;
use super::fight::{self, Fight, Verdict};
use super::inplace::{self, Check};
use super::marker;
use super::snapshot::{self, Links, Snapshot};
use super::validate;
use super::watch::{Changes, Last, Wake, Watcher};
use super::write::{self, Existing};
use super::{note, report};

/// How long an upstream must stay unchanged before we trust it is not still being written, unless
/// its writer has visibly finished (closed it after writing, or renamed it into place). Writes and
/// renames move the file's ctime and raise inotify events; either restarts the wait.
pub const SETTLE: Duration = Duration::from_millis(50);

/// What `install` was asked to do, with the hostguard entry already built.
#[derive(Debug, Clone)]
pub struct Plan {
    pub conf_dir: PathBuf,
    pub output: String,
    pub primary: Option<String>,
    pub entry: Map<String, Value>,
    pub bin_dir: Option<PathBuf>,
    pub timeout: Duration,
    pub watch: bool,
    /// Co-tenancy mode: edit our entry into the loaded list instead of writing `output`.
    pub in_place: bool,
}

/// A valid upstream version that has not yet stayed unchanged for `SETTLE`.
#[derive(Debug)]
struct Candidate {
    name: OsString,
    snapshot: Snapshot,
    quiet_since: Instant,
}

enum Look {
    /// No usable upstream; the reason completes "waiting for a CNI config in DIR: ".
    Waiting(String),
    /// Valid but changed too recently; look again at this instant.
    Settling(Instant, OsString),
    Ready(Ready),
    /// Only an operator can fix this (ours would not be the file a runtime loads).
    Refused(String),
}

struct Ready {
    name: OsString,
    snapshot: Snapshot,
    action: Action,
}

enum Action {
    /// Our own output, rendered whole.
    Output(Chained),
    /// In place: the upstream with our entry edited in, or `None` when it already has exactly it.
    Insert(Option<Vec<u8>>),
}

enum Synced {
    Wrote,
    UpToDate,
    /// Another writer keeps changing our output; repair no earlier than this.
    Held(Instant),
    Refused(String),
}

struct Installer {
    plan: Plan,
    watcher: Watcher,
    candidate: Option<Candidate>,
    /// The upstream version last chained; known settled, so seeing it again needs no new wait.
    acted_on: Option<(OsString, Snapshot)>,
    /// What we last put in (or found in) our output; anything else there was written by someone else.
    last_written: Option<Vec<u8>>,
    fight: Fight,
    hold_until: Option<Instant>,
    retry_delay: Duration,
    /// After a failed sync, no new attempt before this, whatever events arrive in between: a
    /// failure that other writers' events keep re-triggering would otherwise be a hot loop.
    retry_at: Option<Instant>,
    binary_done: bool,
    /// The last state line printed, so a line appears when the state changes, not per event.
    said: Option<String>,
    warned: BTreeSet<String>,
    /// Names whose last event was a completed write (close after write, or rename into place).
    completed: BTreeSet<OsString>,
    /// The same for the target of a symlinked upstream, which lives in another directory.
    followed_completed: bool,
    followed_target: Option<PathBuf>,
    upstream_is_link: bool,
}

/// Runs install to completion (or, with `--watch`, until a signal). Returns the exit status.
pub fn run(plan: Plan) -> Result<i32> {
    // Armed before the first look: a file created after the look wakes the first wait.
    let watcher = Watcher::new(&plan.conf_dir)?;
    let mut installer = Installer {
        plan,
        watcher,
        candidate: None,
        acted_on: None,
        last_written: None,
        fight: Fight::default(),
        hold_until: None,
        retry_delay: Duration::ZERO,
        retry_at: None,
        binary_done: false,
        said: None,
        warned: BTreeSet::new(),
        completed: BTreeSet::new(),
        followed_completed: false,
        followed_target: None,
        upstream_is_link: false,
    };
    installer.run()
}

impl Installer {
    fn run(&mut self) -> Result<i32> {
        let deadline = Instant::now() + self.plan.timeout;
        let mut synced_once = false;
        loop {
            let now = Instant::now();
            let mut wake_at = None;
            match self.look(now)? {
                Look::Waiting(reason) => {
                    if !synced_once && now >= deadline {
                        return Ok(self.give_up(&reason));
                    }
                    let line = if synced_once {
                        format!(
                            "upstream config in {} is not usable: {reason}; {} stays as it is",
                            self.plan.conf_dir.display(),
                            self.what_stays()
                        )
                    } else {
                        format!(
                            "waiting for a CNI config in {}: {reason}",
                            self.plan.conf_dir.display()
                        )
                    };
                    self.say(line);
                    if !synced_once {
                        wake_at = Some(deadline);
                    }
                }
                Look::Settling(at, name) => {
                    if !synced_once && now >= deadline + SETTLE {
                        let reason = format!(
                            "{} is still being written (it changed within the last {SETTLE:?})",
                            name.to_string_lossy()
                        );
                        return Ok(self.give_up(&reason));
                    }
                    wake_at = Some(at);
                }
                Look::Refused(reason) => {
                    if !self.plan.watch || !synced_once {
                        note(format_args!("{reason}; nothing written"));
                        return Ok(1);
                    }
                    self.say(reason);
                }
                Look::Ready(_) if self.retry_at.is_some_and(|at| now < at) => {
                    wake_at = self.retry_at;
                }
                Look::Ready(ready) => match self.sync(ready, now) {
                    Ok(Synced::Wrote) | Ok(Synced::UpToDate) if !self.plan.watch => return Ok(0),
                    Ok(Synced::Wrote) | Ok(Synced::UpToDate) => {
                        if !synced_once {
                            synced_once = true;
                            note(format_args!(
                                "watching {} (SIGTERM or SIGINT stops; the file stays)",
                                self.plan.conf_dir.display()
                            ));
                        }
                        self.retry_delay = Duration::ZERO;
                        self.retry_at = None;
                    }
                    Ok(Synced::Held(until)) => wake_at = Some(until),
                    Ok(Synced::Refused(reason)) => {
                        if !self.plan.watch || !synced_once {
                            note(format_args!("{reason}; nothing written"));
                            return Ok(1);
                        }
                        self.say(reason);
                    }
                    Err(err) if !self.plan.watch => return Err(err),
                    Err(err) => {
                        self.retry_delay = (self.retry_delay * 2)
                            .clamp(Duration::from_secs(1), fight::MAX_BACKOFF);
                        note(format_args!(
                            "{err:#}; trying again in {:?}",
                            self.retry_delay
                        ));
                        self.retry_at = Some(Instant::now() + self.retry_delay);
                        wake_at = self.retry_at;
                    }
                },
            }
            match self.watcher.wait(wake_at)? {
                Wake::Deadline => {}
                Wake::Changed(changes) => self.notice(&changes, Instant::now()),
                Wake::Signal(signal) if self.plan.watch && synced_once => {
                    let undo = if self.plan.in_place {
                        "hostguard uninstall --in-place"
                    } else {
                        "hostguard uninstall"
                    };
                    note(format_args!(
                        "stopping on {signal}; {} stays in place (remove it with {undo})",
                        self.what_stays()
                    ));
                    return Ok(0);
                }
                // Before the first write a signal means the job was not done: say so in the status.
                Wake::Signal(signal) => {
                    note(format_args!(
                        "interrupted by {signal} before a config was written; nothing written"
                    ));
                    return Ok(1);
                }
            }
        }
    }

    fn give_up(&self, reason: &str) -> i32 {
        note(format_args!(
            "gave up after {}s waiting for a CNI config in {}: {reason}; nothing written",
            self.plan.timeout.as_secs_f64(),
            self.plan.conf_dir.display()
        ));
        1
    }

    /// What install leaves on the node when it stops watching, for messages.
    fn what_stays(&self) -> String {
        if self.plan.in_place {
            "the hostguard entry".into()
        } else {
            self.output_path().display().to_string()
        }
    }

    fn output_path(&self) -> PathBuf {
        self.plan.conf_dir.join(&self.plan.output)
    }

    fn say(&mut self, line: String) {
        if self.said.as_ref() != Some(&line) {
            note(format_args!("{line}"));
            self.said = Some(line);
        }
    }

    fn warn_once(&mut self, line: String) {
        if self.warned.insert(line.clone()) {
            note(format_args!("{line}"));
        }
    }

    /// Events on the file being settled restart its quiet period; an overflow might hide one.
    fn notice(&mut self, changes: &Changes, now: Instant) {
        if changes.overflow {
            self.completed.clear();
            self.followed_completed = false;
        }
        for (name, last) in &changes.names {
            match last {
                Last::Completed => self.completed.insert(name.clone()),
                Last::Changed => self.completed.remove(name),
            };
        }
        if let Some(last) = changes.followed {
            self.followed_completed = last == Last::Completed;
        }
        if let Some(candidate) = &mut self.candidate {
            if changes.overflow
                || changes.followed.is_some()
                || changes.names.contains_key(&candidate.name)
            {
                candidate.quiet_since = now;
            }
        }
    }

    fn look(&mut self, now: Instant) -> Result<Look> {
        let dir = self.plan.conf_dir.clone();
        let names =
            discover::config_names(&dir).with_context(|| format!("list {}", dir.display()))?;
        if let Some(refusal) = self.output_refusal() {
            return Ok(Look::Refused(refusal));
        }
        let name = if self.plan.in_place {
            match self.in_place_target(&names) {
                Ok(name) => name,
                Err(look) => {
                    self.candidate = None;
                    return Ok(*look);
                }
            }
        } else {
            if let Some(first) = discover::first_before_output(&names, &self.plan.output) {
                return Ok(Look::Refused(sort_order_refusal(
                    &dir,
                    first,
                    &self.plan.output,
                )));
            }
            let Some(name) =
                discover::upstream_name(&names, &self.plan.output, self.plan.primary.as_deref())
            else {
                self.candidate = None;
                return Ok(Look::Waiting(
                    "no *.conf, *.conflist or *.json file yet".into(),
                ));
            };
            name.to_os_string()
        };
        let path = dir.join(&name);
        self.follow_link(&path);
        let shown = name.to_string_lossy().into_owned();
        let snapshot = match snapshot::read(&path, Links::Follow) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                self.candidate = None;
                return Ok(Look::Waiting(missing(
                    &path,
                    &shown,
                    self.plan.primary.is_some(),
                )));
            }
            Err(problem) if problem.is_transient() => {
                self.candidate = None;
                return Ok(Look::Settling(now + SETTLE, name));
            }
            Err(problem) => {
                self.candidate = None;
                return Ok(Look::Waiting(format!(
                    "{shown} {problem}{}",
                    self.no_skip(&names, &name)
                )));
            }
        };
        let form = discover::form_of(&name);
        if self.plan.in_place {
            if let Some(look) = in_place_unfit(&path, &shown, form) {
                self.candidate = None;
                return Ok(look);
            }
        }
        let upstream = match validate::upstream(&snapshot.bytes, form) {
            Ok(upstream) => upstream,
            Err(problem) => {
                self.candidate = None;
                return Ok(Look::Waiting(format!(
                    "{shown} {problem}{}",
                    self.no_skip(&names, &name)
                )));
            }
        };
        if !self.plan.in_place {
            if let Some(refusal) = own_file_cycle(&shown, &upstream, &self.plan.output) {
                self.candidate = None;
                return Ok(Look::Refused(refusal));
            }
        }
        if let Some(settle_at) = self.settle(&name, &snapshot, now) {
            return Ok(Look::Settling(settle_at, name));
        }
        let action = if self.plan.in_place {
            Action::Insert(inplace::insert(&upstream, &self.plan.entry))
        } else {
            let names = chain::Names {
                output: &self.plan.output,
                upstream: &shown,
            };
            Action::Output(chain::chain(&upstream, form, &self.plan.entry, names)?)
        };
        Ok(Look::Ready(Ready {
            name,
            snapshot,
            action,
        }))
    }

    /// Why the output path must not be written (or, in place, why a file of our own is in the
    /// way), checked on every look: a file there that install did not write is another tool's,
    /// however it is named (`--output 05-calico.conflist` must not replace Calico's config).
    fn output_refusal(&self) -> Option<String> {
        let path = self.output_path();
        let Existing::File(found) = write::existing(&path) else {
            return None;
        };
        let ours = marker::bytes_are_output(&found, &self.plan.output);
        if self.plan.in_place {
            return ours.then(|| {
                format!(
                    "{} is hostguard's own conflist from an install without --in-place; remove it with \
                     hostguard uninstall first, so that one hostguard entry is loaded, not two",
                    path.display()
                )
            });
        }
        // Once we have written it, a foreign version is another writer's edit: the fight rules apply.
        (!ours && self.last_written.is_none()).then(|| {
            format!(
                "{} exists and hostguard install did not write it (it has no \"{}\" key naming it): \
                 hostguard never replaces another tool's config; choose another --output, or remove \
                 the file if it is a leftover",
                path.display(),
                marker::MARKER_KEY
            )
        })
    }

    /// The file to edit in place: the pinned one, else the first config file a runtime would load,
    /// passing over meta-plugin configs (Multus) to their master. `Err` is what to report instead.
    fn in_place_target(&mut self, names: &[OsString]) -> Result<OsString, Box<Look>> {
        let dir = self.plan.conf_dir.clone();
        if let Some(primary) = &self.plan.primary {
            let path = dir.join(primary);
            if let Some(meta) = meta_of(&path) {
                return Err(Box::new(Look::Refused(format!(
                    "--primary {primary} is a {meta} config, which delegates to a master config: name \
                     the master instead"
                ))));
            }
            return Ok(OsString::from(primary));
        }
        let mut passed: Option<(OsString, &'static str)> = None;
        for name in names {
            let Some(meta) = meta_of(&dir.join(name)) else {
                if let Some((meta_file, meta)) = &passed {
                    self.warn_once(format!(
                        "{} is a {meta} config: hostguard goes into its master, {}",
                        meta_file.to_string_lossy(),
                        name.to_string_lossy()
                    ));
                }
                return Ok(name.clone());
            };
            passed.get_or_insert((name.clone(), meta));
        }
        Err(Box::new(Look::Waiting(match passed {
            Some((meta_file, meta)) => format!(
                "{} is a {meta} config and there is no master config after it yet",
                meta_file.to_string_lossy()
            ),
            None => "no *.conf, *.conflist or *.json file yet".into(),
        })))
    }

    /// `None` when this version of the upstream can be trusted, else when to look again.
    fn settle(&mut self, name: &OsStr, snapshot: &Snapshot, now: Instant) -> Option<Instant> {
        if self
            .acted_on
            .as_ref()
            .is_some_and(|(acted, seen)| acted == name && seen == snapshot)
        {
            return None;
        }
        let same = self
            .candidate
            .as_ref()
            .is_some_and(|c| c.name == name && c.snapshot == *snapshot);
        if !same {
            // Credit the time the file has already been left alone: an old file is trusted at once,
            // one renamed into place a moment ago waits out the rest of SETTLE.
            let quiet_for = snapshot.state.unchanged_for().min(SETTLE);
            self.candidate = Some(Candidate {
                name: name.to_os_string(),
                snapshot: snapshot.clone(),
                quiet_since: now.checked_sub(quiet_for).unwrap_or(now),
            });
        }
        // Its writer is done with it, and the read after that event parsed: no need to wait.
        let finished = if self.upstream_is_link {
            self.followed_completed
        } else {
            self.completed.contains(name)
        };
        if finished {
            return None;
        }
        let ready_at = self.candidate.as_ref().map(|c| c.quiet_since + SETTLE)?;
        (now < ready_at).then_some(ready_at)
    }

    /// A symlinked upstream changes where it points, not here: watch there too.
    fn follow_link(&mut self, path: &Path) {
        let is_link = fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
        self.upstream_is_link = is_link;
        let target = is_link
            .then(|| {
                fs::canonicalize(path).ok().or_else(|| {
                    fs::read_link(path)
                        .ok()
                        .map(|target| self.plan.conf_dir.join(target))
                })
            })
            .flatten();
        if target != self.followed_target {
            // Completion seen on the old target says nothing about the new one.
            self.followed_completed = false;
            self.followed_target.clone_from(&target);
        }
        if let Err(err) = self.watcher.follow(target.as_deref()) {
            self.warn_once(format!(
                "{err:#}; a change there is noticed only with the next change in the directory"
            ));
        }
    }

    /// Why we wait on a broken first file instead of using the next one.
    fn no_skip(&self, names: &[OsString], upstream: &OsStr) -> String {
        if self.plan.primary.is_some() {
            return String::new();
        }
        match names
            .iter()
            .find(|name| name.as_os_str() != upstream && name.as_os_str() != OsStr::new(&self.plan.output))
        {
            Some(next) => format!(
                " (a runtime loads the first config and fails on a broken one rather than skipping it, so \
                 hostguard waits for it instead of chaining {})",
                next.to_string_lossy()
            ),
            None => String::new(),
        }
    }

    fn sync(&mut self, ready: Ready, now: Instant) -> Result<Synced> {
        let dir = self.plan.conf_dir.clone();
        let _lock = write::lock_dir(&dir)?;
        if !self.binary_done {
            // Before the config: a config naming a missing binary breaks CRI-O.
            if let Some(bin_dir) = &self.plan.bin_dir {
                let (path, copied) = binary::install(bin_dir)?;
                match copied {
                    Copied::Written => report(format_args!("installed {}", path.display())),
                    Copied::UpToDate => report(format_args!("{} is up to date", path.display())),
                }
            }
            self.binary_done = true;
        }
        let written_name = match &ready.action {
            Action::Output(_) => self.plan.output.clone(),
            Action::Insert(_) => ready.name.to_string_lossy().into_owned(),
        };
        match write::remove_stale_temps(&dir, &written_name) {
            Ok(0) => {}
            Ok(count) => note(format_args!(
                "removed {count} temporary file(s) left by an interrupted hostguard"
            )),
            Err(err) => self.warn_once(format!(
                "cannot clean up temporary files in {}: {err}",
                dir.display()
            )),
        }
        // Following the primary is never held back by a fight over our output: a stale chain is
        // what the back-off must not cost.
        let upstream_changed = self
            .acted_on
            .as_ref()
            .is_none_or(|(name, seen)| *name != ready.name || *seen != ready.snapshot);
        let chained = match ready.action {
            Action::Output(chained) => chained,
            Action::Insert(edit) => {
                return self.sync_in_place(ready.name, ready.snapshot, edit, now)
            }
        };
        let path = self.output_path();
        let upstream = ready.name.to_string_lossy().into_owned();
        let bytes = chained.bytes;
        let current = write::existing(&path);
        let outcome = match &current {
            Existing::Foreign(reason) => return Ok(Synced::Refused(reason.clone())),
            Existing::File(found) if *found == bytes => Synced::UpToDate,
            _ => {
                if !upstream_changed {
                    if let Some(until) = self.repair_allowed(&current, now) {
                        return Ok(Synced::Held(until));
                    }
                }
                write::write_output(&path, &bytes)?;
                Synced::Wrote
            }
        };
        let first_report = matches!(outcome, Synced::Wrote) || self.last_written.is_none();
        if chained.removed > 0 && first_report {
            note(format_args!(
                "{upstream} already had {} hostguard entr{}; the output has exactly one",
                chained.removed,
                if chained.removed == 1 { "y" } else { "ies" }
            ));
        }
        let what = format!("{upstream} + hostguard, {} plugins", chained.plugins);
        match outcome {
            Synced::Wrote => report(format_args!("wrote {} ({what})", path.display())),
            Synced::UpToDate if first_report => {
                report(format_args!("{} is up to date ({what})", path.display()))
            }
            _ => {}
        }
        self.last_written = Some(bytes);
        self.acted_on = Some((ready.name, ready.snapshot));
        self.candidate = None;
        self.said = None;
        Ok(outcome)
    }

    /// In place: insert our entry into `name` when it lacks it. Our entry vanishing again and again
    /// means a writer that drops other tools' entries; that is a fight, and we back off from it.
    fn sync_in_place(
        &mut self,
        name: OsString,
        snapshot: Snapshot,
        edit: Option<Vec<u8>>,
        now: Instant,
    ) -> Result<Synced> {
        let path = self.plan.conf_dir.join(&name);
        let shown = name.to_string_lossy().into_owned();
        let plugins = |bytes: &[u8]| {
            validate::parse_object(bytes)
                .map(|object| validate::plugin_types(&object).len())
                .unwrap_or(0)
        };
        let outcome = match edit {
            None => {
                if self.last_written.is_none()
                    || self.acted_on.as_ref().is_none_or(|(n, _)| *n != name)
                {
                    report(format_args!(
                        "{} already holds the hostguard entry ({} plugins)",
                        path.display(),
                        plugins(&snapshot.bytes)
                    ));
                }
                self.last_written = Some(snapshot.bytes.clone());
                Synced::UpToDate
            }
            Some(bytes) => {
                if self.last_written.is_some() {
                    if let Some(until) = self.hold_or_count(now, &shown) {
                        return Ok(Synced::Held(until));
                    }
                }
                inplace::rewrite(&path, &snapshot, &bytes, Check::Inserted)?;
                report(format_args!(
                    "inserted the hostguard entry into {} ({} plugins, every other entry kept)",
                    path.display(),
                    plugins(&bytes)
                ));
                self.last_written = Some(bytes);
                Synced::Wrote
            }
        };
        self.acted_on = Some((name, snapshot));
        self.candidate = None;
        self.said = None;
        Ok(outcome)
    }

    /// The in-place counterpart of `repair_allowed`: `Some` while backing off.
    fn hold_or_count(&mut self, now: Instant, shown: &str) -> Option<Instant> {
        self.held_or_counted(now, |recent, backoff| {
            format!(
                "the hostguard entry was removed from {shown} {recent} times within {:?}; backing \
                 off {backoff:?} before inserting it again. Hint: another program rewrites {shown} \
                 without keeping other tools' entries; have it keep them, or pin hostguard to \
                 another file with --primary",
                fight::WINDOW,
            )
        })
    }

    /// `Some(until)` while a back-off from another writer lasts. Otherwise this foreign change is
    /// counted, and when it makes a fight a back-off starts, said once with `message(recent
    /// changes, back-off)`.
    fn held_or_counted(
        &mut self,
        now: Instant,
        message: impl FnOnce(usize, Duration) -> String,
    ) -> Option<Instant> {
        if let Some(until) = self.hold_until {
            if now < until {
                return Some(until);
            }
            self.hold_until = None;
            return None;
        }
        match self.fight.foreign_change(now) {
            Verdict::Repair => None,
            Verdict::HoldUntil(until, backoff) => {
                self.hold_until = Some(until);
                note(format_args!("{}", message(self.fight.recent(), backoff)));
                Some(until)
            }
        }
    }

    /// `None` when we may (re)write our output now. Rewriting a file someone else just changed is a
    /// repair; too many repairs in a row is a fight, and we back off.
    fn repair_allowed(&mut self, current: &Existing, now: Instant) -> Option<Instant> {
        let foreign = match (&self.last_written, current) {
            (Some(ours), Existing::File(found)) => found != ours,
            (Some(_), Existing::Missing | Existing::Changing) => true,
            _ => false,
        };
        if !foreign {
            return None;
        }
        let shown = self.output_path().display().to_string();
        let hint = self.fight_hint(current);
        self.held_or_counted(now, |recent, backoff| {
            format!(
                "{shown} was changed by another writer {recent} times within {:?}; backing off \
                 {backoff:?} before restoring it. Hint: {hint}",
                fight::WINDOW,
            )
        })
    }

    /// Plugin types in `object`, besides hostguard, that our last version of the output lacked.
    fn added_types(&self, object: &Map<String, Value>) -> Vec<String> {
        let ours = self
            .last_written
            .as_deref()
            .and_then(|bytes| validate::parse_object(bytes).ok())
            .map(|written| validate::plugin_types(&written))
            .unwrap_or_default();
        if ours.is_empty() || validate::hostguard_count(object) == 0 {
            return Vec::new();
        }
        validate::plugin_types(object)
            .into_iter()
            .filter(|kind| kind != validate::HOSTGUARD_TYPE && !ours.contains(kind))
            .collect()
    }

    fn fight_hint(&self, current: &Existing) -> String {
        let path = self.output_path();
        match current {
            Existing::Missing => {
                let mut backup = path.clone().into_os_string();
                backup.push(".cilium_bak");
                if Path::new(&backup).exists() {
                    format!(
                        "it was renamed to {}: Cilium with cni.exclusive=true moves other CNI configs aside; \
                         set cni.exclusive=false",
                        Path::new(&backup).display()
                    )
                } else {
                    "it keeps being deleted or renamed: look for another CNI installer that owns this \
                     directory exclusively"
                        .into()
                }
            }
            Existing::File(found) => match validate::parse_object(found) {
                Ok(object) if !self.added_types(&object).is_empty() => format!(
                    "it now holds [{}]: another chain editor added [{}] to hostguard's file (Istio CNI \
                     inserts its plugin into the first config file); run hostguard install with \
                     --in-place, which keeps other tools' entries, instead of a file of its own",
                    validate::plugin_types(&object).join(", "),
                    self.added_types(&object).join(", ")
                ),
                Ok(object) if validate::hostguard_count(&object) > 0 => format!(
                    "it now holds [{}]: another hostguard installer with a different configuration writes \
                     the same file; run one installer per node",
                    validate::plugin_types(&object).join(", ")
                ),
                Ok(object) => format!(
                    "it now holds [{}] without hostguard: another installer writes the same file (one that \
                     edits the first config in place?); give hostguard its own --output or chain that \
                     installer into the upstream instead",
                    validate::plugin_types(&object).join(", ")
                ),
                Err(problem) => format!("it now {problem}: another program writes the same file"),
            },
            Existing::Changing => "another program is rewriting it right now".into(),
            Existing::Foreign(reason) => reason.clone(),
        }
    }
}

fn missing(path: &Path, shown: &str, pinned: bool) -> String {
    if let Ok(target) = fs::read_link(path) {
        return format!(
            "{shown} is a symbolic link to {}, which does not exist",
            target.display()
        );
    }
    if pinned {
        format!("{shown} (--primary) does not exist yet")
    } else {
        format!("{shown} disappeared while being read")
    }
}

/// The meta-plugin type of the valid config at `path`, if it is one. A file that does not parse is
/// not passed over: a runtime would fail on it, so it is waited for like any broken first file.
fn meta_of(path: &Path) -> Option<&'static str> {
    let found = snapshot::read(path, Links::Follow).ok().flatten()?;
    let object = validate::parse_object(&found.bytes).ok()?;
    inplace::meta_plugin(&object)
}

/// Why a file cannot be edited in place, if it cannot.
fn in_place_unfit(path: &Path, shown: &str, form: discover::Form) -> Option<Look> {
    if fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        return Some(Look::Refused(format!(
            "{shown} is a symbolic link: --in-place edits a regular file and would replace the link \
             with one; pin the link's target with --primary, or make {shown} a regular file"
        )));
    }
    (form == discover::Form::Single).then(|| {
        Look::Waiting(format!(
            "{shown} is a single-plugin file and --in-place inserts into a plugin list (*.conflist); \
             waiting for a *.conflist (Istio's installer converts such a file itself)"
        ))
    })
}

/// Why chaining `upstream` into a file of our own would form a cycle, if it would: a meta-plugin's
/// config (Multus started after us took our output as its master and embeds it), or another
/// installer's copy of our output (Antrea's chaining copies the first file, which is ours).
fn own_file_cycle(shown: &str, upstream: &Map<String, Value>, output: &str) -> Option<String> {
    if let Some(meta) = inplace::meta_plugin(upstream) {
        return Some(format!(
            "{shown} is a {meta} config, which delegates to a master config (possibly {output} \
             itself): chaining it would run hostguard beside {meta}, or inside itself; run install \
             with --in-place to put hostguard into {meta}'s master instead"
        ));
    }
    marker::marked_output(upstream).map(|copied| {
        format!(
            "{shown} is another installer's copy of hostguard's {copied} (Antrea's chaining copies \
             the first config file): chaining it would put hostguard's output inside itself and miss \
             the primary's later changes; run install with --in-place instead"
        )
    })
}

fn sort_order_refusal(dir: &Path, first: &OsStr, output: &str) -> String {
    if let Some(meta) = meta_of(&dir.join(first)) {
        return format!(
            "{} would not be loaded: {} (a {meta} config) sorts before {output}, and a name that sorts \
             before it would bypass {meta}; run install with --in-place to put hostguard into {meta}'s \
             master instead",
            dir.join(output).display(),
            first.to_string_lossy()
        );
    }
    let mut suggestion = match discover::output_name_before(first) {
        Some(name) => format!("use --output {name}"),
        None => "choose an --output that sorts first (names compare byte by byte)".into(),
    };
    let earlier_ours = snapshot::read(&dir.join(first), Links::Follow)
        .ok()
        .flatten()
        .and_then(|found| validate::parse_object(&found.bytes).ok())
        .is_some_and(|object| validate::hostguard_count(&object) > 0);
    if earlier_ours {
        suggestion = format!(
            "it already chains hostguard (an install with another --output?): remove it with \
             hostguard uninstall --output {}, or {suggestion}",
            first.to_string_lossy()
        );
    }
    format!(
        "{} would not be loaded: {} sorts before {output} and runtimes load only the first config; {suggestion}",
        dir.join(output).display(),
        first.to_string_lossy()
    )
}
