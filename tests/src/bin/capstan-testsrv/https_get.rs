//! `capstan-testsrv get`: one HTTPS GET as an in-cluster client makes it —
//! the server verified against a CA file, a bearer token read from a file
//! (read at the call, so a rotated token is the one sent). Prints the
//! status code on the first line, then the body. HTTP/1.0 so the answer is
//! never chunked.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

#[derive(Args, Debug)]
pub struct GetArgs {
    /// `https://host:port/path`.
    url: String,
    /// PEM bundle the server's certificate must chain to.
    #[arg(long)]
    ca_file: PathBuf,
    /// File holding the bearer token (e.g. a projected service-account token).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

fn err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// (host, port, path) of an `https://` URL.
fn split_url(url: &str) -> std::io::Result<(String, u16, String)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| err(format!("{url:?}: only https:// URLs")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            p.parse::<u16>()
                .map_err(|_| err(format!("{url:?}: bad port {p:?}")))?,
        ),
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(err(format!("{url:?}: no host")));
    }
    Ok((host.to_string(), port, path.to_string()))
}

pub fn run(args: &GetArgs) -> std::io::Result<()> {
    let (host, port, path) = split_url(&args.url)?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&args.ca_file)
        .map_err(|e| err(format!("read {}: {e}", args.ca_file.display())))?;
    for c in certs {
        let c = c.map_err(|e| err(format!("read {}: {e}", args.ca_file.display())))?;
        roots
            .add(c)
            .map_err(|e| err(format!("CA {}: {e}", args.ca_file.display())))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(format!("TLS config: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.clone())
        .map_err(|e| err(format!("server name {host:?}: {e}")))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| err(format!("TLS: {e}")))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .map_err(|e| err(format!("connect {host}:{port}: {e}")))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut request =
        format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n");
    if let Some(f) = &args.token_file {
        let token =
            std::fs::read_to_string(f).map_err(|e| err(format!("read {}: {e}", f.display())))?;
        request.push_str(&format!("Authorization: Bearer {}\r\n", token.trim()));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        // A server that closes without close_notify has still answered.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(err(format!("read answer: {e}"))),
    }
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| err("answer without a header end".into()))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| err(format!("bad status line {head:?}")))?;
    println!("{code}");
    println!("{body}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("https://10.96.0.1:443/version").unwrap(),
            ("10.96.0.1".into(), 443, "/version".into())
        );
        assert_eq!(
            split_url("https://kubernetes.default.svc").unwrap(),
            ("kubernetes.default.svc".into(), 443, "/".into())
        );
        assert_eq!(
            split_url("https://[fd00::1]:6443/api").unwrap(),
            ("fd00::1".into(), 6443, "/api".into())
        );
        assert!(split_url("http://x/").is_err());
        assert!(split_url("https://x:notaport/").is_err());
    }
}
