//! Service-account tokens as kube-apiserver issues and accepts them: JWTs
//! signed with the key `init` makes (`sa.key`), carrying Kubernetes' claims
//! (`claims.rs`), issued through TokenRequest (`issuer.rs`) and accepted as
//! bearer tokens (`validator.rs`, then `authenticator.rs` checks that the
//! service account and the pod or secret the token is bound to still
//! exist). It never decides what a service account may do: that is the
//! authorizer's.

pub mod authenticator;
pub mod claims;
pub mod issuer;
pub mod keys;
pub mod live;
pub mod validator;

pub use authenticator::ServiceAccountAuthenticator;
pub use claims::{Claims, ServiceAccountInfo};
pub use issuer::{IssuerOptions, TokenIssuer};
pub use keys::{load_signing_key, load_verifying_keys, SigningKey, VerifyingKey};
pub use validator::TokenValidator;

/// `--service-account-issuer`'s default, as kubeadm sets it.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Service-account user names are `system:serviceaccount:<ns>:<name>`.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Every service account is in this group, and in `<group>:<namespace>`.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

pub fn username(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// (namespace, name) of a service account's user name.
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let (ns, name) = user.strip_prefix(USER_PREFIX)?.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// Seconds since the Unix epoch, the unit of every time claim.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert_eq!(username("ns", "sa"), "system:serviceaccount:ns:sa");
        assert_eq!(
            split_username("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
        assert_eq!(split_username("system:serviceaccount:ns"), None);
        assert_eq!(split_username("system:serviceaccount::sa"), None);
        assert_eq!(split_username("system:node:n1"), None);
    }
}
