//! Fuzzes the print-job state machine and the wire types around it (`pixpress_domain`).
//!
//! Every input is used three ways:
//! - as a walk through the state machine (each byte proposes a next state, legal moves are
//!   taken): a terminal state has no way out, and the states visited are always a prefix of
//!   one of the lives DESIGN.md §3 allows;
//! - as a state name: `JobState::parse`, `as_str` and serde agree;
//! - as a JSON body for each wire type: deserializing never panics, what deserializes
//!   survives a serialize/deserialize round trip unchanged, and what validates lies within
//!   the documented ranges.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use pixpress_domain::job::JobListQuery;
use pixpress_domain::printer::{CallbackStatus, PrintedJob, PrinterCallback, PrinterJob};
use pixpress_domain::{CreatePrintJob, JobState, PrintJob, PrintJobList};
use serde::de::DeserializeOwned;
use serde::Serialize;
use validator::Validate;

use JobState::*;

/// Every life a job may have, from DESIGN.md §3: queued → dispatched → printing →
/// completed; any of the first three can end in failed; queued can be canceled.
const LIVES: [&[JobState]; 5] = [
    &[Queued, Dispatched, Printing, Completed],
    &[Queued, Dispatched, Printing, Failed],
    &[Queued, Dispatched, Failed],
    &[Queued, Failed],
    &[Queued, Canceled],
];

fuzz_target!(|bytes: &[u8]| {
    walk_the_state_machine(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        state_names_agree(text);
    }
    wire_types_round_trip_and_validate(bytes);
});

fn walk_the_state_machine(bytes: &[u8]) {
    let mut life = vec![Queued];
    for &byte in bytes {
        let at = *life.last().unwrap_or(&Queued);
        let next = JobState::ALL[usize::from(byte) % JobState::ALL.len()];
        let documented = LIVES
            .iter()
            .any(|l| l.windows(2).any(|step| step == [at, next]));
        assert_eq!(at.can_transition_to(next), documented, "{at} -> {next}");
        if at.is_terminal() {
            assert!(
                !at.can_transition_to(next),
                "{at} is terminal, yet -> {next}"
            );
        }
        if at.can_transition_to(next) {
            life.push(next);
        }
        assert!(
            LIVES.iter().any(|l| l.starts_with(&life)),
            "undocumented life {life:?}"
        );
    }
    let last = *life.last().unwrap_or(&Queued);
    assert_eq!(
        last.is_terminal(),
        JobState::ALL.iter().all(|to| !last.can_transition_to(*to)),
        "{last}: terminal exactly when it has no way out"
    );
}

fn state_names_agree(text: &str) {
    let parsed = JobState::parse(text);
    if let Some(state) = parsed {
        assert_eq!(state.as_str(), text);
        assert_eq!(state.to_string(), text);
    }
    let quoted = serde_json::to_string(text).expect("a string serializes");
    assert_eq!(serde_json::from_str::<JobState>(&quoted).ok(), parsed);
    for state in JobState::ALL {
        assert_eq!(JobState::parse(state.as_str()), Some(state));
        assert_eq!(
            serde_json::to_string(&state).ok(),
            Some(format!("\"{}\"", state.as_str()))
        );
    }
}

fn wire_types_round_trip_and_validate(bytes: &[u8]) {
    if let Some(body) = round_trip::<CreatePrintJob>(bytes) {
        let in_range = body.user_id >= 1 && body.file_id >= 1 && (1..=100).contains(&body.copies);
        assert_eq!(body.validate().is_ok(), in_range, "{body:?}");
    }
    round_trip::<PrintJob>(bytes);
    if let Ok(list) = serde_json::from_slice::<PrintJobList>(bytes) {
        let json = serde_json::to_vec(&list).expect("a job list serializes");
        let again: PrintJobList = serde_json::from_slice(&json).expect("a job list reads back");
        assert_eq!(
            (again.jobs, again.next_cursor),
            (list.jobs, list.next_cursor)
        );
    }
    if let Ok(query) = serde_json::from_slice::<JobListQuery>(bytes) {
        if query.validate().is_ok() {
            assert!(query.user_id.is_none_or(|id| id >= 1), "{query:?}");
            assert!(
                query.limit.is_none_or(|l| (1..=100).contains(&l)),
                "{query:?}"
            );
        }
    }
    if let Some(job) = round_trip::<PrinterJob>(bytes) {
        if job.validate().is_ok() {
            assert!((1..=100).contains(&job.copies), "{job:?}");
            assert!(is_http_url(&job.image_url) && job.image_url.chars().count() <= 4096);
            assert!(is_http_url(&job.callback_url) && job.callback_url.chars().count() <= 2048);
        }
    }
    if let Some(callback) = round_trip::<PrinterCallback>(bytes) {
        reports_are_reachable_states(callback.status);
    }
    if let Some(status) = round_trip::<CallbackStatus>(bytes) {
        reports_are_reachable_states(status);
    }
    round_trip::<PrintedJob>(bytes);
}

/// A printer reports a state some live job can move to, never `queued`,
/// `dispatched` or `canceled` (those are print-service's own).
fn reports_are_reachable_states(status: CallbackStatus) {
    let target = status.job_state();
    assert!(
        matches!(target, Printing | Completed | Failed),
        "{status:?}"
    );
    assert!(JobState::ALL
        .iter()
        .any(|from| !from.is_terminal() && from.can_transition_to(target)));
}

/// The documented URL rule (DESIGN.md §3, §5): absolute http(s), a host, no whitespace.
fn is_http_url(url: &str) -> bool {
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .is_some_and(|rest| {
            !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace)
        })
}

/// Deserializes `bytes` as `T`; what deserializes must serialize and read back unchanged.
fn round_trip<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value: T = serde_json::from_slice(bytes).ok()?;
    let json = serde_json::to_vec(&value).expect("a deserialized value serializes");
    let again: T = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{value:?} serialized as {json:?}, which reads back as {e}"));
    assert_eq!(again, value);
    Some(value)
}
