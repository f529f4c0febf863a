//! Runs one job per image with dependency order, a concurrency bound, failure isolation and
//! cancellation. Knows nothing about images: the per-image work is a closure.
//!
//! Why a hand-written loop instead of a task per job waiting on its dependencies: the loop is
//! the single place that decides what starts next, so the order under `--build-sequential`
//! (config order, dependencies first), the bound of `--max-concurrent-builds` and the
//! "stop starting work on Ctrl-C" rule are all visible in one function.

use indexmap::IndexMap;
use std::collections::HashMap;
use std::future::Future;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// One unit of work and the keys of the jobs whose output it needs first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub key: String,
    pub depends_on: Vec<String>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult<T, E> {
    Succeeded(T),
    Failed(E),
    /// Not run because a job it depends on did not succeed.
    DependencyFailed(String),
    /// Not started (or aborted) because the run was cancelled.
    Cancelled,
}

/// A dependency cycle among the jobs (named in order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("images depend on each other in a cycle: {}", .0.join(" -> "))]
pub struct CycleError(pub Vec<String>);

/// Scheduling limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// At most this many jobs at once (`None` = unbounded).
    pub max_concurrent: Option<usize>,
}

/// Checks the dependency graph: unknown dependencies are ignored (they are external images),
/// cycles are an error naming the images involved.
pub fn check_cycles(jobs: &[JobSpec]) -> Result<(), CycleError> {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.key.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state = vec![0u8; jobs.len()];
    fn visit(
        i: usize,
        jobs: &[JobSpec],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Result<(), CycleError> {
        state[i] = 1;
        stack.push(i);
        for dep in &jobs[i].depends_on {
            let Some(&d) = index.get(dep.as_str()) else {
                continue;
            };
            if state[d] == 1 {
                let start = stack.iter().position(|&s| s == d).unwrap_or(0);
                let mut names: Vec<String> = stack[start..]
                    .iter()
                    .map(|&s| jobs[s].key.clone())
                    .collect();
                names.push(jobs[d].key.clone());
                return Err(CycleError(names));
            }
            if state[d] == 0 {
                visit(d, jobs, index, state, stack)?;
            }
        }
        stack.pop();
        state[i] = 2;
        Ok(())
    }
    let mut stack = Vec::new();
    for i in 0..jobs.len() {
        if state[i] == 0 {
            visit(i, jobs, &index, &mut state, &mut stack)?;
        }
    }
    Ok(())
}

/// Runs `jobs` (in the given order of preference) and returns every job's result, in that order.
///
/// `run(key, outputs_of_its_dependencies, cancel)` does the work. A job starts when all of its
/// known dependencies succeeded; if one did not, it ends as [`JobResult::DependencyFailed`]
/// without running. A failure never stops unrelated jobs. After `cancel` fires nothing new
/// starts; running jobs get the token and are awaited.
pub async fn run_jobs<T, E, F, Fut>(
    jobs: Vec<JobSpec>,
    limits: Limits,
    cancel: CancellationToken,
    run: F,
) -> Result<IndexMap<String, JobResult<T, E>>, CycleError>
where
    T: Clone + Send + 'static,
    E: Send + 'static,
    F: Fn(String, IndexMap<String, T>, CancellationToken) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    check_cycles(&jobs)?;
    let known: std::collections::HashSet<String> = jobs.iter().map(|j| j.key.clone()).collect();
    let mut results: IndexMap<String, Option<JobResult<T, E>>> =
        jobs.iter().map(|j| (j.key.clone(), None)).collect();
    let mut pending: Vec<JobSpec> = jobs;
    let mut running: JoinSet<(String, Result<T, E>)> = JoinSet::new();
    let max = limits.max_concurrent.unwrap_or(usize::MAX).max(1);

    loop {
        // Resolve jobs whose dependencies already ended badly, then start what is ready.
        let mut i = 0;
        while i < pending.len() {
            let job = &pending[i];
            let failed_dep = job.depends_on.iter().find(|d| {
                known.contains(*d)
                    && matches!(
                        results.get(*d),
                        Some(Some(r)) if !matches!(r, JobResult::Succeeded(_))
                    )
            });
            if let Some(dep) = failed_dep {
                let dep = dep.clone();
                let job = pending.remove(i);
                results.insert(job.key, Some(JobResult::DependencyFailed(dep)));
                continue;
            }
            if cancel.is_cancelled() {
                let job = pending.remove(i);
                results.insert(job.key, Some(JobResult::Cancelled));
                continue;
            }
            let ready = job.depends_on.iter().all(|d| {
                !known.contains(d) || matches!(results.get(d), Some(Some(JobResult::Succeeded(_))))
            });
            if ready && running.len() < max {
                let job = pending.remove(i);
                let outputs: IndexMap<String, T> = job
                    .depends_on
                    .iter()
                    .filter_map(|d| match results.get(d) {
                        Some(Some(JobResult::Succeeded(t))) => Some((d.clone(), t.clone())),
                        _ => None,
                    })
                    .collect();
                let fut = run(job.key.clone(), outputs, cancel.child_token());
                let key = job.key;
                running.spawn(async move { (key, fut.await) });
                // Restart the scan: config order decides among ready jobs.
                i = 0;
                continue;
            }
            i += 1;
        }

        if running.is_empty() {
            break;
        }
        let joined = tokio::select! {
            j = running.join_next() => j,
            _ = cancel.cancelled(), if !pending.is_empty() => continue,
        };
        match joined {
            Some(Ok((key, Ok(t)))) => {
                results.insert(key, Some(JobResult::Succeeded(t)));
            }
            Some(Ok((key, Err(e)))) => {
                results.insert(key, Some(JobResult::Failed(e)));
            }
            Some(Err(join_err)) => {
                // A panicking job must not take the run down; its key is unknown here, so the
                // slot stays empty and is reported as cancelled below.
                tracing::error!("an image job panicked: {join_err}");
            }
            None => break,
        }
    }

    Ok(results
        .into_iter()
        .map(|(k, r)| (k, r.unwrap_or(JobResult::Cancelled)))
        .collect())
}

impl crate::diagnostic::Diagnostic for CycleError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn spec(key: &str, deps: &[&str]) -> JobSpec {
        JobSpec {
            key: key.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn cycles_are_named() {
        let err =
            check_cycles(&[spec("a", &["b"]), spec("b", &["c"]), spec("c", &["a"])]).unwrap_err();
        assert_eq!(err.0, vec!["a", "b", "c", "a"]);
        assert!(check_cycles(&[spec("a", &["busybox"]), spec("b", &["a"])]).is_ok());
    }

    #[tokio::test]
    async fn sequential_runs_in_config_order_with_dependencies_first() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        let res = run_jobs(
            vec![spec("web", &["base"]), spec("api", &[]), spec("base", &[])],
            Limits {
                max_concurrent: Some(1),
            },
            CancellationToken::new(),
            move |k, deps: IndexMap<String, String>, _| {
                let o = o.clone();
                async move {
                    o.lock().unwrap().push(k.clone());
                    Ok::<_, String>(format!(
                        "{k}:{}",
                        deps.keys().cloned().collect::<Vec<_>>().join("+")
                    ))
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["api", "base", "web"]);
        assert_eq!(res["web"], JobResult::Succeeded("web:base".into()));
        assert_eq!(res.keys().collect::<Vec<_>>(), vec!["web", "api", "base"]);
    }

    #[tokio::test]
    async fn a_failure_does_not_stop_others_and_fails_dependants() {
        let res = run_jobs(
            vec![spec("a", &[]), spec("b", &["a"]), spec("c", &[])],
            Limits::default(),
            CancellationToken::new(),
            |k, _, _| async move {
                if k == "a" {
                    Err(format!("{k} broke"))
                } else {
                    Ok(k)
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(res["a"], JobResult::Failed("a broke".into()));
        assert_eq!(res["b"], JobResult::DependencyFailed("a".into()));
        assert_eq!(res["c"], JobResult::Succeeded("c".into()));
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        let live = Arc::new(Mutex::new((0usize, 0usize)));
        let l = live.clone();
        run_jobs(
            (0..6).map(|i| spec(&format!("i{i}"), &[])).collect(),
            Limits {
                max_concurrent: Some(2),
            },
            CancellationToken::new(),
            move |k, _, _| {
                let l = l.clone();
                async move {
                    {
                        let mut g = l.lock().unwrap();
                        g.0 += 1;
                        g.1 = g.1.max(g.0);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    l.lock().unwrap().0 -= 1;
                    Ok::<_, ()>(k)
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(live.lock().unwrap().1, 2);
    }

    #[tokio::test]
    async fn cancel_stops_new_work_and_reaches_running_jobs() {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let res = run_jobs(
            vec![spec("a", &[]), spec("b", &[])],
            Limits {
                max_concurrent: Some(1),
            },
            cancel,
            move |k, _, tok| {
                let c = c.clone();
                async move {
                    c.cancel();
                    tok.cancelled().await;
                    Err::<String, _>(format!("{k} aborted"))
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(res["a"], JobResult::Failed("a aborted".into()));
        assert_eq!(res["b"], JobResult::Cancelled);
    }
}
