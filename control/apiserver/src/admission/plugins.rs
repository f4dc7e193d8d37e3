//! Which admission plugins run: kube-apiserver's
//! `--disable-admission-plugins` names. Plain data.

/// Which admission plugins run (kube-apiserver's
/// `--disable-admission-plugins` switches them off).
#[derive(Clone, Debug)]
pub struct Plugins {
    pub service_account: bool,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            service_account: true,
        }
    }
}

/// The plugin names `--disable-admission-plugins` accepts.
pub const KNOWN_PLUGINS: &[&str] = &["ServiceAccount"];

impl Plugins {
    /// All plugins but the named ones; an unknown name is an error.
    pub fn without(disabled: &[String]) -> Result<Plugins, String> {
        let mut p = Plugins::default();
        for name in disabled.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match name {
                "ServiceAccount" => p.service_account = false,
                other => {
                    return Err(format!(
                        "unknown admission plugin {other:?} (known: {})",
                        KNOWN_PLUGINS.join(", ")
                    ))
                }
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabling_by_name() {
        assert!(Plugins::without(&[]).unwrap().service_account);
        let off = Plugins::without(&["ServiceAccount".into(), " ".into()]).unwrap();
        assert!(!off.service_account);
        let err = Plugins::without(&["AlwaysPullImages".into()]).unwrap_err();
        assert!(
            err.contains("AlwaysPullImages") && err.contains("ServiceAccount"),
            "{err}"
        );
    }
}
