//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`), after
//! Kubernetes' `WithImpersonation` filter: the `Impersonate-User`,
//! `-Group`, `-Uid` and `-Extra-<key>` headers, each allowed by the
//! `impersonate` verb on `users`, `groups`, `serviceaccounts` (for
//! `system:serviceaccount:` names), `uids` or `userextras/<key>`; the
//! request then runs as the impersonated user. Pure: the HTTP layer reads
//! the headers and answers.

use super::rbac::names;
use super::{Attributes, Authorizer, Decision, User, Verb, AUTHENTICATED_GROUP};

pub const USER_HEADER: &str = "impersonate-user";
pub const GROUP_HEADER: &str = "impersonate-group";
pub const UID_HEADER: &str = "impersonate-uid";
pub const EXTRA_PREFIX: &str = "impersonate-extra-";

/// What the headers ask to act as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    /// `(key, value)` pairs, keys lower-cased and percent-decoded.
    pub extra: Vec<(String, String)>,
}

impl Request {
    pub fn is_empty(&self) -> bool {
        *self == Request::default()
    }
}

/// Percent-decoding of an extra key (`Impersonate-Extra-` header names
/// carry `%2F` for `/`, as client-go escapes them).
fn unescape(key: &str) -> String {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the headers: `(lower-case name, value)` pairs. `Err`: a header
/// that makes no sense (groups, uid or extras without a user), a 400.
pub fn parse<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Request, String> {
    let mut r = Request::default();
    for (name, value) in headers {
        if name == USER_HEADER {
            r.user = Some(value.to_string());
        } else if name == GROUP_HEADER {
            r.groups.push(value.to_string());
        } else if name == UID_HEADER {
            r.uid = Some(value.to_string());
        } else if let Some(key) = name.strip_prefix(EXTRA_PREFIX) {
            r.extra.push((unescape(key), value.to_string()));
        }
    }
    if r.user.is_none() && !r.is_empty() {
        let what = if !r.groups.is_empty() {
            format!("groups={:?}", r.groups)
        } else if r.uid.is_some() {
            "uid".to_string()
        } else {
            "extra".to_string()
        };
        return Err(format!("requested {what} without impersonating a user"));
    }
    Ok(r)
}

/// One permission impersonation needs, as Kubernetes names it in a 403.
struct Need<'a> {
    group: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: &'a str,
}

fn denied(requester: &User, n: &Need<'_>, reason: &str) -> String {
    let what = match n.subresource {
        Some(s) => format!("{}/{s}", n.resource),
        None => n.resource.to_string(),
    };
    let scope = match n.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".into(),
    };
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    format!(
        "{what} \"{}\" is forbidden: User \"{}\" cannot impersonate resource \"{what}\" in API group \"{}\"{scope}{reason}",
        n.name, requester.name, n.group
    )
}

/// The user the request runs as, or the 403 message when `requester` may
/// not impersonate one of the asked identities.
pub fn impersonate(z: &dyn Authorizer, requester: &User, r: &Request) -> Result<User, String> {
    let Some(name) = r.user.as_deref() else {
        return Ok(requester.clone());
    };
    let mut needs = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    match names::parse_service_account(name) {
        Some((ns, sa)) => {
            needs.push(Need {
                group: "",
                resource: "serviceaccounts",
                subresource: None,
                namespace: Some(ns),
                name: sa,
            });
            if r.groups.is_empty() {
                groups = names::service_account_groups(ns);
            }
        }
        None => needs.push(Need {
            group: "",
            resource: "users",
            subresource: None,
            namespace: None,
            name,
        }),
    }
    for g in &r.groups {
        needs.push(Need {
            group: "",
            resource: "groups",
            subresource: None,
            namespace: None,
            name: g,
        });
        groups.push(g.clone());
    }
    for (k, v) in &r.extra {
        needs.push(Need {
            group: "authentication.k8s.io",
            resource: "userextras",
            subresource: Some(k),
            namespace: None,
            name: v,
        });
    }
    if let Some(uid) = &r.uid {
        needs.push(Need {
            group: "authentication.k8s.io",
            resource: "uids",
            subresource: None,
            namespace: None,
            name: uid,
        });
    }
    for n in &needs {
        let a = Attributes {
            verb: Some(Verb::Impersonate),
            group: n.group,
            resource: n.resource,
            subresource: n.subresource,
            namespace: n.namespace,
            name: Some(n.name),
            ..Default::default()
        };
        if let Decision::Deny(why) = z.authorize(requester, &a) {
            return Err(denied(requester, n, &why));
        }
    }
    // As Kubernetes: an impersonated user is authenticated unless the
    // caller said otherwise.
    if !groups
        .iter()
        .any(|g| g == AUTHENTICATED_GROUP || g == names::UNAUTHENTICATED_GROUP)
    {
        groups.push(AUTHENTICATED_GROUP.into());
    }
    Ok(User {
        name: name.to_string(),
        groups,
        uid: r.uid.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ClusterAuthorizer, MASTERS_GROUP};

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: None,
        }
    }

    #[test]
    fn headers() {
        let r = parse(
            [
                ("impersonate-user", "bob"),
                ("impersonate-group", "a"),
                ("impersonate-group", "b"),
                ("impersonate-extra-example.com%2fteam", "x"),
                ("accept", "y"),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(r.user.as_deref(), Some("bob"));
        assert_eq!(r.groups, vec!["a", "b"]);
        assert_eq!(r.extra, vec![("example.com/team".into(), "x".into())]);
        assert!(parse([("accept", "y")].into_iter()).unwrap().is_empty());
        assert!(parse([("impersonate-group", "a")].into_iter()).is_err());
        assert!(parse([("impersonate-uid", "1")].into_iter()).is_err());
    }

    #[test]
    fn masters_may_and_the_identity_is_replaced() {
        let z = ClusterAuthorizer::fixed();
        let admin = user("admin", &[MASTERS_GROUP]);
        let sa = Request {
            user: Some("system:serviceaccount:capstan-system:capstan".into()),
            ..Default::default()
        };
        let u = impersonate(&z, &admin, &sa).unwrap();
        assert_eq!(u.name, "system:serviceaccount:capstan-system:capstan");
        assert_eq!(
            u.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:capstan-system",
                AUTHENTICATED_GROUP
            ]
        );
        let bob = Request {
            user: Some("bob".into()),
            groups: vec!["dev".into()],
            uid: Some("7".into()),
            ..Default::default()
        };
        let u = impersonate(&z, &admin, &bob).unwrap();
        assert_eq!(u.groups, vec!["dev", AUTHENTICATED_GROUP]);
        assert_eq!(u.uid.as_deref(), Some("7"));
        let unauth = Request {
            user: Some("anon".into()),
            groups: vec![names::UNAUTHENTICATED_GROUP.into()],
            ..Default::default()
        };
        assert_eq!(
            impersonate(&z, &admin, &unauth).unwrap().groups,
            vec![names::UNAUTHENTICATED_GROUP]
        );
    }

    #[test]
    fn others_are_refused_naming_what_they_lack() {
        let z = ClusterAuthorizer::fixed();
        let alice = user("alice", &[]);
        let sa = Request {
            user: Some("system:serviceaccount:ns:sa".into()),
            ..Default::default()
        };
        assert_eq!(
            impersonate(&z, &alice, &sa).unwrap_err(),
            "serviceaccounts \"sa\" is forbidden: User \"alice\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ns\""
        );
        let bob = Request {
            user: Some("bob".into()),
            ..Default::default()
        };
        assert!(impersonate(&z, &alice, &bob)
            .unwrap_err()
            .starts_with("users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"));
        // No impersonation asked: the caller stays who they are.
        assert_eq!(impersonate(&z, &alice, &Request::default()).unwrap(), alice);
    }
}
