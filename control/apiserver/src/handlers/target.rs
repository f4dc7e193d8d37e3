//! What a resource URL names: `/api/v1/...` or `/apis/<g>/<v>/...` into
//! resource, namespace, name and subresource. Parsing only.

use crate::resources::{self, Resource, Sub};
use crate::status::ApiError;

#[derive(Debug)]
pub enum Target {
    /// `/api/v1`, `/apis/<g>/<v>`: the resource list.
    ResourceList {
        group: String,
        version: String,
    },
    /// `/apis/<g>`.
    Group(String),
    Resource(ResourceTarget),
}

#[derive(Debug, Clone)]
pub struct ResourceTarget {
    pub res: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Sub>,
    /// The legacy `/watch/` path prefix.
    pub watch_path: bool,
}

fn parse_sub(res: &Resource, s: &str) -> Result<Sub, ApiError> {
    res.subresources
        .iter()
        .copied()
        .find(|x| x.name() == s)
        .ok_or(ApiError::NoRoute)
}

/// `segs` are the path segments after `/api` (core) or `/apis`.
pub fn parse(core: bool, segs: &[&str]) -> Result<Target, ApiError> {
    let (group, version, rest) = if core {
        match segs {
            [v, rest @ ..] => ("", *v, rest),
            [] => return Err(ApiError::NoRoute),
        }
    } else {
        match segs {
            [g] => return Ok(Target::Group(g.to_string())),
            [g, v, rest @ ..] => (*g, *v, rest),
            [] => return Err(ApiError::NoRoute),
        }
    };
    let (watch_path, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    if rest.is_empty() && !watch_path {
        return Ok(Target::ResourceList {
            group: group.into(),
            version: version.into(),
        });
    }
    let find = |plural: &str| resources::find(group, version, plural).ok_or(ApiError::NoRoute);
    // namespaces/<ns>/<plural>/... for a namespaced plural; anything else
    // (including namespaces/<name>[/status]) is cluster-level.
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(res) = resources::find(group, version, plural).filter(|r| r.namespaced) {
            let (name, sub) = match tail {
                [] => (None, None),
                [n] => (Some(n.to_string()), None),
                [n, s] => (Some(n.to_string()), Some(parse_sub(res, s)?)),
                _ => return Err(ApiError::NoRoute),
            };
            return Ok(Target::Resource(ResourceTarget {
                res,
                namespace: Some(ns.to_string()),
                name,
                sub,
                watch_path,
            }));
        }
    }
    let (res, name, sub) = match rest {
        [plural] => (find(plural)?, None, None),
        [plural, n] => (find(plural)?, Some(n.to_string()), None),
        [plural, n, s] => {
            let r = find(plural)?;
            (r, Some(n.to_string()), Some(parse_sub(r, s)?))
        }
        _ => return Err(ApiError::NoRoute),
    };
    // A namespaced resource named without a namespace: only lists (across
    // all namespaces) make sense.
    if res.namespaced && name.is_some() {
        return Err(ApiError::NoRoute);
    }
    Ok(Target::Resource(ResourceTarget {
        res,
        namespace: None,
        name,
        sub,
        watch_path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(t: Target) -> ResourceTarget {
        match t {
            Target::Resource(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paths() {
        let t = res(parse(
            true,
            &["v1", "namespaces", "default", "pods", "p", "status"],
        )
        .unwrap());
        assert_eq!(
            (
                t.res.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub
            ),
            ("pods", Some("default"), Some("p"), Some(Sub::Status))
        );
        let t = res(parse(true, &["v1", "namespaces", "kube-system"]).unwrap());
        assert_eq!(
            (t.res.plural, t.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let t = res(parse(true, &["v1", "namespaces", "x", "status"]).unwrap());
        assert_eq!(t.sub, Some(Sub::Status));
        let t = res(parse(false, &["apps", "v1", "deployments"]).unwrap());
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = res(parse(true, &["v1", "watch", "namespaces", "d", "pods"]).unwrap());
        assert!(t.watch_path);
        assert!(matches!(parse(false, &["apps"]).unwrap(), Target::Group(_)));
        assert!(matches!(
            parse(true, &["v1"]).unwrap(),
            Target::ResourceList { .. }
        ));
        assert!(parse(true, &["v1", "bogus"]).is_err());
        assert!(parse(true, &["v1", "pods", "p"]).is_err());
        assert!(parse(true, &["v1", "namespaces", "d", "pods", "p", "scale"]).is_err());
    }
}
