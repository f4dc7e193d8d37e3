//! Issuing certificates with rcgen: a self-signed CA, then serving and
//! client certificates signed by it. Client identities follow Kubernetes:
//! CN is the user name, each O is a group.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::error::Error;
use super::layout::Layout;
use super::report::InitReport;

const CA_VALIDITY: Duration = Duration::days(3650);
const LEAF_VALIDITY: Duration = Duration::days(365);

/// The cluster CA, loaded from disk or just made.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM-encoded.
pub struct IssuedPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub(super) fn load_or_create(layout: &Layout, report: &mut InitReport) -> Result<Self, Error> {
        let (cert_path, key_path) = (layout.ca_cert(), layout.ca_key());
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let load = |source| Error::LoadCa {
                dir: layout.dir().to_path_buf(),
                source,
            };
            let key = KeyPair::from_pem(&key_pem).map_err(load)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(load)?;
            report.kept.push(cert_path);
            return Ok(Ca { cert_pem, issuer });
        }
        let issue = |source| Error::Issue {
            name: "ca".into(),
            source,
        };
        let key = KeyPair::generate().map_err(issue)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("capstan-ca", None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key).map_err(issue)?;
        // Key first: a crash between the two leaves no CA cert without key.
        capstan_serve::files::write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        capstan_serve::files::write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
        report.created.push(cert_path);
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub(super) fn ensure_serving(
        &self,
        layout: &Layout,
        cn: &str,
        sans: &[String],
        report: &mut InitReport,
    ) -> Result<IssuedPair, Error> {
        let (cert, key) = (layout.serving_cert(), layout.serving_key());
        self.ensure(&cert, &key, report, || {
            let mut p = CertificateParams::new(sans.to_vec())?;
            p.distinguished_name = dn(cn, None);
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            Ok(p)
        })
    }

    pub(super) fn ensure_client(
        &self,
        layout: &Layout,
        stem: &str,
        user: &str,
        group: &str,
        report: &mut InitReport,
    ) -> Result<IssuedPair, Error> {
        let (cert, key) = (layout.client_cert(stem), layout.client_key(stem));
        self.ensure(&cert, &key, report, || {
            let mut p = CertificateParams::default();
            p.distinguished_name = dn(user, Some(group));
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            Ok(p)
        })
    }

    /// Issues a leaf unless both of its files exist (then they are read).
    fn ensure(
        &self,
        cert_path: &Path,
        key_path: &Path,
        report: &mut InitReport,
        params: impl FnOnce() -> Result<CertificateParams, rcgen::Error>,
    ) -> Result<IssuedPair, Error> {
        if cert_path.exists() && key_path.exists() {
            report.kept.push(cert_path.to_path_buf());
            return Ok(IssuedPair {
                cert_pem: read(cert_path)?,
                key_pem: read(key_path)?,
            });
        }
        let issue = |source| Error::Issue {
            name: cert_path.display().to_string(),
            source,
        };
        let mut p = params().map_err(issue)?;
        p.use_authority_key_identifier_extension = true;
        validity(&mut p, LEAF_VALIDITY);
        let key = KeyPair::generate().map_err(issue)?;
        let cert = p.signed_by(&key, &self.issuer).map_err(issue)?;
        // A stray half (one file without the other) is replaced as a pair.
        let _ = std::fs::remove_file(cert_path);
        let _ = std::fs::remove_file(key_path);
        capstan_serve::files::write_new(key_path, key.serialize_pem().as_bytes(), 0o600)?;
        capstan_serve::files::write_new(cert_path, cert.pem().as_bytes(), 0o644)?;
        report.created.push(cert_path.to_path_buf());
        Ok(IssuedPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// One O at most: rcgen's name holds one value per attribute type, and
/// every identity init issues has a single group.
fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(p: &mut CertificateParams, len: Duration) {
    // Back-dated a little so a client whose clock lags still accepts it.
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + len;
    let mut serial: [u8; 16] = rand::random();
    // Positive, as RFC 5280 wants serials to be.
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial[..]));
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })
}
