//! `devspace login [REGISTRY] [-u USER] [--password-stdin]`: verifies credentials against a
//! registry and stores them the way `docker login` does (the configured credential helper,
//! else `config.json` with mode 0600), for machines without the Docker CLI.
//!
//! Without `-u` and `--password-stdin` it first tries the credentials already stored for the
//! registry, like Docker, and only then prompts (on a terminal, password without echo).

use std::io::{BufRead, IsTerminal, Read};

use thiserror::Error;

use crate::exit::ExitCode;
use crate::registry::credentials::CredentialStore;
use crate::registry::{
    ClientOptions, Credential, CredentialError, DockerConfig, ReferenceError, Registry,
    RegistryClient, RegistryError,
};
use crate::ui::{write_stderr, write_stdout};

/// Why a login failed; each class has its exit code.
#[derive(Debug, Error)]
enum LoginError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    InvalidRegistry(#[from] ReferenceError),
    #[error("{0}")]
    Usage(&'static str),
    #[error("cannot read the {what}: {source}")]
    Input {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP client: {0}")]
    Setup(String),
}

impl crate::diagnostic::Diagnostic for LoginError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LoginError::Registry(e) => e.exit_code(),
            LoginError::InvalidRegistry(_) | LoginError::Usage(_) => ExitCode::Usage,
            LoginError::Credentials(_) | LoginError::Input { .. } | LoginError::Setup(_) => {
                ExitCode::Failure
            }
        }
    }

    fn hints(&self) -> Vec<String> {
        match self {
            // The generic hint says "run devspace login", which is what just failed.
            LoginError::Registry(e) if e.is_unauthorized() => vec![format!(
                "check the user name and password for {}",
                e.registry()
            )],
            LoginError::Registry(e) => e.hint().into_iter().collect(),
            LoginError::Credentials(e) => e.hint().into_iter().collect(),
            LoginError::Usage(_) => vec!["see `devspace login --help`".into()],
            _ => Vec::new(),
        }
    }
}

/// Runs `devspace login` and returns its exit code.
pub fn run(registry: Option<&str>, username: Option<&str>, password_stdin: bool) -> ExitCode {
    match login(registry.unwrap_or(""), username, password_stdin) {
        Ok(()) => ExitCode::Success,
        Err(e) => crate::ui::report(false, &e),
    }
}

fn login(
    registry_arg: &str,
    username: Option<&str>,
    password_stdin: bool,
) -> Result<(), LoginError> {
    let registry = Registry::from_user_input(registry_arg)?;
    if password_stdin && username.is_none() {
        return Err(LoginError::Usage(
            "--password-stdin needs a user name: pass --username (-u)",
        ));
    }
    let mut config = DockerConfig::load()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LoginError::Setup(e.to_string()))?;
    let client = RegistryClient::new(ClientOptions::default())
        .map_err(|e| LoginError::Setup(e.to_string()))?;

    let stored = if username.is_none() && !password_stdin {
        config.resolve(&registry)?
    } else {
        None
    };
    if let Some(stored) = stored {
        write_stderr("Authenticating with existing credentials...\n");
        match runtime.block_on(client.verify_login(&registry, &stored)) {
            Ok(()) => {
                write_stdout("Login Succeeded\n");
                return Ok(());
            }
            Err(e) if e.is_unauthorized() => {
                write_stderr(&format!("Login did not succeed, error: {e}\n"))
            }
            Err(e) => return Err(e.into()),
        }
    }

    let credential = read_credential(username, password_stdin)?;
    runtime.block_on(client.verify_login(&registry, &credential))?;
    if let CredentialStore::File(path) = config.store(&registry, &credential)? {
        write_stderr(&format!(
            "WARNING! Your password is stored unencrypted in {}.\n\
             Configure a credential helper (`credsStore`) to remove this warning.\n",
            path.display()
        ));
    }
    write_stdout("Login Succeeded\n");
    Ok(())
}

/// The user name and password: from the flags and stdin, or prompted on a terminal.
fn read_credential(username: Option<&str>, password_stdin: bool) -> Result<Credential, LoginError> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let username = match username {
        Some(user) => user.trim().to_owned(),
        None if interactive => {
            write_stdout("Username: ");
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(|source| LoginError::Input {
                    what: "user name",
                    source,
                })?;
            line.trim().to_owned()
        }
        None => {
            return Err(LoginError::Usage(
                "cannot prompt for credentials without a terminal: pass --username and --password-stdin",
            ));
        }
    };
    if username.is_empty() {
        return Err(LoginError::Usage("a user name is required"));
    }
    let password = if password_stdin {
        let mut input = String::new();
        stdin
            .lock()
            .read_to_string(&mut input)
            .map_err(|source| LoginError::Input {
                what: "password from stdin",
                source,
            })?;
        trim_password(input)
    } else if interactive {
        rpassword::prompt_password("Password: ").map_err(|source| LoginError::Input {
            what: "password",
            source,
        })?
    } else {
        return Err(LoginError::Usage(
            "cannot prompt for a password without a terminal: use --password-stdin",
        ));
    };
    if password.is_empty() {
        return Err(LoginError::Usage("a password is required"));
    }
    Ok(Credential::new(username, password))
}

/// Drops the line end that `echo`/here-strings add, as `docker login --password-stdin` does
/// (one trailing `\n`, then one `\r`); everything else is part of the password.
fn trim_password(mut input: String) -> String {
    if input.ends_with('\n') {
        input.pop();
        if input.ends_with('\r') {
            input.pop();
        }
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Diagnostic;

    #[test]
    fn password_line_endings() {
        let cases = [
            ("secret\n", "secret"),
            ("secret\r\n", "secret"),
            ("secret", "secret"),
            ("se cret \n", "se cret "),
            ("secret\n\n", "secret\n"),
            ("\n", ""),
        ];
        for (input, want) in cases {
            assert_eq!(trim_password(input.to_owned()), want, "{input:?}");
        }
    }

    #[test]
    fn exit_codes() {
        let registry = Registry::Host("r.io".into());
        let cases = [
            (
                LoginError::Registry(RegistryError::Unauthorized {
                    registry: registry.clone(),
                    status: 401,
                    user: Some("u".into()),
                    detail: "x".into(),
                }),
                ExitCode::Auth,
            ),
            (
                LoginError::Registry(RegistryError::Unreachable {
                    registry,
                    url: "https://r.io/v2/".into(),
                    cause: "refused".into(),
                }),
                ExitCode::Unreachable,
            ),
            (LoginError::Usage("x"), ExitCode::Usage),
            (
                LoginError::InvalidRegistry(ReferenceError::InvalidRegistry {
                    input: "a b".into(),
                }),
                ExitCode::Usage,
            ),
            (LoginError::Setup("x".into()), ExitCode::Failure),
        ];
        for (error, want) in cases {
            assert_eq!(error.exit_code(), want, "{error}");
        }
    }
}
