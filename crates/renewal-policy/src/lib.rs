//! When to renew the agent's external certificate, and whether a new set can be sent.
//!
//! The product document says: about 60 days before the current certificate expires, the agent
//! looks in the external certificate directory for a new set; if there is none it logs a
//! WARNING and looks again after 24 hours; once the certificate has expired the client must be
//! registered again, and the manager rejects a renewal whose common name differs. This crate
//! turns that into one pure decider, [`plan::next_step`]: the agent executes the one step it
//! names, records what happened, and asks again, until the step is [`plan::Step::Finish`] with
//! a complete [`plan::Report`] (outcome, level, next check, health, exit class).
//!
//! # Main types
//!
//! * [`Policy`]: the settings (window, intervals, stagger, escalation, the daemon's pauses),
//!   plain data with [`Default`]s from the document. [`Policy::validate`] reports settings that
//!   do not fit.
//! * [`plan::Situation`]: everything a check knows (trigger, journal, store, folder, answers,
//!   earlier failures); [`plan::Step`] and [`plan::Report`] are what it is told.
//! * The timeline primitives the plan is built on: [`schedule`] ("is it due?", [`Schedule`]),
//!   [`check_candidate`] (can this set replace the current one? [`CandidateProblem`] says what
//!   to do when not), [`next_check_after_failure`], [`is_overdue`], [`renewal_severity`] and
//!   [`days_left`], over [`CurrentCertificate`], [`CandidateCertificate`] and [`HostSeed`] (the
//!   host's identity, which places its window in the fleet's stagger). [`Severity`] prints as
//!   the product's `INFO`/`WARNING`/`ERROR`/`CRITICAL`.
//!
//! # Schedule (default policy)
//!
//! Stages are measured from the current certificate's `not_after`. "Window start" is
//! `not_after - 60 days + stagger`, the stagger being this host's offset in `[0, 48 hours)`.
//!
//! What a scheduled check ([`plan::Trigger::Scheduled`]) reports, by [`plan::next_step`] (the
//! table is the test `the_documented_table_is_what_next_step_reports` in `tests/timeline.rs`):
//!
//! | Time left before `not_after`           | Without a usable candidate             | With one: renewed, logged at | Next check     |
//! |----------------------------------------|----------------------------------------|------------------------------|----------------|
//! | before this host's window start        | `NotDue`, INFO (folder not looked at)  | not looked for               | window start   |
//! | window start (58-60 days) to > 14 days | `NoUsableCandidate`, **WARNING**       | `Renewed`, INFO              | 24 hours later |
//! | 14 days to > 3 days                    | `NoUsableCandidate`, **ERROR**         | `Renewed`, WARNING           | 6 hours later  |
//! | 3 days to > 0                          | `NoUsableCandidate`, **CRITICAL**      | `Renewed`, WARNING           | 1 hour later   |
//! | 0 (from `not_after` on)                | login first; refused: `Expired`, CRITICAL, register again (accepted: `ClockSkew`, the local clock is wrong) | not attempted unless the manager accepts the current certificate | none (`Expired`) |
//!
//! Rules that hold in every row:
//!
//! * A next check is never later than `not_after`, so the last check lands exactly on it and
//!   reports `Expired` on time. The current certificate counts as expired from `not_after`
//!   itself: an attempt starting in its last instant could not finish in it.
//! * Intervals are counted from each check, not aligned to the stage boundaries, so hosts keep
//!   their staggered positions; the first ERROR therefore appears within 24 hours after the
//!   14-day mark, and the first CRITICAL within 6 hours after the 3-day mark.
//! * A candidate that is not yet valid is looked at again at its `not_before` if that is
//!   sooner than the next regular check.
//! * After a failed attempt ([`next_check_after_failure`]): a refusal waits the row's interval;
//!   an unreachable manager is retried after 5 minutes, doubling per consecutive failure
//!   ([`plan::Situation::consecutive_failures`]: 5, 10, 20, 40 minutes...) up to the row's
//!   interval.
//! * A renewal whose report is not INFO-worthy for the administrator who asked for it
//!   (`updatecerts` that did not renew) is raised to ERROR by the plan itself.
//!
//! # Stagger
//!
//! A fleet whose certificates share one expiry date would otherwise all open their windows,
//! and so find an administrator's new sets and call the manager, in the same minute. Each
//! host's window therefore opens `stagger_offset` later, a whole number of seconds in
//! `[0, max_stagger)` taken from SHA-256 of the [`HostSeed`] (the client id, or the certificate
//! fingerprint). The clamp: the stagger never opens a window with less than
//! `minimum_time_left_at_window_start` (30 days) to go. When `renew_before - 30 days` is less
//! than `max_stagger`, the stagger *range* shrinks to that difference (rather than capping
//! individual offsets, which would pile hosts up at the cap); with `renew_before` under 30
//! days there is no stagger at all. With the defaults (60 days, 48 hours) the clamp does not
//! bite: every window opens between 60 and 58 days before expiry.
//!
//! Measured (test `fleet_of_ten_thousand_spreads_evenly` in `tests/fleet.rs`): 10,000 hosts
//! with client ids `host-00000` to `host-09999` and one shared `not_after` start their windows
//! across exactly the 48 hours of the stagger. The even spread is 208.3 per hour; the busiest
//! UTC clock hour has 239 (1.147x) and the quietest 179 (0.859x). The test asserts at most
//! 1.2x and at least 0.8x. That bound is statistical, not guaranteed: offsets from a hash
//! behave like independent random draws, so each hour's count is binomial (mean 208, standard
//! deviation 14) and the busiest of 48 hours sits around mean + 2.3 deviations. Over 200 other
//! fleets of 10,000 names (`fleet{n}-host-{i:05}`), the peak hour had median 241 (1.16x),
//! 95th percentile 257 (1.23x) and maximum 274 (1.32x); 27 of the 200 exceeded 1.2x. No
//! per-host function of an arbitrary identity can do better without coordination (a host
//! knows only its own identity), so plan manager capacity for about 1.3x the even rate.
//! [`renewal_window_start`] and [`peak_per_clock_hour`] are the helpers a benchmark or
//! simulation uses to reproduce this.
//!
//! # What this crate does not do
//!
//! No I/O of any kind and no clock: `now` is always a parameter, and the crate's
//! `clippy.toml` forbids `SystemTime::now` and `Instant::now`. It does not parse certificates
//! (the caller runs `cert-loading` and passes the outcome in), does not talk to the manager,
//! does not log, and does not sleep: it returns times, and the caller waits and calls again.
//! Checking earlier than asked (after a restart or a clock change) is always safe.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use renewal_policy::plan::{
//!     FolderView, GenerationView, Outcome, Situation, Step, StoreView, Trigger, next_step,
//! };
//! use renewal_policy::{Fingerprint, GenerationId, HostSeed, Policy, Severity};
//!
//! const DAY: Duration = Duration::from_secs(86_400);
//! let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600); // 2027-01-01
//! let store = StoreView {
//!     current: GenerationView { id: GenerationId::new(1), fingerprint: Fingerprint([1; 32]), not_after: expiry },
//!     common_name: "host-17.example.com".to_owned(),
//!     previous: None,
//!     staged: Vec::new(),
//! };
//! let policy = Policy::default();
//! let host = HostSeed::from_client_id("host-17");
//! let situation = |now, folder| Situation {
//!     policy: &policy,
//!     host: &host,
//!     trigger: Trigger::Scheduled,
//!     dry_run: false,
//!     now,
//!     journal: None,
//!     store: &store,
//!     folder,
//!     events: &[],
//!     out_of_time: false,
//!     consecutive_failures: 0,
//! };
//!
//! // Ninety days out: not due, and the folder is not even looked at.
//! let Step::Finish(report) = next_step(&situation(expiry - 90 * DAY, &FolderView::NotLooked))
//! else { panic!("not due yet") };
//! assert_eq!(report.outcome, Outcome::NotDue);
//!
//! // Ten days out: look in the folder; still empty, that is an ERROR, looked at every 6 hours.
//! let now = expiry - 10 * DAY;
//! assert_eq!(next_step(&situation(now, &FolderView::NotLooked)), Step::LookInFolder);
//! let Step::Finish(report) = next_step(&situation(now, &FolderView::Empty)) else { panic!() };
//! assert_eq!(report.severity, Severity::Error);
//! assert_eq!(report.next_check, Some(now + Duration::from_secs(6 * 3600)));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod plan;
mod policy;
mod stagger;
mod time;
mod timeline;

/// The shared vocabulary: a certificate's SHA-256 and RFC 3339 times (`cert-vocabulary`).
pub use cert_vocabulary::{Fingerprint, GenerationId, Severity, format_rfc3339};
pub use policy::{Policy, PolicyError};
pub use stagger::{HostSeed, peak_per_clock_hour, renewal_window_start, stagger_offset};
pub use timeline::{
    AttemptFailure, CandidateCertificate, CandidateProblem, CurrentCertificate, Schedule,
    check_candidate, days_left, is_overdue, next_check_after_back_pressure,
    next_check_after_failure, renewal_severity, schedule,
};
