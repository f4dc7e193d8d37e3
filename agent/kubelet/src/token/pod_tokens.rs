//! The service-account tokens one pod's projected volumes hold, keyed by
//! (audience, expirationSeconds), each with its retry state: a token is
//! fetched when missing or due (`refresh`), a failed fetch keeps the last
//! token while it is valid and retries with back-off (1 s doubling to
//! 60 s), and each token logs once per change of state (obtained,
//! refreshed, failing, recovered), not per retry. Owned by the pod's
//! worker, so it dies with the pod and nothing refreshes after.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::pod::volumes::Tokens;
use crate::token::refresh;
use crate::token::request::{Issuer, Token};

const RETRY_INITIAL: SignedDuration = SignedDuration::from_secs(1);
const RETRY_MAX: SignedDuration = SignedDuration::from_secs(60);
/// No token is fetched again sooner than this after the last one, even if
/// the server granted a lifetime that makes it due at once.
const MIN_GAP: SignedDuration = SignedDuration::from_secs(10);

type Key = (String, i64);

#[derive(Debug, Default)]
struct Entry {
    current: Option<Token>,
    fetched: Option<Timestamp>,
    /// Consecutive failures and the last one's message.
    failures: u32,
    error: Option<String>,
    retry_at: Option<Timestamp>,
}

impl Entry {
    /// When this entry next wants a fetch.
    fn due(&self) -> Option<Timestamp> {
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        let t = self.current.as_ref()?;
        let at = refresh::refresh_at(t.expires, t.ttl_seconds);
        Some(match self.fetched {
            Some(f) => at.max(f + MIN_GAP),
            None => at,
        })
    }
}

#[derive(Debug, Default)]
pub struct PodTokens {
    entries: BTreeMap<Key, Entry>,
}

fn backoff(failures: u32) -> SignedDuration {
    let exp = failures.saturating_sub(1).min(16);
    (RETRY_INITIAL * 2i32.pow(exp)).min(RETRY_MAX)
}

impl PodTokens {
    /// Fetches every wanted token that is missing or due (unless its retry
    /// back-off holds) and forgets unwanted ones. Returns whether any token
    /// changed, so the caller rewrites the volumes only then.
    pub async fn ensure(
        &mut self,
        issuer: &impl Issuer,
        wants: &[(String, i64)],
        now: Timestamp,
        pod: &str,
    ) -> bool {
        self.entries.retain(|k, _| wants.contains(k));
        let mut changed = false;
        for key in wants {
            let e = self.entries.entry(key.clone()).or_default();
            if e.due().is_some_and(|at| at > now) {
                continue;
            }
            let (audience, seconds) = (key.0.as_str(), key.1);
            match issuer.issue(audience, seconds).await {
                Ok(t) => {
                    let at = refresh::refresh_at(t.expires, t.ttl_seconds);
                    if e.failures > 0 {
                        tracing::info!(pod, audience, failures = e.failures, expires = %t.expires, refresh_at = %at, "service account token obtained after failures");
                    } else if e.current.is_some() {
                        tracing::info!(pod, audience, expires = %t.expires, refresh_at = %at, "service account token refreshed");
                    } else {
                        tracing::info!(pod, audience, expires = %t.expires, refresh_at = %at, "service account token obtained");
                    }
                    *e = Entry {
                        current: Some(t),
                        fetched: Some(now),
                        ..Entry::default()
                    };
                    changed = true;
                }
                Err(msg) => {
                    e.failures += 1;
                    let wait = backoff(e.failures);
                    if e.failures == 1 {
                        let valid = e.current.as_ref().is_some_and(|t| t.expires > now);
                        tracing::warn!(pod, audience, error = %msg, keeps_valid_token = valid, "service account token request failed; retrying with back-off");
                    } else {
                        tracing::debug!(pod, audience, error = %msg, failures = e.failures, "service account token request failed again");
                    }
                    e.error = Some(msg);
                    e.retry_at = Some(now + wait);
                }
            }
        }
        changed
    }

    /// When `ensure` next has work to do (None: no tokens wanted).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.entries.values().filter_map(Entry::due).min()
    }

    /// The token held for a projection, valid at `now`.
    pub fn get(
        &self,
        audience: &str,
        expiration_seconds: i64,
        now: Timestamp,
    ) -> Result<String, String> {
        let e = self
            .entries
            .get(&(audience.to_string(), expiration_seconds))
            .ok_or_else(|| {
                format!("no service account token requested for audience {audience:?}")
            })?;
        match &e.current {
            Some(t) if t.expires > now => Ok(t.token.clone()),
            _ => Err(e
                .error
                .clone()
                .unwrap_or_else(|| "the service account token expired".into())),
        }
    }
}

impl Tokens for PodTokens {
    fn token(&self, audience: &str, expiration_seconds: i64) -> Result<String, String> {
        self.get(audience, expiration_seconds, Timestamp::now())
    }
}

/// Tokens for pods that have no API server (static pods): none.
pub struct NoTokens;

impl Tokens for NoTokens {
    fn token(&self, _: &str, _: i64) -> Result<String, String> {
        Err("serviceAccountToken projections need the API server (not for static pods)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers from a script, recording each request.
    struct Script {
        answers: Mutex<Vec<Result<Token, String>>>,
        asked: Mutex<Vec<(String, i64)>>,
    }

    impl Script {
        fn new(mut answers: Vec<Result<Token, String>>) -> Self {
            answers.reverse();
            Script {
                answers: Mutex::new(answers),
                asked: Mutex::new(Vec::new()),
            }
        }
        fn asked(&self) -> usize {
            self.asked.lock().map(|a| a.len()).unwrap_or_default()
        }
    }

    impl Issuer for Script {
        async fn issue(&self, audience: &str, seconds: i64) -> Result<Token, String> {
            if let Ok(mut a) = self.asked.lock() {
                a.push((audience.to_string(), seconds));
            }
            self.answers
                .lock()
                .ok()
                .and_then(|mut a| a.pop())
                .unwrap_or_else(|| Err("script ran out".into()))
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn tok(name: &str, expires: i64, ttl: i64) -> Token {
        Token {
            token: name.into(),
            expires: t(expires),
            ttl_seconds: ttl,
        }
    }

    fn want() -> Vec<(String, i64)> {
        vec![(String::new(), 600)]
    }

    #[tokio::test]
    async fn fetched_once_then_refreshed_at_80_percent() {
        let s = Script::new(vec![Ok(tok("a", 600, 600)), Ok(tok("b", 1080, 600))]);
        let mut p = PodTokens::default();
        assert!(p.ensure(&s, &want(), t(0), "p").await);
        assert_eq!(p.get("", 600, t(1)), Ok("a".into()));
        assert_eq!(p.next_due(), Some(t(480)));
        // Not due yet: nothing asked.
        assert!(!p.ensure(&s, &want(), t(479), "p").await);
        assert_eq!(s.asked(), 1);
        assert!(p.ensure(&s, &want(), t(480), "p").await);
        assert_eq!(p.get("", 600, t(481)), Ok("b".into()));
        assert_eq!(p.next_due(), Some(t(960)));
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_valid_token_and_backs_off() {
        let s = Script::new(vec![
            Ok(tok("a", 600, 600)),
            Err("boom".into()),
            Err("boom".into()),
            Ok(tok("b", 1083, 600)),
        ]);
        let mut p = PodTokens::default();
        p.ensure(&s, &want(), t(0), "p").await;
        assert!(!p.ensure(&s, &want(), t(480), "p").await);
        assert_eq!(
            p.get("", 600, t(480)),
            Ok("a".into()),
            "old token still valid"
        );
        assert_eq!(p.next_due(), Some(t(481)), "retry after 1 s");
        assert!(!p.ensure(&s, &want(), t(481), "p").await);
        assert_eq!(p.next_due(), Some(t(483)), "then 2 s");
        // Held back by the back-off: no request.
        p.ensure(&s, &want(), t(482), "p").await;
        assert_eq!(s.asked(), 3);
        assert!(p.ensure(&s, &want(), t(483), "p").await);
        assert_eq!(p.get("", 600, t(484)), Ok("b".into()));
        assert_eq!(p.next_due(), Some(t(963)));
    }

    #[tokio::test]
    async fn without_any_token_the_error_is_reported() {
        let s = Script::new(vec![Err("403 forbidden".into())]);
        let mut p = PodTokens::default();
        p.ensure(&s, &want(), t(0), "p").await;
        assert_eq!(p.get("", 600, t(0)), Err("403 forbidden".into()));
        assert!(p.get("other", 600, t(0)).is_err());
        // An expired token is not handed out.
        let s = Script::new(vec![Ok(tok("a", 600, 600))]);
        let mut p = PodTokens::default();
        p.ensure(&s, &want(), t(0), "p").await;
        assert!(p.get("", 600, t(600)).is_err());
    }

    #[tokio::test]
    async fn unwanted_tokens_are_forgotten_and_backoff_is_capped() {
        let s = Script::new(vec![Ok(tok("a", 600, 600))]);
        let mut p = PodTokens::default();
        p.ensure(&s, &want(), t(0), "p").await;
        p.ensure(&s, &[], t(1), "p").await;
        assert_eq!(p.next_due(), None);
        assert_eq!(backoff(1), SignedDuration::from_secs(1));
        assert_eq!(backoff(7), SignedDuration::from_secs(60));
        assert_eq!(backoff(u32::MAX), SignedDuration::from_secs(60));
    }

    #[tokio::test]
    async fn a_token_due_at_once_is_not_fetched_in_a_loop() {
        // The server granted 1 s: due at once, but not again within 10 s.
        let s = Script::new(vec![Ok(tok("a", 1, 1)), Ok(tok("b", 12, 1))]);
        let mut p = PodTokens::default();
        p.ensure(&s, &want(), t(0), "p").await;
        assert_eq!(p.next_due(), Some(t(10)));
        p.ensure(&s, &want(), t(5), "p").await;
        assert_eq!(s.asked(), 1);
    }
}
