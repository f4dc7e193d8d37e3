//! Field checks shared by every kind: DNS-1123 names, label keys and
//! values, ports. Each returns `Cause`s with the field path; none of them
//! touch storage.

use serde_json::Value;

use crate::status::Cause;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub fn dns1123_label(field: &str, s: &str, out: &mut Vec<Cause>) {
    if !is_dns1123_label(s) {
        out.push(Cause::invalid(field, s, DNS1123_LABEL_MSG));
    }
}

pub fn dns1123_subdomain(field: &str, s: &str, out: &mut Vec<Cause>) {
    if !is_dns1123_subdomain(s) {
        out.push(Cause::invalid(field, s, DNS1123_SUBDOMAIN_MSG));
    }
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && label_value_ok(name)
}

/// `metadata.labels` keys and values, `metadata.annotations` keys.
pub fn labels(field: &str, meta: &Value, out: &mut Vec<Cause>) {
    if let Some(l) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in l {
            if !label_key_ok(k) {
                out.push(Cause::invalid(format!("{field}.labels"), k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            let v = v.as_str().unwrap_or_default();
            if !label_value_ok(v) {
                out.push(Cause::invalid(format!("{field}.labels"), v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
        }
    }
    if let Some(a) = meta.get("annotations").and_then(Value::as_object) {
        for k in a.keys() {
            if !label_key_ok(k) {
                out.push(Cause::invalid(
                    format!("{field}.annotations"),
                    k,
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
        }
    }
}

/// A port number in 1..=65535.
pub fn port(field: &str, v: Option<&Value>, required: bool, out: &mut Vec<Cause>) {
    match v.and_then(Value::as_i64) {
        None if required => out.push(Cause::required(field)),
        None => {}
        Some(p) if !(1..=65535).contains(&p) => out.push(Cause::invalid(
            field,
            p,
            "must be between 1 and 65535, inclusive",
        )),
        Some(_) => {}
    }
}

pub fn protocol(field: &str, v: Option<&Value>, out: &mut Vec<Cause>) {
    if let Some(p) = v.and_then(Value::as_str) {
        if !matches!(p, "TCP" | "UDP" | "SCTP") {
            out.push(Cause::not_supported(field, p, &["SCTP", "TCP", "UDP"]));
        }
    }
}

/// An IANA service name (named ports): at most 15 characters, lowercase
/// alphanumerics and '-', at least one letter.
pub fn port_name(field: &str, name: &str, out: &mut Vec<Cause>) {
    let ok = name.len() <= 15
        && is_dns1123_label(name)
        && !name.contains("--")
        && name.bytes().any(|b| b.is_ascii_lowercase());
    if !ok {
        out.push(Cause::invalid(field, name, "must be no more than 15 characters, contain only lowercase alphanumerics and '-', and contain at least one letter"));
    }
}

/// The keys of a ConfigMap's or Secret's `data` and `binaryData`.
pub fn config_keys(obj: &Value, out: &mut Vec<Cause>) {
    for field in ["data", "binaryData"] {
        for k in obj
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let ok = !k.is_empty()
                && k.len() <= 253
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                out.push(Cause::invalid(
                    format!("{field}[{k}]"),
                    k,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
    }

    #[test]
    fn label_keys_and_values() {
        let mut out = Vec::new();
        labels(
            "metadata",
            &serde_json::json!({"labels": {"app.kubernetes.io/name": "x", "ok": ""}}),
            &mut out,
        );
        assert!(out.is_empty());
        labels(
            "metadata",
            &serde_json::json!({"labels": {"bad key": "-x"}}),
            &mut out,
        );
        assert_eq!(out.len(), 2);
    }
}
