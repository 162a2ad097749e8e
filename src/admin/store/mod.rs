//! Reads behind the admin API and page: merchants with their sync statistics, sync
//! history, jobs and stored events. Plain SQL over the tables intake, planning and the
//! mirror write; nothing here changes data (see [`super::actions`] for writes).

mod events;
mod jobs;
mod merchants;

pub use events::{EventFilter, EventRow, StoredEvent, event, events};
pub use jobs::{JOB_KINDS, JOB_STATES, JobFilter, job_counts, jobs, state_name};
pub use merchants::{
    KindSummary, LastSync, MerchantIndexLag, MerchantSummary, RECENT_RUNS_WINDOW, SyncRun,
    merchants, recent_runs, runs_of_merchant,
};
