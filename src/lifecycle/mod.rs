//! Sync tracking and planning: how each stored webhook event moves the per-merchant
//! state machine and which jobs it schedules. Everything here runs inside the intake
//! transaction (or a job's), so state, history and jobs change together or not at all.

mod event;
mod merchants;
mod planner;
mod state;

pub use event::{EventClass, IncomingEvent, Topic};
/// For intake's batches, which take a merchant's lock before any of its events.
pub(crate) use merchants::{append_visibility_changes, lock as lock_merchant};
pub use planner::{EventStatus, Planner, PlanningSettings, batch_unless_syncing, refresh};
pub use state::{SyncState, mark_needs_attention, mark_stalled};

/// Defined with the job kinds, which name it; re-exported where syncs are tracked.
pub use crate::work::SyncKind;
