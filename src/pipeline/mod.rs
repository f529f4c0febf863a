//! The build pipeline's orchestration: scheduling image jobs and the run state that the
//! single dispatcher owns.

pub mod events;
pub mod job;
pub mod plan;
pub mod schedule;
