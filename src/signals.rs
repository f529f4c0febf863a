//! Ctrl-C: the first signal cancels the run (stop starting work, abort running builds, keep the
//! cache valid, exit 130); a second one exits at once.

use crate::exit::ExitCode;
use tokio_util::sync::CancellationToken;

/// Spawns the signal watcher on the current runtime; returns the token it cancels.
pub fn install() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let first = async {
            match term.as_mut() {
                Some(term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        first.await;
        crate::ui::write_stderr(
            "interrupted: stopping builds (press Ctrl-C again to exit at once)\n",
        );
        t.cancel();
        crate::process::interrupt();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(ExitCode::Interrupted as i32);
        }
    });
    token
}
