//! Talking to OCI registries (the distribution API, through `oci-client`):
//! manifests and blob streams for an image reference, with the credentials
//! of the pod's imagePullSecrets. Never stores anything: putting what it
//! fetches into containerd is `containerd::pull`'s job.

use std::collections::HashMap;

use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol, SizedStream};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

/// The error with its causes: reqwest's own text ("error sending
/// request") hides why (refused, TLS, DNS).
fn explain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Every manifest kind we can unpack, index kinds first.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Docker Hub answers under several names; credentials are keyed by one.
fn canonical_host(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    }
}

/// `https://host:port/v1/` (the form `docker login` writes) → `host:port`.
fn host_of_key(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    canonical_host(rest.split('/').next().unwrap_or(rest))
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// base64 of `user:password`.
    #[serde(default)]
    auth: Option<String>,
}

impl AuthEntry {
    fn user_password(&self) -> Option<(String, String)> {
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Some((u.clone(), p.clone()));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.as_deref()?.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }
}

/// Username and password per registry host, from imagePullSecrets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials(HashMap<String, (String, String)>);

impl Credentials {
    /// Adds the entries of one secret's data: `.dockerconfigjson`
    /// (kubernetes.io/dockerconfigjson, `{"auths": {...}}`) or the legacy
    /// `.dockercfg` (the same map without `auths`). Earlier secrets win, as
    /// kubelet tries them in the order the pod lists them.
    pub fn add_secret(&mut self, data: &HashMap<String, Vec<u8>>) -> Result<(), String> {
        let entries: HashMap<String, AuthEntry> = if let Some(b) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<DockerConfigJson>(b)
                .map_err(|e| format!(".dockerconfigjson: {e}"))?
                .auths
        } else if let Some(b) = data.get(".dockercfg") {
            serde_json::from_slice(b).map_err(|e| format!(".dockercfg: {e}"))?
        } else {
            return Err("neither .dockerconfigjson nor .dockercfg in the secret".into());
        };
        for (key, entry) in entries {
            if let Some(up) = entry.user_password() {
                self.0.entry(host_of_key(&key).to_string()).or_insert(up);
            }
        }
        Ok(())
    }

    pub fn for_registry(&self, registry: &str) -> RegistryAuth {
        match self.0.get(canonical_host(registry)) {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// A manifest or index as the registry served it: the exact bytes (their
/// digest is the content address), the digest, and the media type.
pub struct RawManifest {
    pub bytes: bytes::Bytes,
    pub digest: String,
    pub media_type: String,
}

#[derive(Deserialize)]
struct MediaTypeOnly {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// Where to pull from; `session` makes the client for one pull.
pub struct Registry {
    /// Registries (`host:port`) spoken to over plain HTTP.
    insecure: Vec<String>,
}

/// One pull's registry client. oci-client keeps the credentials (and
/// tokens) it first used per registry host, so a client must never serve
/// two pulls: the second pod would pull with the first pod's secret.
pub struct Session {
    client: Client,
}

impl Registry {
    pub fn new(insecure: Vec<String>) -> Self {
        // reqwest (under oci-client) needs the process's rustls provider
        // chosen before a client is built; ring, like every TLS client here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { insecure }
    }

    pub fn session(&self) -> Session {
        let protocol = if self.insecure.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(self.insecure.clone())
        };
        Session {
            client: Client::new(ClientConfig {
                protocol,
                connect_timeout: Some(std::time::Duration::from_secs(10)),
                read_timeout: Some(std::time::Duration::from_secs(60)),
                ..Default::default()
            }),
        }
    }
}

impl Session {
    pub async fn manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<RawManifest, String> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, auth, MANIFEST_TYPES)
            .await
            .map_err(|e| explain(&e))?;
        let head: MediaTypeOnly =
            serde_json::from_slice(&bytes).map_err(|e| format!("manifest {digest}: {e}"))?;
        // Docker schema 2 and OCI manifests name their type; an OCI index
        // may leave it out, and then only the `manifests` key tells.
        let media_type = head.media_type.unwrap_or_else(|| {
            if head.manifests.is_some() {
                MANIFEST_TYPES[0].to_string()
            } else {
                MANIFEST_TYPES[2].to_string()
            }
        });
        Ok(RawManifest {
            bytes,
            digest,
            media_type,
        })
    }

    pub async fn blob(
        &self,
        reference: &Reference,
        descriptor: &OciDescriptor,
    ) -> Result<SizedStream, String> {
        self.client
            .pull_blob_stream(reference, descriptor)
            .await
            .map_err(|e| explain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(key: &str, json: &str) -> HashMap<String, Vec<u8>> {
        HashMap::from([(key.to_string(), json.as_bytes().to_vec())])
    }

    #[test]
    fn docker_config_json_with_auth_or_user_password() {
        let mut c = Credentials::default();
        c.add_secret(&secret(
            ".dockerconfigjson",
            // "alice:s3cret:with:colons" base64
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcmV0OndpdGg6Y29sb25z"},
                "10.0.0.1:5000":{"username":"bob","password":"pw"}}}"#,
        ))
        .unwrap();
        assert_eq!(
            c.for_registry("index.docker.io"),
            RegistryAuth::Basic("alice".into(), "s3cret:with:colons".into())
        );
        assert_eq!(
            c.for_registry("10.0.0.1:5000"),
            RegistryAuth::Basic("bob".into(), "pw".into())
        );
        assert_eq!(c.for_registry("quay.io"), RegistryAuth::Anonymous);
    }

    #[test]
    fn legacy_dockercfg_and_first_secret_wins() {
        let mut c = Credentials::default();
        c.add_secret(&secret(
            ".dockercfg",
            r#"{"reg.example:443":{"username":"first","password":"1"}}"#,
        ))
        .unwrap();
        c.add_secret(&secret(
            ".dockerconfigjson",
            r#"{"auths":{"reg.example:443":{"username":"second","password":"2"}}}"#,
        ))
        .unwrap();
        assert_eq!(
            c.for_registry("reg.example:443"),
            RegistryAuth::Basic("first".into(), "1".into())
        );
    }

    #[test]
    fn bad_secrets_are_errors_not_panics() {
        let mut c = Credentials::default();
        assert!(c.add_secret(&secret(".dockerconfigjson", "{")).is_err());
        assert!(c.add_secret(&secret("token", "x")).is_err());
        // An entry without usable credentials is skipped, not fatal.
        c.add_secret(&secret(
            ".dockerconfigjson",
            r#"{"auths":{"h":{"auth":"not base64!"}}}"#,
        ))
        .unwrap();
        assert_eq!(c.for_registry("h"), RegistryAuth::Anonymous);
    }
}
