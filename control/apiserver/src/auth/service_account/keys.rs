//! The keys of service-account tokens: the signing key (a PKCS#8 private
//! key, ECDSA P-256 for ES256 or RSA for RS256) and the public keys tokens
//! are verified with (PEM files of public keys, PKCS#8 private keys or
//! certificates, as `--service-account-key-file` takes them). A key's id
//! (`kid`) is kube-apiserver's: the unpadded base64url SHA-256 of its
//! SubjectPublicKeyInfo. Signing and verifying are jsonwebtoken's (ring).

use std::path::{Path, PathBuf};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rcgen::{KeyPair, PublicKeyData};
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM key in the file", path.display())]
    Empty { path: PathBuf },
    #[error("{}: {what}", path.display())]
    Bad { path: PathBuf, what: String },
}

/// A key that verifies tokens.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: String,
    pub alg: Algorithm,
    pub(super) key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} key {}", self.alg, self.kid)
    }
}

/// The key tokens are signed with, and its public half.
#[derive(Clone)]
pub struct SigningKey {
    pub(super) key: EncodingKey,
    pub public: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signing {:?}", self.public)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, what: impl Into<String>) -> KeyError {
    KeyError::Bad {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// kube-apiserver's key id: base64url(SHA-256(SubjectPublicKeyInfo DER)).
pub fn key_id(spki_der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(spki_der))
}

/// A verifying key from a DER SubjectPublicKeyInfo: ECDSA P-256 (ES256)
/// or RSA (RS256); anything else is refused by name.
fn from_spki(path: &Path, der: &[u8]) -> Result<VerifyingKey, KeyError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| bad(path, format!("not a SubjectPublicKeyInfo: {e}")))?;
    let oid = &spki.algorithm.algorithm;
    let point = spki.subject_public_key.data.as_ref();
    let (alg, key) = if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if curve.as_ref() != Some(&OID_EC_P256) {
            return Err(bad(
                path,
                "ECDSA keys must be on curve P-256 (ES256); P-384/P-521 are not supported",
            ));
        }
        (Algorithm::ES256, DecodingKey::from_ec_der(point))
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        // The SPKI's bit string is the PKCS#1 RSAPublicKey ring takes.
        (Algorithm::RS256, DecodingKey::from_rsa_der(point))
    } else {
        return Err(bad(
            path,
            format!("key algorithm {oid} is not supported (want ECDSA P-256 or RSA)"),
        ));
    };
    Ok(VerifyingKey {
        kid: key_id(der),
        alg,
        key,
    })
}

fn key_pair(path: &Path, pkcs8_der: &[u8]) -> Result<KeyPair, KeyError> {
    KeyPair::try_from(pkcs8_der).map_err(|e| {
        bad(
            path,
            format!("not a PKCS#8 ECDSA P-256 or RSA private key: {e}"),
        )
    })
}

/// Why a PEM label is not taken, with the command that converts it.
fn unsupported_label(path: &Path, label: &str) -> KeyError {
    let hint = match label {
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            " (convert it to PKCS#8: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8)"
        }
        _ => "",
    };
    bad(path, format!("PEM block {label:?} is not supported{hint}"))
}

/// The signing key in `path`: one PKCS#8 "PRIVATE KEY" block.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let bytes = read(path)?;
    let pem = Pem::iter_from_buffer(&bytes)
        .next()
        .ok_or_else(|| KeyError::Empty {
            path: path.to_path_buf(),
        })?
        .map_err(|e| bad(path, format!("not PEM: {e}")))?;
    if pem.label != "PRIVATE KEY" {
        return Err(unsupported_label(path, &pem.label));
    }
    signing_key_from_pkcs8(path, &pem.contents)
}

fn signing_key_from_pkcs8(path: &Path, der: &[u8]) -> Result<SigningKey, KeyError> {
    let pair = key_pair(path, der)?;
    let public = from_spki(path, &pair.subject_public_key_info())?;
    let pem = pair.serialize_pem();
    let key = match public.alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .map_err(|e| bad(path, format!("unusable signing key: {e}")))?;
    Ok(SigningKey { key, public })
}

/// Every key in `path` (public keys, PKCS#8 private keys, certificates).
pub fn load_verifying_keys(path: &Path) -> Result<Vec<VerifyingKey>, KeyError> {
    let bytes = read(path)?;
    let mut out = Vec::new();
    for pem in Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| bad(path, format!("not PEM: {e}")))?;
        let key = match pem.label.as_str() {
            "PUBLIC KEY" => from_spki(path, &pem.contents)?,
            "PRIVATE KEY" => {
                let pair = key_pair(path, &pem.contents)?;
                from_spki(path, &pair.subject_public_key_info())?
            }
            "CERTIFICATE" => {
                let (_, cert) = X509Certificate::from_der(&pem.contents)
                    .map_err(|e| bad(path, format!("bad certificate: {e}")))?;
                from_spki(path, cert.public_key().raw)?
            }
            other => return Err(unsupported_label(path, other)),
        };
        out.push(key);
    }
    if out.is_empty() {
        return Err(KeyError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// A new ES256 key pair as PEM: (PKCS#8 private key, public key).
pub fn generate() -> Result<(String, String), rcgen::Error> {
    let pair = KeyPair::generate()?;
    Ok((pair.serialize_pem(), pair.public_key_pem()))
}

/// The public key PEM of a PKCS#8 private key PEM (to rewrite a lost
/// `sa.pub` from the key that signs).
pub fn public_pem_of(private_pem: &str) -> Result<String, rcgen::Error> {
    Ok(KeyPair::from_pem(private_pem)?.public_key_pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn generated_pair_loads_with_matching_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate().unwrap();
        let key = load_signing_key(&write(dir.path(), "sa.key", &private)).unwrap();
        assert_eq!(key.public.alg, Algorithm::ES256);
        let pubs = load_verifying_keys(&write(dir.path(), "sa.pub", &public)).unwrap();
        assert_eq!(pubs.len(), 1);
        assert_eq!(pubs[0].kid, key.public.kid);
        // The private key file also verifies (kube-apiserver accepts it).
        let from_private = load_verifying_keys(&dir.path().join("sa.key")).unwrap();
        assert_eq!(from_private[0].kid, key.public.kid);
        assert_eq!(public_pem_of(&private).unwrap(), public);
        // 43 characters: 32 bytes, unpadded base64url.
        assert_eq!(key.public.kid.len(), 43);
    }

    #[test]
    fn several_keys_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, a) = generate().unwrap();
        let (_, b) = generate().unwrap();
        let keys = load_verifying_keys(&write(dir.path(), "k", &format!("{a}{b}"))).unwrap();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0].kid, keys[1].kid);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "empty", "");
        assert!(matches!(
            load_verifying_keys(&empty),
            Err(KeyError::Empty { .. })
        ));
        assert!(matches!(
            load_signing_key(&empty),
            Err(KeyError::Empty { .. })
        ));
        let sec1 = write(
            dir.path(),
            "sec1",
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        );
        let e = load_signing_key(&sec1).unwrap_err().to_string();
        assert!(e.contains("openssl pkcs8"), "{e}");
        let junk = write(
            dir.path(),
            "junk",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        );
        assert!(load_verifying_keys(&junk).is_err());
        let missing = dir.path().join("missing");
        assert!(matches!(
            load_signing_key(&missing),
            Err(KeyError::Read { .. })
        ));
    }
}
