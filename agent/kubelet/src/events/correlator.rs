//! client-go's `EventCorrelator` (tools/record/events_cache.go), pure and
//! with the clock passed in: what kubelet does to an Event before it goes
//! to the API, so repeats show as "(x5 over 2m)" instead of five objects.
//!
//! Three stages, in client-go's order:
//! 1. aggregation: the 10th distinct message with the same source, object,
//!    type and reason within 10 minutes becomes one Event "(combined from
//!    similar events): <message>", keyed by what the messages share;
//! 2. dedup ("event logger"): an Event whose key (source, object incl.
//!    fieldPath, type, reason, message) was seen is sent as a PATCH of the
//!    earlier object: count+1, lastTimestamp, message;
//! 3. spam filter: a token bucket per source and object (burst 25, one
//!    token back per 5 minutes); an Event without a token is dropped.
//!
//! Every cache is an LRU of 4096 entries, as client-go's.

use std::collections::HashSet;
use std::num::NonZeroUsize;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lru::LruCache;
use serde_json::json;

pub const CACHE_ENTRIES: NonZeroUsize = match NonZeroUsize::new(4096) {
    Some(n) => n,
    None => panic!("cache size is positive"),
};
pub const AGGREGATE_MAX_EVENTS: usize = 10;
pub const AGGREGATE_INTERVAL_SECS: i64 = 600;
pub const SPAM_BURST: f64 = 25.0;
/// Tokens per second: one per 5 minutes.
pub const SPAM_QPS: f64 = 1.0 / 300.0;

const COMBINED: &str = "(combined from similar events): ";

/// What to send: `event` as is (create) or, with `patch`, a strategic
/// merge patch of the existing object `event.metadata.name`.
#[derive(Clone, Debug)]
pub struct Correlated {
    pub event: Event,
    pub patch: Option<serde_json::Value>,
}

struct Aggregate {
    messages: HashSet<String>,
    last: Timestamp,
}

/// What the dedup stage remembers of an Event it sent.
struct Observed {
    count: i32,
    first: Option<Time>,
    name: Option<String>,
    resource_version: Option<String>,
}

struct Bucket {
    tokens: f64,
    at: Timestamp,
}

pub struct Correlator {
    aggregates: LruCache<String, Aggregate>,
    observed: LruCache<String, Observed>,
    spam: LruCache<String, Bucket>,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator {
            aggregates: LruCache::new(CACHE_ENTRIES),
            observed: LruCache::new(CACHE_ENTRIES),
            spam: LruCache::new(CACHE_ENTRIES),
        }
    }
}

fn s(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

fn source(e: &Event) -> [&str; 2] {
    let src = e.source.as_ref();
    [
        src.and_then(|x| x.component.as_deref()).unwrap_or(""),
        src.and_then(|x| x.host.as_deref()).unwrap_or(""),
    ]
}

// client-go joins the fields with "" (so "ab"+"c" and "a"+"bc" collide);
// a NUL separator keeps the same fields apart without that ambiguity.
fn join(parts: &[&str]) -> String {
    parts.join("\0")
}

/// getSpamKey: source and involved object.
fn spam_key(e: &Event) -> String {
    let o = &e.involved_object;
    let [c, h] = source(e);
    join(&[
        c,
        h,
        s(&o.kind),
        s(&o.namespace),
        s(&o.name),
        s(&o.uid),
        s(&o.api_version),
    ])
}

/// getEventKey: source, involved object (with fieldPath), type, reason,
/// message.
pub fn event_key(e: &Event) -> String {
    let o = &e.involved_object;
    let [c, h] = source(e);
    join(&[
        c,
        h,
        s(&o.kind),
        s(&o.namespace),
        s(&o.name),
        s(&o.field_path),
        s(&o.uid),
        s(&o.api_version),
        s(&e.type_),
        s(&e.reason),
        s(&e.message),
    ])
}

/// EventAggregatorByReasonFunc: the key similar Events share, and the
/// message that tells them apart.
fn aggregate_key(e: &Event) -> String {
    let o = &e.involved_object;
    let [c, h] = source(e);
    join(&[
        c,
        h,
        s(&o.kind),
        s(&o.namespace),
        s(&o.name),
        s(&o.uid),
        s(&o.api_version),
        s(&e.type_),
        s(&e.reason),
        s(&e.reporting_component),
        s(&e.reporting_instance),
    ])
}

impl Correlator {
    /// The Event to send for `event` observed at `now`, or None when the
    /// spam filter drops it.
    pub fn correlate(&mut self, event: Event, now: Timestamp) -> Option<Correlated> {
        let (event, key) = self.aggregate(event, now);
        let observed = self.observe(event, key);
        if self.spam_filtered(&observed.event, now) {
            return None;
        }
        Some(observed)
    }

    /// Records what the API returned (name, resourceVersion, count), so the
    /// next repeat patches that object; client-go's `UpdateState`.
    pub fn update_state(&mut self, event: &Event) {
        self.observed.put(event_key(event), observed_of(event));
    }

    fn aggregate(&mut self, event: Event, now: Timestamp) -> (Event, String) {
        let key = event_key(&event);
        let agg_key = aggregate_key(&event);
        let fresh = || Aggregate {
            messages: HashSet::new(),
            last: now,
        };
        let mut record = self
            .aggregates
            .get_mut(&agg_key)
            .map_or_else(fresh, |r| Aggregate {
                messages: std::mem::take(&mut r.messages),
                last: r.last,
            });
        if now.as_second() - record.last.as_second() > AGGREGATE_INTERVAL_SECS {
            record = fresh();
        }
        record.messages.insert(s(&event.message).to_string());
        record.last = now;
        if record.messages.len() < AGGREGATE_MAX_EVENTS {
            self.aggregates.put(agg_key, record);
            return (event, key);
        }
        // Keep the set below the limit (client-go pops an arbitrary one),
        // so every further distinct message lands in the combined Event.
        if let Some(any) = record.messages.iter().next().cloned() {
            record.messages.remove(&any);
        }
        self.aggregates.put(agg_key.clone(), record);
        let name = event.involved_object.name.clone().unwrap_or_default();
        let combined = Event {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: event.metadata.namespace.clone(),
                ..Default::default()
            },
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            message: Some(format!("{COMBINED}{}", s(&event.message))),
            involved_object: event.involved_object,
            type_: event.type_,
            reason: event.reason,
            source: event.source,
            ..Default::default()
        };
        (combined, agg_key)
    }

    /// eventObserve: a repeat takes the earlier object's name,
    /// resourceVersion and firstTimestamp, count+1, and becomes a patch.
    fn observe(&mut self, mut event: Event, key: String) -> Correlated {
        let mut patch = None;
        if let Some(last) = self.observed.get_mut(&key).filter(|l| l.count > 0) {
            event.metadata.name = last.name.clone();
            event.metadata.resource_version = last.resource_version.clone();
            event.first_timestamp = last.first.clone();
            event.count = Some(last.count.saturating_add(1));
            patch = Some(json!({
                "count": event.count,
                "lastTimestamp": event.last_timestamp,
                "message": event.message,
            }));
        }
        // Remembered before the API answers, so a quick repeat already
        // counts on: the recorder sends Events one at a time.
        self.observed.put(key, observed_of(&event));
        Correlated { event, patch }
    }

    /// EventSourceObjectSpamFilter: true when the object's bucket is empty.
    fn spam_filtered(&mut self, event: &Event, now: Timestamp) -> bool {
        let key = spam_key(event);
        let mut bucket = match self.spam.get_mut(&key) {
            Some(b) => Bucket {
                tokens: b.tokens,
                at: b.at,
            },
            None => Bucket {
                tokens: SPAM_BURST,
                at: now,
            },
        };
        let elapsed = (now.as_millisecond() - bucket.at.as_millisecond()).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        bucket.at = now;
        let filtered = bucket.tokens < 1.0;
        if !filtered {
            bucket.tokens -= 1.0;
        }
        self.spam.put(key, bucket);
        filtered
    }
}

fn observed_of(e: &Event) -> Observed {
    Observed {
        count: e.count.unwrap_or(1),
        first: e.first_timestamp.clone(),
        name: e.metadata.name.clone(),
        resource_version: e.metadata.resource_version.clone(),
    }
}

#[cfg(test)]
mod tests;
