//! rkron-core owns the domain model (jobs, executions, schedules, targeting) and pure scheduling logic: no IO, no async.
//!
//! Everything here is deterministic given its inputs; wall-clock time comes in through [`clock::Clock`].

pub mod catchup;
pub mod clock;
pub mod duration;
pub mod execution;
pub mod index;
pub mod job;
pub mod memlimit;
pub mod schedule;
pub mod tags;

pub use clock::{Clock, ManualClock, SystemClock};
pub use execution::{Execution, group_status};
pub use job::{Concurrency, Job, JobStatus, ValidationError};
pub use schedule::{Schedule, ScheduleError};
