//! The suite's fixture and helpers: the control plane plus token users
//! of its own (each with a kubeconfig), kubectl as the admin or as one of
//! them, `auth can-i`, and waiting for the RBAC policy to catch up with a
//! write (the authorizer reads a watch-fed index). No test logic here.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use capstan_lab::suite::{ControlSuite, Fixture};
use capstan_lab::Lab;
use libtest_mimic::Failed;

/// The token users the tests act as; each test uses its own.
pub const USERS: &[&str] = &[
    "rbac-grants",
    "rbac-binder",
    "rbac-roler",
    "rbac-imp",
    "rbac-nobody",
    "rbac-reviewer",
];

/// How long a write may take to reach the authorizer's index.
pub const POLICY_LAG: Duration = Duration::from_secs(10);

pub struct Rbac {
    pub s: ControlSuite,
}

impl Fixture for Rbac {
    fn on_failure(&self) {
        self.s.on_failure()
    }
}

fn random_token() -> Result<String, String> {
    let u = std::fs::read_to_string("/proc/sys/kernel/random/uuid").map_err(|e| e.to_string())?;
    Ok(u.trim().replace('-', ""))
}

pub fn setup(lab: Lab) -> Result<Rbac, String> {
    let quiet = [
        "--controllers=".to_string(),
        "--scheduler=false".to_string(),
    ];
    let s = ControlSuite::start(lab, &quiet)?.with_kubectl_flags(&["--request-timeout=30s"]);
    // Token users of the suite's own, in the group `rbac-e2e`; the server
    // reads the token file at start.
    let (pki, admin_kc) = {
        let cp = s.cp();
        (cp.pki_dir().to_path_buf(), cp.admin_kubeconfig())
    };
    let tokens_path = pki.join("tokens.csv");
    let mut tokens = std::fs::read_to_string(&tokens_path).map_err(|e| e.to_string())?;
    let admin = std::fs::read_to_string(&admin_kc).map_err(|e| e.to_string())?;
    for (i, user) in USERS.iter().enumerate() {
        let token = random_token()?;
        tokens.push_str(&format!("{token},{user},{},\"rbac-e2e\"\n", 5000 + i));
        let mut kc: serde_yaml::Value = serde_yaml::from_str(&admin).map_err(|e| e.to_string())?;
        let mut u = serde_yaml::Mapping::new();
        u.insert("token".into(), token.into());
        kc["users"][0]["user"] = serde_yaml::Value::Mapping(u);
        std::fs::write(
            kubeconfig_path(&s, user),
            serde_yaml::to_string(&kc).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }
    std::fs::write(&tokens_path, tokens).map_err(|e| e.to_string())?;
    s.cp()
        .restart()
        .map_err(|e| format!("restart with the suite's tokens: {e}"))?;
    Ok(Rbac { s })
}

fn kubeconfig_path(s: &ControlSuite, user: &str) -> PathBuf {
    s.lab().dir().join(format!("{user}.kubeconfig"))
}

impl Rbac {
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        kubeconfig_path(&self.s, user)
    }

    /// kubectl as `user` (None: the admin), whatever its outcome.
    pub fn run(
        &self,
        user: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, Failed> {
        let kc = match user {
            Some(u) => self.kubeconfig(u),
            None => self.s.admin_kubeconfig(),
        };
        Ok(self.s.kubectl_output(None, &kc, args, stdin)?)
    }

    /// Admin kubectl that must succeed: its stdout.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
        Ok(self.s.kubectl(args, stdin)?)
    }

    /// kubectl as `user` that must succeed: its stdout.
    pub fn ok(&self, user: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
        let out = self.run(Some(user), args, stdin)?;
        if !out.status.success() {
            return Err(format!("kubectl {args:?} as {user}: {}", text(&out.stderr)).into());
        }
        Ok(text(&out.stdout))
    }

    /// kubectl as `user` (None: admin) that must fail: its stderr.
    pub fn fails(
        &self,
        user: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, Failed> {
        let out = self.run(user, args, stdin)?;
        if out.status.success() {
            return Err(format!(
                "kubectl {args:?} as {user:?} succeeded: {}",
                text(&out.stdout)
            )
            .into());
        }
        Ok(text(&out.stderr))
    }

    /// `kubectl auth can-i ARGS` as `user` (None: admin): yes or no.
    pub fn can_i(&self, user: Option<&str>, args: &[&str]) -> Result<bool, Failed> {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = self.run(user, &all, None)?;
        let said = text(&out.stdout);
        match out.status.code() {
            Some(0) if said.trim() == "yes" => Ok(true),
            Some(1) if said.trim().starts_with("no") => Ok(false),
            _ => Err(format!("kubectl {all:?} as {user:?}: {said} {}", text(&out.stderr)).into()),
        }
    }

    /// Waits until `can-i` answers `want` (a grant or revocation reached
    /// the authorizer).
    pub fn wait_can_i(&self, user: Option<&str>, args: &[&str], want: bool) -> Result<(), Failed> {
        let mut last = None;
        let r = capstan_lab::wait::wait_until(
            &format!("can-i {args:?} as {user:?} to be {want}"),
            POLICY_LAG,
            || match self.can_i(user, args) {
                Ok(v) => v == want,
                Err(e) => {
                    last = Some(format!("{e:?}"));
                    false
                }
            },
        );
        r.map(|_| ())
            .map_err(|e| format!("{e} (last error: {last:?})").into())
    }

    /// A fresh namespace for one test.
    pub fn namespace(&self, name: &str) -> Result<(), Failed> {
        let out = self.run(None, &["create", "namespace", name], None)?;
        let err = text(&out.stderr);
        check(
            out.status.success() || err.contains("AlreadyExists"),
            || err.clone(),
        )
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what().into())
    }
}

pub fn json(s: &str) -> Result<serde_json::Value, Failed> {
    serde_json::from_str(s).map_err(|e| format!("not JSON ({e}): {s}").into())
}

/// A Role (or ClusterRole when `ns` is None) with `rules` (YAML list items).
pub fn role_yaml(name: &str, ns: Option<&str>, rules: &str) -> String {
    let (kind, meta_ns) = match ns {
        Some(ns) => ("Role", format!("\n  namespace: {ns}")),
        None => ("ClusterRole", String::new()),
    };
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}{meta_ns}\nrules:\n{rules}"
    )
}

/// A RoleBinding in `ns` (ClusterRoleBinding when None) of `role_kind/role`
/// to the user `user`.
pub fn binding_yaml(
    name: &str,
    ns: Option<&str>,
    role_kind: &str,
    role: &str,
    user: &str,
) -> String {
    let (kind, meta_ns) = match ns {
        Some(ns) => ("RoleBinding", format!("\n  namespace: {ns}")),
        None => ("ClusterRoleBinding", String::new()),
    };
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}{meta_ns}\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: {role_kind}\n  name: {role}\n\
         subjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: {user}\n"
    )
}
