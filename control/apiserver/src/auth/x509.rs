//! The user a client certificate stands for, as Kubernetes reads it: the
//! subject's CN is the user name and each O is a group. The certificate
//! chain is verified by TLS before this runs; this only reads names.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::User;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("client certificate does not parse: {0}")]
    Parse(String),
    #[error("client certificate has no common name")]
    NoCommonName,
}

pub fn user_from_der(der: &[u8]) -> Result<User, Error> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| Error::Parse(e.to_string()))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|s| !s.is_empty())
        .ok_or(Error::NoCommonName)?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(String::from)
        .collect();
    Ok(User {
        name,
        groups,
        uid: None,
    })
}
