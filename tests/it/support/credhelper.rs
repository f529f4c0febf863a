//! A real Docker credential helper for tests: Debian's `docker-credential-pass` backed by
//! `pass` and a gpg key generated in batch mode (no passphrase), all inside a temp directory
//! (`GNUPGHOME`, `PASSWORD_STORE_DIR`), so nothing touches the user's keyring.

use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use super::registry::{require_tool, run_ok};

/// A private `pass` store with its own gpg key; the gpg agent is stopped on drop.
pub struct PassStore {
    dir: TempDir,
}

impl PassStore {
    /// Generates a key and initialises the store.
    pub fn new() -> Self {
        for tool in ["gpg", "gpgconf", "pass", "docker-credential-pass"] {
            require_tool(tool);
        }
        let dir = tempfile::tempdir().expect("temp dir for the pass store");
        let store = PassStore { dir };
        std::fs::create_dir(store.gnupghome()).expect("create GNUPGHOME");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(store.gnupghome(), std::fs::Permissions::from_mode(0o700))
                .expect("chmod GNUPGHOME");
        }
        let spec = store.dir.path().join("key-spec");
        std::fs::write(
            &spec,
            "%no-protection\n\
             Key-Type: eddsa\nKey-Curve: ed25519\n\
             Subkey-Type: ecdh\nSubkey-Curve: cv25519\n\
             Name-Real: devspace test\nName-Email: test@devspace.invalid\n\
             Expire-Date: 0\n%commit\n",
        )
        .expect("write key spec");
        run_ok(
            store
                .command("gpg")
                .args(["--batch", "--gen-key"])
                .arg(&spec),
            None,
        );
        let keys = run_ok(
            store
                .command("gpg")
                .args(["--batch", "--with-colons", "--list-secret-keys"]),
            None,
        );
        let keys = String::from_utf8_lossy(&keys.stdout);
        let fingerprint = keys
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|rest| rest.trim_matches(':').to_owned())
            })
            .expect("fingerprint of the generated key");
        run_ok(store.command("pass").args(["init", &fingerprint]), None);
        store
    }

    fn gnupghome(&self) -> PathBuf {
        self.dir.path().join("gnupg")
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.path().join("password-store")
    }

    /// The environment a process needs to use this store (pass it to `devspace`, `docker`, or
    /// `DockerConfig::with_helper_env`).
    pub fn env(&self) -> Vec<(String, PathBuf)> {
        vec![
            ("GNUPGHOME".to_owned(), self.gnupghome()),
            ("PASSWORD_STORE_DIR".to_owned(), self.store_dir()),
        ]
    }

    /// A command with this store's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        cmd
    }

    /// Stores credentials directly through the helper (`docker-credential-pass store`).
    pub fn store(&self, server: &str, user: &str, secret: &str) {
        let input = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
        run_ok(
            self.command("docker-credential-pass").arg("store"),
            Some(input.to_string().as_bytes()),
        );
    }

    /// `docker-credential-pass list`: server URL → user name.
    pub fn list(&self) -> serde_json::Map<String, serde_json::Value> {
        let out = run_ok(self.command("docker-credential-pass").arg("list"), None);
        serde_json::from_slice(&out.stdout).expect("helper list is JSON")
    }

    /// The secret the helper returns for `server` (empty when none).
    pub fn get_secret(&self, server: &str) -> String {
        let out = run_ok(
            self.command("docker-credential-pass").arg("get"),
            Some(server.as_bytes()),
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("helper JSON");
        value["Secret"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = self
            .command("gpgconf")
            .args(["--kill", "gpg-agent"])
            .output();
    }
}
