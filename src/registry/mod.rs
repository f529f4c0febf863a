//! Everything about registries: image references and their normalisation ([`reference`]),
//! Docker-compatible credential resolution and storage ([`credentials`]), and a small registry
//! v2 API client for pings, logins, manifest checks and tag lists ([`client`]).
//!
//! Secrets are wrapped in [`credentials::Secret`], which never prints its value.

pub mod client;
pub mod credentials;
pub mod reference;

pub use client::{ClientOptions, InsecureRegistries, RegistryClient, RegistryError};
pub use credentials::{Credential, CredentialError, DockerConfig, Secret};
pub use reference::{Reference, ReferenceError, Registry};

/// Caps a message quoted from a registry or helper at `max` bytes (on a char boundary),
/// marking the cut with `…`, so one chatty answer cannot flood an error line.
pub(crate) fn truncate_message(message: &mut String, max: usize) {
    if message.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        message.truncate(cut);
        message.push('…');
    }
}
