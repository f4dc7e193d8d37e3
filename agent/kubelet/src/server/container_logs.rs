//! `GET /containerLogs/<ns>/<pod>/<container>`: finds the container's CRI
//! log file through the pod's status record (its UID, hence its log
//! directory) and streams it, following appends while the container runs.
//! Reads files only; it never touches containers or writes anything.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::cri_log::{self, Render, Renderer};
use crate::logs::access::ContainerState;
use crate::paths;

/// How often a followed file is checked for appended bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often (in polls without new bytes) a follower asks whether the
/// container still runs.
const LIVENESS_EVERY: u32 = 5;
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogRequest {
    pub follow: bool,
    pub previous: bool,
    pub render: Render,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogError {
    #[error("{0}")]
    BadRequest(String),
    #[error("pod {namespace}/{name} not found on this node")]
    PodNotFound { namespace: String, name: String },
    #[error("container {container:?} is not valid for pod {name:?}")]
    NoSuchContainer { name: String, container: String },
    #[error("{0}")]
    NoLog(String),
}

fn flag(q: &HashMap<String, String>, key: &str) -> Result<bool, LogError> {
    match q.get(key).map(String::as_str) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(LogError::BadRequest(format!(
            "{key}={v:?}: want true or false"
        ))),
    }
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, LogError> {
    q.get(key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                LogError::BadRequest(format!("{key}={v:?}: want a non-negative integer"))
            })
        })
        .transpose()
}

/// The query as kubelet reads it (`now` for `sinceSeconds`).
pub fn parse_query(q: &HashMap<String, String>, now: Timestamp) -> Result<LogRequest, LogError> {
    let since_seconds = number(q, "sinceSeconds")?;
    let since_time = q
        .get("sinceTime")
        .map(|v| {
            v.parse::<Timestamp>()
                .map_err(|e| LogError::BadRequest(format!("sinceTime={v:?}: {e}")))
        })
        .transpose()?;
    let since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err(LogError::BadRequest(
                "at most one of sinceSeconds or sinceTime may be given".into(),
            ))
        }
        (Some(s), None) => {
            let s = i64::try_from(s).unwrap_or(i64::MAX).min(100 * 365 * 86_400);
            Some(
                now.checked_sub(jiff::SignedDuration::from_secs(s))
                    .unwrap_or(Timestamp::MIN),
            )
        }
        (None, t) => t,
    };
    let limit_bytes = number(q, "limitBytes")?;
    if limit_bytes == Some(0) {
        return Err(LogError::BadRequest("limitBytes must be positive".into()));
    }
    Ok(LogRequest {
        follow: flag(q, "follow")?,
        previous: flag(q, "previous")?,
        render: Render {
            timestamps: flag(q, "timestamps")?,
            since,
            tail_lines: number(q, "tailLines")?,
            limit_bytes,
        },
    })
}

/// The log file a request is for.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub uid: String,
    pub container: String,
    pub attempt: u32,
    pub path: PathBuf,
    pub container_dir: PathBuf,
}

/// Attempts with a log file in `dir` (`<n>.log`), sorted.
pub fn attempts(dir: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// Which attempt's file answers: the latest, or for `previous` the one
/// before it.
pub fn pick_attempt(attempts: &[u32], previous: bool) -> Option<u32> {
    match (attempts, previous) {
        ([.., last], false) => Some(*last),
        ([.., before, _], true) => Some(*before),
        _ => None,
    }
}

/// Finds the file through `<root>/pod-status/<ns>_<pod>.json`, which the
/// pod worker keeps for every pod it runs (UID and container names).
pub fn locate(
    root_dir: &Path,
    log_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<Located, LogError> {
    let not_found = || LogError::PodNotFound {
        namespace: namespace.into(),
        name: pod.into(),
    };
    // Path segments come from the URL: refuse anything that could climb.
    let safe = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
    if !(safe(namespace) && safe(pod) && safe(container)) {
        return Err(not_found());
    }
    let record: serde_json::Value =
        std::fs::read(crate::paths::status_path(root_dir, namespace, pod))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(not_found)?;
    let uid = record
        .pointer("/metadata/uid")
        .and_then(|v| v.as_str())
        .filter(|u| safe(u))
        .ok_or_else(not_found)?
        .to_string();
    let known = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|k| record["status"][k].as_array().into_iter().flatten())
        .any(|c| c["name"] == container);
    if !known {
        return Err(LogError::NoSuchContainer {
            name: pod.into(),
            container: container.into(),
        });
    }
    let container_dir = paths::pod_log_dir(log_dir, namespace, pod, &uid).join(container);
    let attempt = pick_attempt(&attempts(&container_dir), previous).ok_or_else(|| {
        LogError::NoLog(if previous {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        } else {
            format!("container {container:?} in pod {pod:?} is waiting to start")
        })
    })?;
    Ok(Located {
        path: paths::container_log_path(
            &paths::pod_log_dir(log_dir, namespace, pod, &uid),
            container,
            attempt,
        ),
        uid,
        container: container.into(),
        attempt,
        container_dir,
    })
}

type Chunk = Result<Bytes, std::io::Error>;

/// Sends the rendered log into `tx`; with `follow`, keeps sending appended
/// lines until the container stops (or a newer attempt starts), the
/// client goes away, or `limitBytes` is reached.
pub async fn stream<C: ContainerState>(
    loc: Located,
    req: LogRequest,
    state: std::sync::Arc<C>,
    tx: mpsc::Sender<Chunk>,
) {
    let mut file = match std::fs::File::open(&loc.path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    let mut data = Vec::new();
    if let Err(e) = file.read_to_end(&mut data) {
        let _ = tx.send(Err(e)).await;
        return;
    }
    let (complete, rest) = cri_log::complete_lines(&data);
    let mut pending = rest.to_vec();
    let start = req
        .render
        .tail_lines
        .map_or(0, |n| cri_log::tail_offset(complete, n));
    let mut renderer = Renderer::new(&req.render);
    let mut out = Vec::new();
    cri_log::render_lines(&complete[start..], &mut renderer, &mut out);
    if !send(&tx, out).await || !req.follow {
        return;
    }
    let mut offset = data.len() as u64;
    drop(data);
    let mut idle = 0u32;
    loop {
        if renderer.exhausted() {
            return;
        }
        let mut fresh = Vec::new();
        let read = file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| (&mut file).take(CHUNK as u64).read_to_end(&mut fresh));
        if let Err(e) = read {
            let _ = tx.send(Err(e)).await;
            return;
        }
        if fresh.is_empty() {
            idle += 1;
            if idle.is_multiple_of(LIVENESS_EVERY) && finished(&loc, state.as_ref()).await {
                // One last read: lines written just before the exit.
                let mut last = Vec::new();
                if file
                    .seek(SeekFrom::Start(offset))
                    .and_then(|_| file.read_to_end(&mut last))
                    .is_ok()
                {
                    pending.extend_from_slice(&last);
                    let mut out = Vec::new();
                    cri_log::render_lines(&pending, &mut renderer, &mut out);
                    send(&tx, out).await;
                }
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tx.closed() => return,
            }
            continue;
        }
        idle = 0;
        offset += fresh.len() as u64;
        pending.extend_from_slice(&fresh);
        let (complete, rest) = cri_log::complete_lines(&pending);
        let mut out = Vec::new();
        cri_log::render_lines(complete, &mut renderer, &mut out);
        pending = rest.to_vec();
        if !send(&tx, out).await {
            return;
        }
    }
}

/// The followed attempt is over: a newer one has a log file, or its task
/// no longer runs.
async fn finished<C: ContainerState>(loc: &Located, state: &C) -> bool {
    if attempts(&loc.container_dir)
        .last()
        .is_some_and(|a| *a > loc.attempt)
    {
        return true;
    }
    !state.running(&loc.uid, &loc.container, loc.attempt).await
}

async fn send(tx: &mpsc::Sender<Chunk>, out: Vec<u8>) -> bool {
    out.is_empty() || tx.send(Ok(Bytes::from(out))).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_parsing() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let r = parse_query(
            &q(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("sinceSeconds", "60"),
                ("timestamps", "true"),
                ("limitBytes", "100"),
            ]),
            now,
        )
        .unwrap();
        assert!(r.follow && !r.previous && r.render.timestamps);
        assert_eq!(r.render.tail_lines, Some(5));
        assert_eq!(r.render.limit_bytes, Some(100));
        assert_eq!(
            r.render.since,
            Some("2026-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(parse_query(&q(&[]), now).unwrap(), LogRequest::default());
        assert!(parse_query(&q(&[("tailLines", "-1")]), now).is_err());
        assert!(parse_query(&q(&[("follow", "maybe")]), now).is_err());
        assert!(parse_query(&q(&[("limitBytes", "0")]), now).is_err());
        assert!(parse_query(
            &q(&[("sinceSeconds", "1"), ("sinceTime", "2026-01-01T00:00:00Z")]),
            now
        )
        .is_err());
    }

    #[test]
    fn attempt_choice() {
        assert_eq!(pick_attempt(&[0, 1, 2], false), Some(2));
        assert_eq!(pick_attempt(&[0, 1, 2], true), Some(1));
        assert_eq!(pick_attempt(&[0], true), None);
        assert_eq!(pick_attempt(&[], false), None);
    }

    #[test]
    fn locates_through_the_status_record() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let logs_dir = d.path().join("logs");
        let status = crate::paths::status_path(&root, "ns", "p");
        std::fs::create_dir_all(status.parent().unwrap()).unwrap();
        std::fs::write(
            &status,
            r#"{"metadata":{"uid":"u1"},"status":{"containerStatuses":[{"name":"web"}]}}"#,
        )
        .unwrap();
        let cdir = paths::pod_log_dir(&logs_dir, "ns", "p", "u1").join("web");
        assert!(matches!(
            locate(&root, &logs_dir, "ns", "p", "web", false),
            Err(LogError::NoLog(_))
        ));
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::write(cdir.join("0.log"), "").unwrap();
        std::fs::write(cdir.join("1.log"), "").unwrap();
        let l = locate(&root, &logs_dir, "ns", "p", "web", false).unwrap();
        assert_eq!((l.uid.as_str(), l.attempt), ("u1", 1));
        assert_eq!(l.path, cdir.join("1.log"));
        let l = locate(&root, &logs_dir, "ns", "p", "web", true).unwrap();
        assert_eq!(l.attempt, 0);
        assert!(matches!(
            locate(&root, &logs_dir, "ns", "p", "db", false),
            Err(LogError::NoSuchContainer { .. })
        ));
        assert!(matches!(
            locate(&root, &logs_dir, "ns", "q", "web", false),
            Err(LogError::PodNotFound { .. })
        ));
        assert!(locate(&root, &logs_dir, "..", "p", "web", false).is_err());
    }
}
