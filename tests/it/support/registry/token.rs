//! A token service for `docker-registry`'s `token` auth, so tests exercise the `Bearer`
//! challenge flow (Docker Hub's, GHCR's, ...) against the real registry. It issues RS256 JWTs
//! signed with `openssl` and a throw-away self-signed certificate (sent in `x5c`, trusted by
//! the registry through `rootcertbundle`), for basic credentials or a refresh (identity)
//! token, and counts the grants it served so tests can tell which path a client took.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{Account, run_ok};

/// The `service` the registry and its tokens name.
pub const SERVICE: &str = "devspace-test-registry";
/// The `iss` of the tokens.
pub const ISSUER: &str = "devspace-test-token-issuer";

/// Counters of what the token service answered.
#[derive(Debug, Default)]
pub struct Grants {
    /// Tokens issued for correct basic credentials.
    pub basic: AtomicUsize,
    /// Tokens issued for a correct refresh token (OAuth `grant_type=refresh_token`).
    pub refresh: AtomicUsize,
    /// Tokens issued without credentials (they grant nothing).
    pub anonymous: AtomicUsize,
    /// Requests refused with 401.
    pub refused: AtomicUsize,
}

/// The running token service; stopped on drop.
pub struct TokenServer {
    port: u16,
    refresh_token: String,
    grants: Arc<Grants>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Signer {
    key: PathBuf,
    x5c: String,
    account: Account,
    refresh_token: String,
}

impl TokenServer {
    /// Creates the signing certificate in `dir` and starts serving on a free port. Returns the
    /// server and the certificate bundle path for the registry's `rootcertbundle`.
    pub fn start(dir: &Path, account: Account) -> (Self, PathBuf) {
        super::require_tool("openssl");
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        run_ok(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=devspace-test-token"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            None,
        );
        let der = run_ok(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&cert),
            None,
        );
        let refresh_token = format!("devspace-test-refresh-{}", std::process::id());
        let signer = Arc::new(Signer {
            key,
            x5c: STANDARD.encode(der.stdout),
            account,
            refresh_token: refresh_token.clone(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("token server address").port();
        let grants = Arc::new(Grants::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (grants, stop) = (grants.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        let (signer, grants) = (signer.clone(), grants.clone());
                        std::thread::spawn(move || serve(stream, &signer, &grants));
                    }
                }
            })
        };
        let server = TokenServer {
            port,
            refresh_token,
            grants,
            stop,
            thread: Some(thread),
        };
        (server, cert)
    }

    /// The token endpoint (`realm`).
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The refresh token this service accepts (what a registry hands out as identity token).
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// What it answered so far.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 exchange (the connection is closed after the answer).
fn serve(stream: TcpStream, signer: &Signer, grants: &Grants) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_owned()),
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut params = parse_form(query);
    if method == "POST" {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let (status, answer) = decide(&method, authorization.as_deref(), &params, signer, grants);
    let body = answer.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The answer to a token request: who is asking, and for which scopes.
fn decide(
    method: &str,
    authorization: Option<&str>,
    params: &[(String, String)],
    signer: &Signer,
    grants: &Grants,
) -> (&'static str, Value) {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let refused = || {
        grants.refused.fetch_add(1, Ordering::SeqCst);
        (
            "401 Unauthorized",
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]}),
        )
    };
    let subject = if method == "POST" && param("grant_type") == Some("refresh_token") {
        if param("refresh_token") != Some(signer.refresh_token.as_str()) {
            return refused();
        }
        grants.refresh.fetch_add(1, Ordering::SeqCst);
        Some(signer.account.user.clone())
    } else if let Some(basic) = authorization.and_then(|a| a.strip_prefix("Basic ")) {
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok());
        let expected = format!("{}:{}", signer.account.user, signer.account.password);
        if decoded.as_deref() != Some(expected.as_str()) {
            return refused();
        }
        grants.basic.fetch_add(1, Ordering::SeqCst);
        Some(signer.account.user.clone())
    } else {
        grants.anonymous.fetch_add(1, Ordering::SeqCst);
        None
    };
    let access: Vec<Value> = match &subject {
        Some(_) => params
            .iter()
            .filter(|(k, _)| k == "scope")
            .filter_map(|(_, scope)| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect(),
        None => Vec::new(),
    };
    let token = signer.sign(subject.as_deref().unwrap_or(""), &access);
    (
        "200 OK",
        json!({"token": token, "access_token": token, "expires_in": 300}),
    )
}

impl Signer {
    /// An RS256 JWT the registry accepts: `x5c` names our certificate, claims name the
    /// service, issuer and granted access.
    fn sign(&self, subject: &str, access: &[Value]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("{now}-{}", next_id()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = run_ok(
            Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&self.key),
            Some(signing_input.as_bytes()),
        );
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.stdout)
        )
    }
}

/// Token ids only need to differ within one test run.
fn next_id() -> usize {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// `a=b&c=d` with `+` and `%XX` decoding.
fn parse_form(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
