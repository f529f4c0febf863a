//! Image build inputs and pipeline steps (context, Dockerfile, cache, tags, decisions).

pub mod context;
