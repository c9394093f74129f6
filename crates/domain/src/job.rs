//! Print jobs: their states, the legal transitions between them, and the wire types
//! of print-service's `/print/jobs` API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

/// Where a print job is in its life (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Dispatched,
    Printing,
    Completed,
    Failed,
    Canceled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Dispatched,
        JobState::Printing,
        JobState::Completed,
        JobState::Failed,
        JobState::Canceled,
    ];

    /// Whether a job may move from `self` to `next`. The only legal moves are
    /// queued → dispatched → printing → completed, any of the first three → failed,
    /// and queued → canceled.
    pub fn can_transition_to(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Queued, Dispatched)
                | (Dispatched, Printing)
                | (Printing, Completed)
                | (Queued | Dispatched | Printing, Failed)
                | (Queued, Canceled)
        )
    }

    /// Whether an operator may send the job again (`POST /print/jobs/{id}/retry`,
    /// admin only): a `failed` job goes back to `queued`. This is not a transition of
    /// [`JobState::can_transition_to`]: nothing a printer reports can cause it.
    pub fn can_retry(self) -> bool {
        self == JobState::Failed
    }

    /// The moves a job in `self` makes when a printer reports `reported`, on
    /// `evidence`: empty when it is there already, `None` when the report is illegal
    /// (or, from a printer's record, behind the job).
    pub fn moves_on_report(
        self,
        reported: JobState,
        evidence: Evidence,
    ) -> Option<Vec<(JobState, JobState)>> {
        use JobState::*;
        let mut moves = Vec::new();
        let mut at = self;
        let mut step = |to: JobState, at: &mut JobState| {
            moves.push((*at, to));
            *at = to;
        };
        if at == reported {
            return Some(moves);
        }
        // A printer reporting on a job has it: it was dispatched.
        if at == Queued && reported != Canceled {
            step(Dispatched, &mut at);
        }
        if evidence == Evidence::PrinterRecord && at == Dispatched && reported == Completed {
            step(Printing, &mut at);
        }
        if at != reported {
            step(reported, &mut at);
        }
        moves
            .iter()
            .all(|(from, to)| from.can_transition_to(*to))
            .then_some(moves)
    }

    /// A job in a terminal state never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Canceled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Dispatched => "dispatched",
            JobState::Printing => "printing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a printer's report proves beyond the state it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// A callback reports one step of the job (and that the printer has it, so a
    /// job still `queued` passes through `dispatched`): `completed` for a job that
    /// never reported `printing` is illegal.
    Callback,
    /// The printer's own record of the job, read by reconciliation: the job went
    /// through every state on the way to the one it names (a `completed` job was
    /// printing), whatever callbacks were lost.
    PrinterRecord,
}

/// `POST /print/jobs` body. `copies` defaults to 1, so the seed API's
/// `{user_id, file_id}` body stays valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrintJob {
    /// The user the job prints for: the token's own user unless the caller is an admin.
    #[serde(deserialize_with = "crate::integral::deserialize")]
    #[validate(range(min = 1, message = "must be a positive integer"))]
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
    /// The image to print (the management API's image id).
    #[serde(deserialize_with = "crate::integral::deserialize")]
    #[validate(range(min = 1, message = "must be a positive integer"))]
    #[schema(minimum = 1, example = 7)]
    pub file_id: i64,
    #[serde(default = "one", deserialize_with = "crate::integral::deserialize")]
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    #[schema(minimum = 1, maximum = 100, default = 1)]
    pub copies: i32,
    /// The printer to print on (the management API's printer id); absent: the
    /// default printer.
    #[serde(default, deserialize_with = "crate::integral::optional")]
    #[validate(range(min = 1, message = "must be a positive integer"))]
    #[schema(minimum = 1, example = 2)]
    pub printer_id: Option<i64>,
}

fn one() -> i32 {
    1
}

/// A print job as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrintJob {
    /// Opaque to clients.
    pub id: Uuid,
    pub user_id: i64,
    pub file_id: i64,
    pub copies: i32,
    pub state: JobState,
    pub printer_id: Option<i64>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Why the job failed, when it did.
    pub error: Option<String>,
}

/// One page of `GET /print/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PrintJobList {
    pub jobs: Vec<PrintJob>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(format = Uuid)]
    pub next_cursor: Option<String>,
}

/// Query of `GET /print/jobs`.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// Only this user's jobs (a user's own token always lists only their own).
    #[serde(default, deserialize_with = "crate::integral::optional_from_text")]
    #[validate(range(min = 1, message = "must be a positive integer"))]
    #[param(minimum = 1)]
    pub user_id: Option<i64>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Page size, 1..=100 (default 20).
    #[serde(default, deserialize_with = "crate::integral::optional_from_text")]
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn only_the_documented_transitions_are_legal() {
        let legal = [
            (Queued, Dispatched),
            (Dispatched, Printing),
            (Printing, Completed),
            (Queued, Failed),
            (Dispatched, Failed),
            (Printing, Failed),
            (Queued, Canceled),
        ];
        for from in JobState::ALL {
            for to in JobState::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn only_a_failed_job_may_be_retried_and_no_transition_does_it() {
        for state in JobState::ALL {
            assert_eq!(state.can_retry(), state == Failed, "{state}");
        }
        assert!(!Failed.can_transition_to(Queued));
    }

    #[test]
    fn a_callback_proves_one_step_and_a_printers_record_the_whole_way() {
        use Evidence::*;
        let cases = [
            (
                Queued,
                Printing,
                Callback,
                Some(vec![(Queued, Dispatched), (Dispatched, Printing)]),
            ),
            (Dispatched, Completed, Callback, None),
            (
                Printing,
                Completed,
                Callback,
                Some(vec![(Printing, Completed)]),
            ),
            (Printing, Printing, Callback, Some(vec![])),
            (Completed, Printing, Callback, None),
            (
                Dispatched,
                Completed,
                PrinterRecord,
                Some(vec![(Dispatched, Printing), (Printing, Completed)]),
            ),
            (
                Dispatched,
                Failed,
                PrinterRecord,
                Some(vec![(Dispatched, Failed)]),
            ),
            (Dispatched, Dispatched, PrinterRecord, Some(vec![])),
            // The printer is behind the job: nothing to apply.
            (Printing, Dispatched, PrinterRecord, None),
            (Completed, Failed, PrinterRecord, None),
        ];
        for (from, reported, evidence, moves) in cases {
            assert_eq!(
                from.moves_on_report(reported, evidence),
                moves,
                "{from} reported {reported} by {evidence:?}"
            );
        }
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(JobState::ALL.iter().all(|to| !from.can_transition_to(*to)));
        }
    }

    #[test]
    fn seed_body_without_copies_is_valid_with_one_copy() {
        let job: CreatePrintJob = serde_json::from_str(r#"{"user_id":1,"file_id":7}"#).unwrap();
        assert_eq!(job.copies, 1);
        assert!(job.validate().is_ok());
    }

    #[test]
    fn each_bad_field_is_reported() {
        let job = CreatePrintJob {
            user_id: 0,
            file_id: -1,
            copies: 101,
            printer_id: Some(0),
        };
        let errors = job.validate().unwrap_err();
        let fields = errors.field_errors();
        assert!(fields.contains_key("user_id"));
        assert!(fields.contains_key("file_id"));
        assert!(fields.contains_key("copies"));
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("lost"), None);
    }
}
