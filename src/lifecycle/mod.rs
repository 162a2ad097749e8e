//! Sync tracking and planning: how each stored webhook event moves the per-merchant
//! state machine and which jobs it schedules. Everything here runs inside the intake
//! transaction (or a job's), so state, history and jobs change together or not at all.

mod event;
mod merchants;
mod planner;
mod state;

pub use event::{EventClass, IncomingEvent, Topic};
pub use planner::{EventStatus, Planner, PlanningSettings, batch_unless_syncing, refresh};
pub use state::{SyncState, mark_needs_attention, mark_stalled};

/// Defined with the job kinds, which name it; re-exported where syncs are tracked.
pub use crate::work::SyncKind;
