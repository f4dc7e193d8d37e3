//! `GET pods/<name>/log`: proxied to the agent on the pod's node
//! (`/containerLogs/<ns>/<pod>/<container>` on the node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`, as kube-apiserver asks a
//! kubelet), streaming the answer through. It never reads logs itself.
//!
//! TLS to the agent: the API server presents its client certificate (see
//! `agent_client_tls`); the agent's serving certificate is usually
//! self-signed, so, like kube-apiserver without
//! `--kubelet-certificate-authority`, it is not verified.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpStream;

use super::resources;
use super::rest;
use super::status::ApiError;
use super::ApiServer;

/// Query parameters passed through to the agent.
const PASSED: &[&str] = &[
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
];

/// The client TLS configuration for calls to agents: `cert`/`key` (a
/// client certificate the agents' client CA signed) presented, the agent's
/// serving certificate accepted unverified (handshake signatures are still
/// checked).
pub fn agent_client_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("read {}: {e}", cert.display()))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("read {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UnverifiedAgent(provider)))
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate for agents: {e}"))?;
    Ok(Arc::new(config))
}

/// Accepts any agent serving certificate, checking only that the peer
/// holds its key (the handshake signatures).
#[derive(Debug)]
struct UnverifiedAgent(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for UnverifiedAgent {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Default port of a node's agent API when the node does not say.
pub const DEFAULT_AGENT_PORT: u16 = 10250;

/// The container whose log is asked for: the named one, or the only one.
pub fn pick_container(pod: &Value, asked: Option<&str>) -> Result<String, ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| pod["spec"][l].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    match asked {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let main: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            match main.as_slice() {
                [one] => Ok(one.to_string()),
                _ => Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    main.join(" ")
                ))),
            }
        }
    }
}

/// Where a node's agent listens: InternalIP (else the first address) and
/// the kubelet endpoint port.
pub fn agent_address(node: &Value) -> Option<(String, u16)> {
    let addrs = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let ip = addrs
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addrs.first())
        .and_then(|a| a["address"].as_str())?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_AGENT_PORT);
    Some((ip.to_string(), port))
}

pub async fn proxy(
    api: &ApiServer,
    ns: Option<&str>,
    pod_name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let pods = resources::find("", "v1", "pods").ok_or(ApiError::NoRoute)?;
    let nodes = resources::find("", "v1", "nodes").ok_or(ApiError::NoRoute)?;
    let pod = rest::get(api, pods, ns, pod_name).await?.value;
    let container = pick_container(&pod, query.get("container").map(String::as_str))?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(format!("pod {pod_name} does not have a host assigned"))
        })?;
    let node = rest::get(api, nodes, None, node_name).await?.value;
    let (ip, port) = agent_address(&node)
        .ok_or_else(|| ApiError::BadRequest(format!("node {node_name} has no address")))?;
    let mut path = format!(
        "/containerLogs/{}/{pod_name}/{container}",
        ns.unwrap_or_default()
    );
    let passed: Vec<String> = PASSED
        .iter()
        .filter_map(|k| query.get(*k).map(|v| format!("{k}={}", encode(v))))
        .collect();
    if !passed.is_empty() {
        path = format!("{path}?{}", passed.join("&"));
    }
    let host = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let unreachable =
        |e: String| ApiError::Unavailable(format!("agent on node {node_name} ({host}): {e}"));
    let tcp = TcpStream::connect(&host)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let req = Request::get(&path)
        .header(header::HOST, &host)
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let resp = match &api.config.agent_tls {
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from(ip.clone())
                .map_err(|e| unreachable(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
                .connect(name, tcp)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            send(hyper_util::rt::TokioIo::new(stream), req).await
        }
        None => send(hyper_util::rt::TokioIo::new(tcp), req).await,
    }
    .map_err(unreachable)?;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = axum::body::to_bytes(Body::new(resp.into_body()), 64 * 1024)
            .await
            .unwrap_or_default();
        return Err(ApiError::BadRequest(format!(
            "the agent on node {node_name} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::new(resp.into_body()),
    )
        .into_response())
}

async fn send<T>(
    io: T,
    req: Request<Body>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "agent log connection ended");
        }
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&one, None).unwrap(), "a");
        assert!(pick_container(&one, Some("b")).is_err());
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let e = pick_container(&two, None).unwrap_err().to_string();
        assert!(e.contains("choose one of: [a b]"), "{e}");
    }

    #[test]
    fn node_address() {
        let n = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                                  "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        assert_eq!(agent_address(&n), Some(("10.0.0.5".into(), 10251)));
        let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(
            agent_address(&bare),
            Some(("n1".into(), DEFAULT_AGENT_PORT))
        );
        assert_eq!(encode("2024-01-01T00:00:00Z"), "2024-01-01T00%3A00%3A00Z");
    }
}
