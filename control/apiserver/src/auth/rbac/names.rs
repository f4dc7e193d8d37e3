//! The user and group names Kubernetes gives service accounts and the
//! unauthenticated, shared by RBAC subjects, impersonation and bootstrap.

/// Service-account users are `system:serviceaccount:<namespace>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// Every service account is in this group.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Requests without credentials (public paths only here).
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// `(namespace, name)` of a service-account user name.
pub fn parse_service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// `system:serviceaccounts` and `system:serviceaccounts:<namespace>`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        SERVICE_ACCOUNTS_GROUP.to_string(),
        format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
    ]
}

/// Whether `user` is the service account `namespace/name`, without
/// building the name (per-binding, per-request).
pub fn is_service_account(user: &str, namespace: &str, name: &str) -> bool {
    parse_service_account(user) == Some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names() {
        let u = service_account_user("capstan-system", "capstan");
        assert_eq!(u, "system:serviceaccount:capstan-system:capstan");
        assert_eq!(
            parse_service_account(&u),
            Some(("capstan-system", "capstan"))
        );
        assert!(is_service_account(&u, "capstan-system", "capstan"));
        assert!(!is_service_account(&u, "capstan-system", "capsta"));
        for bad in [
            "system:serviceaccount:",
            "system:serviceaccount:ns",
            "system:serviceaccount::n",
            "system:serviceaccount:a:b:c",
            "bob",
        ] {
            assert_eq!(parse_service_account(bad), None, "{bad}");
        }
        assert_eq!(
            service_account_groups("ns"),
            vec!["system:serviceaccounts", "system:serviceaccounts:ns"]
        );
    }
}
