//! kubelet's check of a container's image reference before anything else
//! happens to the image (`applyDefaultImageTag`, which parses with
//! distribution's `ParseNormalizedNamed`): an unparseable reference makes
//! the container wait with `InvalidImageName` and is never pulled. The
//! messages are Go's, so `kubectl describe` reads as with kubelet.

use oci_client::Reference;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO: &str = "library";

/// kubelet's waiting message for `image` when it does not parse, e.g.
/// `Failed to apply default image tag "Bad_Image::x": couldn't parse image
/// reference "Bad_Image::x": invalid reference format: repository name
/// (library/Bad_Image) must be lowercase`.
pub fn invalid(image: &str) -> Option<String> {
    parse_normalized(image).err().map(|e| {
        format!("Failed to apply default image tag {image:?}: couldn't parse image reference {image:?}: {e}")
    })
}

/// distribution's `splitDockerDomain`: a first component that has no `.`
/// or `:`, is not `localhost` and is lowercase is part of the path on
/// Docker Hub.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((d, r)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => {
            (d.to_string(), r.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        rest = format!("{OFFICIAL_REPO}/{rest}");
    }
    (domain, rest)
}

/// distribution's `ParseNormalizedNamed`, errors only.
fn parse_normalized(s: &str) -> Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    let (domain, rest) = split_domain(s);
    let remote = rest.split_once(':').map_or(rest.as_str(), |(r, _)| r);
    if remote.to_lowercase() != remote {
        return Err(format!(
            "invalid reference format: repository name ({remote}) must be lowercase"
        ));
    }
    // The grammar itself (components, separators, tag, digest) is the
    // oci-spec port of distribution's `Parse`, with the same messages.
    Reference::try_from(format!("{domain}/{rest}"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references_pass() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "capstan.local/busybox:lab",
            "192.168.250.11:5000/lab/busybox:v1",
            "localhost/x",
            "registry.k8s.io/pause:3.9",
            "docker.io/library/nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Registry.Example/x",
        ] {
            assert_eq!(invalid(ok), None, "{ok}");
        }
    }

    #[test]
    fn kubelets_messages() {
        assert_eq!(
            invalid("Bad_Image::x").as_deref(),
            Some(
                "Failed to apply default image tag \"Bad_Image::x\": couldn't parse image \
                 reference \"Bad_Image::x\": invalid reference format: repository name \
                 (library/Bad_Image) must be lowercase"
            )
        );
        let e = invalid("bad_image::x").unwrap_or_default();
        assert!(
            e.ends_with("\"bad_image::x\": invalid reference format"),
            "{e}"
        );
        let e = invalid("busybox:").unwrap_or_default();
        assert!(e.ends_with(": invalid reference format"), "{e}");
        let e = invalid("x/y@sha256:abc").unwrap_or_default();
        assert!(e.ends_with(": invalid reference format"), "{e}");
        let short = format!("x/y@sha256:{}", "0".repeat(40));
        let e = invalid(&short).unwrap_or_default();
        assert!(e.ends_with(": invalid checksum digest length"), "{e}");
        let hex = "a".repeat(64);
        let e = invalid(&hex).unwrap_or_default();
        assert!(
            e.ends_with("cannot specify 64-byte hexadecimal strings"),
            "{e}"
        );
    }
}
