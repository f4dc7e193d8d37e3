//! The files of a `projected` volume, as kubelet's projected plugin
//! collects them: every source (secret, configMap, downwardAPI,
//! serviceAccountToken) adds its files to one payload under the volume's
//! defaultMode; a missing optional object adds none; every failing source
//! is reported, not only the first. Pure over the objects and tokens given.

use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource};

use crate::pod::env::{Objects, PodFields};
use crate::pod::volumes::atomic_writer::{FileProjection, Payload};
use crate::pod::volumes::payload::{self, DEFAULT_MODE};

/// The API's default lifetime of a projected token (and TokenRequest's).
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// Where serviceAccountToken sources get their tokens: the pod's token
/// cache, which fetched them before the volume is written.
pub trait Tokens {
    /// The current token for `audience` ("" = the API server's default
    /// audiences) with lifetime `expiration_seconds`.
    fn token(&self, audience: &str, expiration_seconds: i64) -> Result<String, String>;
}

/// The (audience, expirationSeconds) of every serviceAccountToken source
/// of the pod's projected volumes: what the token cache must hold.
pub fn token_requests(pod: &Pod) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| {
            (
                t.audience.clone().unwrap_or_default(),
                t.expiration_seconds
                    .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every file the projected volume holds.
pub fn collect(
    pod: &Pod,
    src: &ProjectedVolumeSource,
    fields: &PodFields,
    objects: &dyn Objects,
    tokens: &dyn Tokens,
) -> Result<Payload, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let default_mode = src.default_mode.unwrap_or(DEFAULT_MODE);
    let mut out = Payload::new();
    let mut errors: Vec<String> = Vec::new();
    for source in src.sources.iter().flatten() {
        let part = if let Some(s) = &source.secret {
            let optional = s.optional == Some(true);
            match objects.secret(ns, &s.name) {
                None if !optional => Err(format!("secrets {:?} not found", s.name)),
                found => {
                    payload::secret(found.as_ref(), s.items.as_deref(), default_mode, optional)
                }
            }
        } else if let Some(c) = &source.config_map {
            let optional = c.optional == Some(true);
            match objects.config_map(ns, &c.name) {
                None if !optional => Err(format!("configmaps {:?} not found", c.name)),
                found => {
                    payload::config_map(found.as_ref(), c.items.as_deref(), default_mode, optional)
                }
            }
        } else if let Some(d) = &source.downward_api {
            payload::downward_api(
                pod,
                fields,
                d.items.as_deref().unwrap_or_default(),
                default_mode,
            )
        } else if let Some(t) = &source.service_account_token {
            let exp = t
                .expiration_seconds
                .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS);
            tokens
                .token(t.audience.as_deref().unwrap_or(""), exp)
                .map(|token| {
                    Payload::from([(
                        t.path.clone(),
                        FileProjection {
                            data: token.into_bytes(),
                            mode: (default_mode as u32) & 0o7777,
                        },
                    )])
                })
        } else if source.cluster_trust_bundle.is_some() {
            Err("clusterTrustBundle projections are not supported".into())
        } else {
            Err("a projection source names no kind".into())
        };
        match part {
            Ok(p) => out.extend(p),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 => Err(errors.remove(0)),
        // utilerrors.NewAggregate's form.
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
        ObjectFieldSelector, PodSpec, Secret, SecretProjection, ServiceAccountTokenProjection,
        Volume, VolumeProjection,
    };
    use k8s_openapi::ByteString;

    struct Fake;
    impl Objects for Fake {
        fn config_map(&self, ns: &str, name: &str) -> Option<ConfigMap> {
            (ns == "team" && name == "kube-root-ca.crt").then(|| ConfigMap {
                data: Some([("ca.crt".to_string(), "CA".to_string())].into()),
                ..Default::default()
            })
        }
        fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
            (ns == "team" && name == "creds").then(|| Secret {
                data: Some([("user".to_string(), ByteString(b"bob".to_vec()))].into()),
                ..Default::default()
            })
        }
    }

    struct FakeTokens;
    impl Tokens for FakeTokens {
        fn token(&self, audience: &str, exp: i64) -> Result<String, String> {
            match audience {
                "down" => Err("token request failed: boom".into()),
                _ => Ok(format!("jwt-{audience}-{exp}")),
            }
        }
    }

    fn pod() -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("team".into());
        pod
    }

    fn cm(name: &str, optional: Option<bool>) -> VolumeProjection {
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: name.into(),
                items: Some(vec![KeyToPath {
                    key: "ca.crt".into(),
                    path: "ca.crt".into(),
                    mode: None,
                }]),
                optional,
            }),
            ..Default::default()
        }
    }

    fn token(audience: Option<&str>, exp: Option<i64>) -> VolumeProjection {
        VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                audience: audience.map(Into::into),
                expiration_seconds: exp,
                path: "token".into(),
            }),
            ..Default::default()
        }
    }

    /// The shape of the `kube-api-access-*` volume, plus a secret.
    fn all_four() -> ProjectedVolumeSource {
        ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(vec![
                token(None, Some(3607)),
                cm("kube-root-ca.crt", None),
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.namespace".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: "creds".into(),
                        items: Some(vec![KeyToPath {
                            key: "user".into(),
                            path: "creds/user".into(),
                            mode: Some(0o400),
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ]),
        }
    }

    #[test]
    fn all_four_kinds_with_default_and_item_modes() {
        let p = collect(
            &pod(),
            &all_four(),
            &PodFields::default(),
            &Fake,
            &FakeTokens,
        )
        .unwrap();
        let got: Vec<(&str, &[u8], u32)> = p
            .iter()
            .map(|(k, f)| (k.as_str(), f.data.as_slice(), f.mode))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ca.crt", &b"CA"[..], 0o440),
                ("creds/user", &b"bob"[..], 0o400),
                ("namespace", &b"team"[..], 0o440),
                ("token", &b"jwt--3607"[..], 0o440),
            ]
        );
    }

    #[test]
    fn missing_objects_fail_unless_optional_and_every_failure_is_named() {
        let src = ProjectedVolumeSource {
            default_mode: None,
            sources: Some(vec![cm("gone", Some(true)), token(Some("api"), None)]),
        };
        let p = collect(&pod(), &src, &PodFields::default(), &Fake, &FakeTokens).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["token"]);
        assert_eq!(p["token"].data, b"jwt-api-3600");
        assert_eq!(p["token"].mode, 0o644);

        let src = ProjectedVolumeSource {
            default_mode: None,
            sources: Some(vec![cm("gone", None), token(Some("down"), None)]),
        };
        assert_eq!(
            collect(&pod(), &src, &PodFields::default(), &Fake, &FakeTokens).err(),
            Some(r#"[configmaps "gone" not found, token request failed: boom]"#.into())
        );
    }

    #[test]
    fn token_requests_are_deduplicated_with_defaults() {
        let mut p = pod();
        p.spec = Some(PodSpec {
            volumes: Some(vec![
                Volume {
                    name: "a".into(),
                    projected: Some(all_four()),
                    ..Default::default()
                },
                Volume {
                    name: "b".into(),
                    projected: Some(ProjectedVolumeSource {
                        default_mode: None,
                        sources: Some(vec![token(None, Some(3607)), token(Some("vault"), None)]),
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        assert_eq!(
            token_requests(&p),
            vec![(String::new(), 3607), ("vault".to_string(), 3600)]
        );
    }
}
