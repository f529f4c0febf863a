//! Everything between a resolved image config and a builder: the build context (walk,
//! `.dockerignore`, hashes, streaming tar), the in-memory Dockerfile rewrite, tags, the on-disk
//! build cache and the rebuild/skip decision with its reason.

pub mod cache;
pub mod content_key;
pub mod context;
pub mod decision;
pub mod dockerfile;
pub mod on_change;
pub mod record;
pub mod tag;
