use super::*;
use k8s_openapi::api::core::v1::Pod;

use crate::events::build::{build, WARNING};

fn pod() -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some("web".into());
    pod.metadata.namespace = Some("apps".into());
    pod.metadata.uid = Some("u-1".into());
    pod
}

/// A fake clock: `t` seconds after a fixed instant.
fn at(t: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + t).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ev(container: &str, reason: &str, message: &str, t: i64) -> Event {
    build(
        &pod(),
        container,
        WARNING,
        reason,
        message.into(),
        "node-1",
        at(t),
    )
}

fn unhealthy(t: i64) -> Event {
    ev("main", "Unhealthy", "Liveness probe failed: x", t)
}

#[test]
fn a_repeat_patches_the_first_object() {
    let mut c = Correlator::default();
    let first = c.correlate(unhealthy(0), at(0)).expect("first passes");
    assert!(first.patch.is_none());
    assert_eq!(first.event.count, Some(1));
    let name = first.event.metadata.name.clone();
    let mut stored = first.event.clone();
    stored.metadata.resource_version = Some("41".into());
    c.update_state(&stored);

    let second = c.correlate(unhealthy(7), at(7)).expect("repeat passes");
    assert_eq!(second.event.metadata.name, name);
    assert_eq!(
        second.event.metadata.resource_version.as_deref(),
        Some("41")
    );
    assert_eq!(second.event.count, Some(2));
    assert_eq!(second.event.first_timestamp, Some(Time(at(0))));
    let patch = second.patch.expect("a patch");
    assert_eq!(patch["count"], 2);
    assert_eq!(patch["message"], "Liveness probe failed: x");
    assert_eq!(
        patch["lastTimestamp"],
        serde_json::to_value(Time(at(7))).unwrap_or_default()
    );

    // Counted on before the API answered for the second one.
    let third = c.correlate(unhealthy(9), at(9)).expect("passes");
    assert_eq!(
        (third.event.count, third.event.metadata.name),
        (Some(3), name)
    );
}

#[test]
fn another_message_container_or_reason_is_a_new_object() {
    let mut c = Correlator::default();
    c.correlate(unhealthy(0), at(0));
    for e in [
        ev("main", "Unhealthy", "Liveness probe failed: y", 1),
        ev("side", "Unhealthy", "Liveness probe failed: x", 2),
        ev("main", "Killing", "Liveness probe failed: x", 3),
    ] {
        let r = c.correlate(e, at(3)).expect("passes");
        assert!(r.patch.is_none());
        assert_eq!(r.event.count, Some(1));
    }
}

#[test]
fn spam_filter_allows_a_burst_of_25_then_one_per_5_minutes() {
    let mut c = Correlator::default();
    // Distinct messages and reasons: the bucket is per object, whatever
    // the Event says.
    for i in 0..25 {
        let e = ev("main", &format!("R{i}"), "m", 0);
        assert!(c.correlate(e, at(0)).is_some(), "event {i} in the burst");
    }
    assert!(c.correlate(ev("main", "Late", "m", 1), at(1)).is_none());
    assert!(c.correlate(ev("main", "Late", "m", 299), at(299)).is_none());
    assert!(c.correlate(ev("main", "Late", "m", 302), at(302)).is_some());
    assert!(c.correlate(ev("main", "Late", "m", 303), at(303)).is_none());
    // Another pod has its own bucket.
    let mut other = ev("main", "Late", "m", 303);
    other.involved_object.uid = Some("u-2".into());
    assert!(c.correlate(other, at(303)).is_some());
}

#[test]
fn ten_similar_messages_in_10_minutes_combine() {
    let mut c = Correlator::default();
    for i in 0..9 {
        let r = c
            .correlate(ev("main", "Failed", &format!("m{i}"), i), at(i))
            .expect("passes");
        assert_eq!(r.event.message.as_deref(), Some(format!("m{i}").as_str()));
    }
    let tenth = c
        .correlate(ev("main", "Failed", "m9", 9), at(9))
        .expect("passes");
    assert_eq!(
        tenth.event.message.as_deref(),
        Some("(combined from similar events): m9")
    );
    assert_eq!(tenth.event.count, Some(1));
    assert!(tenth.patch.is_none());
    let name = tenth.event.metadata.name.clone();
    assert_eq!(name, Some(format!("web.{:x}", at(9).as_nanosecond())));

    let eleventh = c
        .correlate(ev("main", "Failed", "m10", 10), at(10))
        .expect("passes");
    assert_eq!(eleventh.event.metadata.name, name);
    assert_eq!(eleventh.event.count, Some(2));
    let patch = eleventh.patch.expect("a patch of the combined event");
    assert_eq!(patch["message"], "(combined from similar events): m10");
}

#[test]
fn similar_messages_further_apart_than_10_minutes_do_not_combine() {
    let mut c = Correlator::default();
    for i in 0..12 {
        let t = i * 601;
        // One bucket token per 300 s keeps the spam filter out of this.
        let r = c
            .correlate(ev("main", "Failed", &format!("m{i}"), t), at(t))
            .expect("passes");
        assert_eq!(r.event.message.as_deref(), Some(format!("m{i}").as_str()));
    }
}
