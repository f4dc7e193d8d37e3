//! Who is calling the agent API and whether they may: the user a verified
//! client certificate names (CN user, O groups, as Kubernetes reads it).
//! No certificate is 401; a node's own identity (group `system:nodes`) is
//! 403, since one node has no business reading another's containers. It
//! never verifies chains itself; TLS did that against the client CA.

use x509_parser::prelude::{FromDer, X509Certificate};

pub const NODES_GROUP: &str = "system:nodes";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What the TLS handshake learned, put on every request of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerIdentity {
    None,
    User(User),
    Invalid(String),
}

pub fn from_der(der: &[u8]) -> PeerIdentity {
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => return PeerIdentity::Invalid(format!("client certificate: {e}")),
    };
    let subject = cert.subject();
    let Some(name) = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|s| !s.is_empty())
    else {
        return PeerIdentity::Invalid("client certificate has no common name".into());
    };
    PeerIdentity::User(User {
        name: name.to_string(),
        groups: subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(String::from)
            .collect(),
    })
}

/// The answer for a request: `Ok` to serve it, else status and message.
pub fn decide(peer: Option<&PeerIdentity>) -> Result<&User, (u16, String)> {
    match peer {
        Some(PeerIdentity::User(u)) if u.groups.iter().any(|g| g == NODES_GROUP) => Err((
            403,
            format!("user {:?} (a node) may not use this node's API", u.name),
        )),
        Some(PeerIdentity::User(u)) => Ok(u),
        Some(PeerIdentity::Invalid(why)) => Err((401, format!("Unauthorized: {why}"))),
        Some(PeerIdentity::None) | None => Err((401, "Unauthorized".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(groups: &[&str]) -> PeerIdentity {
        PeerIdentity::User(User {
            name: "u".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        })
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None).unwrap_err().0, 401);
        assert_eq!(decide(Some(&PeerIdentity::None)).unwrap_err().0, 401);
        assert_eq!(
            decide(Some(&PeerIdentity::Invalid("x".into())))
                .unwrap_err()
                .0,
            401
        );
        assert_eq!(decide(Some(&user(&[NODES_GROUP]))).unwrap_err().0, 403);
        assert!(decide(Some(&user(&["system:masters"]))).is_ok());
    }

    #[test]
    fn reads_names_from_a_certificate() {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "admin");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(
            from_der(cert.der()),
            PeerIdentity::User(User {
                name: "admin".into(),
                groups: vec!["system:masters".into()]
            })
        );
        assert!(matches!(from_der(b"junk"), PeerIdentity::Invalid(_)));
    }
}
