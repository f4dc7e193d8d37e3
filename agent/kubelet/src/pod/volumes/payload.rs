//! The files a configMap, secret or downwardAPI source turns into, as
//! kubelet's `MakePayload`/`CollectData`: `items` pick keys (a missing key
//! is an error unless the source is optional), else every key; a per-item
//! mode wins over the volume's defaultMode. Pure over the objects given.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret};

use crate::pod::env::{self, PodFields};
use crate::pod::volumes::atomic_writer::{FileProjection, Payload};

/// kubelet's defaultMode when the API left it unset (0644).
pub const DEFAULT_MODE: i32 = 0o644;

fn mode(m: i32) -> u32 {
    (m as u32) & 0o7777
}

/// `data` by key, through `items` when given.
fn key_to_path(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing_key: impl Fn(&str) -> String,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(
                    k.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: mode(default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for i in items {
                let Some(v) = data.get(&i.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(&i.key));
                };
                out.insert(
                    i.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: mode(i.mode.unwrap_or(default_mode)),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// A ConfigMap's files: `data` and `binaryData`. `None` is a missing
/// optional ConfigMap (no files).
pub fn config_map(
    cm: Option<&ConfigMap>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if let Some(cm) = cm {
        for (k, v) in cm.data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            data.insert(k.clone(), v.0.clone());
        }
    }
    key_to_path(&data, items, default_mode, optional, |k| {
        format!("configmap references non-existent config key: {k}")
    })
}

/// A Secret's files, byte for byte (`data`, and `stringData` as static
/// manifests may carry it). `None` is a missing optional Secret.
pub fn secret(
    s: Option<&Secret>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if let Some(s) = s {
        for (k, v) in s.data.iter().flatten() {
            data.insert(k.clone(), v.0.clone());
        }
        for (k, v) in s.string_data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
    }
    key_to_path(&data, items, default_mode, optional, |k| {
        format!("references non-existent secret key: {k}")
    })
}

/// The downward API's files: fieldRef values (resourceFieldRef is
/// refused with a clear error rather than written empty).
pub fn downward_api(
    pod: &Pod,
    fields: &PodFields,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            env::field_value(pod, fields, &f.field_path).map_err(|e| e.0)?
        } else if item.resource_field_ref.is_some() {
            return Err(format!(
                "downwardAPI item {:?}: resourceFieldRef is not supported yet",
                item.path
            ));
        } else {
            return Err(format!(
                "downwardAPI item {:?} has neither fieldRef nor resourceFieldRef",
                item.path
            ));
        };
        out.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: mode(item.mode.unwrap_or(default_mode)),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectFieldSelector;
    use k8s_openapi::ByteString;

    fn ktp(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some([("a".to_string(), "A".to_string())].into()),
            binary_data: Some([("bin".to_string(), ByteString(vec![0, 159, 255]))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn every_key_with_the_default_mode_binary_intact() {
        let p = config_map(Some(&cm()), None, 0o640, false).unwrap();
        assert_eq!(p["a"].data, b"A");
        assert_eq!(p["bin"].data, vec![0, 159, 255]);
        assert!(p.values().all(|f| f.mode == 0o640));
        let s = Secret {
            data: Some([("k".to_string(), ByteString(vec![0xff, 0]))].into()),
            ..Default::default()
        };
        assert_eq!(
            secret(Some(&s), None, 0o400, false).unwrap()["k"].data,
            vec![0xff, 0]
        );
    }

    #[test]
    fn items_pick_keys_with_their_own_modes() {
        let items = [ktp("a", "sub/x", Some(0o600)), ktp("bin", "y", None)];
        let p = config_map(Some(&cm()), Some(&items), DEFAULT_MODE, false).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["sub/x", "y"]);
        assert_eq!((p["sub/x"].mode, p["y"].mode), (0o600, 0o644));
    }

    #[test]
    fn a_missing_key_fails_unless_optional() {
        let items = [ktp("nope", "x", None), ktp("a", "a", None)];
        assert_eq!(
            config_map(Some(&cm()), Some(&items), DEFAULT_MODE, false).err(),
            Some("configmap references non-existent config key: nope".into())
        );
        let p = config_map(Some(&cm()), Some(&items), DEFAULT_MODE, true).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            secret(None, Some(&items), DEFAULT_MODE, false).err(),
            Some("references non-existent secret key: nope".into())
        );
        assert!(secret(None, None, DEFAULT_MODE, true).unwrap().is_empty());
    }

    #[test]
    fn downward_api_fields_and_modes() {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("team".into());
        pod.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let item = |path: &str, field: &str, mode| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                ..Default::default()
            }),
            mode,
            ..Default::default()
        };
        let items = [
            item("namespace", "metadata.namespace", None),
            item("labels", "metadata.labels", Some(0o400)),
        ];
        let p = downward_api(&pod, &PodFields::default(), &items, DEFAULT_MODE).unwrap();
        assert_eq!(p["namespace"].data, b"team");
        assert_eq!(p["labels"].data, b"app=\"web\"");
        assert_eq!((p["namespace"].mode, p["labels"].mode), (0o644, 0o400));
        let bad = [item("x", "spec.nope", None)];
        assert!(downward_api(&pod, &PodFields::default(), &bad, DEFAULT_MODE).is_err());
    }
}
