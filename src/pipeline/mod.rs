//! The build pipeline's orchestration: the plan (what each image is built with and how it
//! is delivered, decided once), the per-image job (a straight line over the [`services::Services`]
//! port), scheduling, typed events and errors, and the dispatcher that turns events into logs
//! and the run's report.

pub mod dispatch;
pub mod error;
pub mod events;
pub mod job;
pub mod plan;
pub mod schedule;
pub mod services;
