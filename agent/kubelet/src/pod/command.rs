//! The process a container runs: Kubernetes' rules for merging the pod's
//! command/args with the image's Entrypoint/Cmd, and `$(VAR)` expansion.
//! Pure; never looks at anything outside its arguments.

use std::collections::HashMap;

/// command set: command + args (image ignored); only args: entrypoint +
/// args; neither: entrypoint + cmd.
pub fn merge(
    command: Option<&[String]>,
    args: Option<&[String]>,
    entrypoint: &[String],
    cmd: &[String],
) -> Vec<String> {
    let command = command.filter(|c| !c.is_empty());
    let args = args.filter(|a| !a.is_empty());
    match (command, args) {
        (Some(c), a) => c.iter().chain(a.unwrap_or_default()).cloned().collect(),
        (None, Some(a)) => entrypoint.iter().chain(a).cloned().collect(),
        (None, None) => entrypoint.iter().chain(cmd).cloned().collect(),
    }
}

/// Expands `$(NAME)` from `vars`; `$$` escapes; unknown references stay as
/// written (Kubernetes semantics).
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn merge_rules() {
        let ep = v(&["/ep"]);
        let cmd = v(&["c1"]);
        assert_eq!(merge(None, None, &ep, &cmd), v(&["/ep", "c1"]));
        assert_eq!(merge(None, Some(&v(&["a"])), &ep, &cmd), v(&["/ep", "a"]));
        assert_eq!(merge(Some(&v(&["/x"])), None, &ep, &cmd), v(&["/x"]));
        assert_eq!(
            merge(Some(&v(&["/x"])), Some(&v(&["a"])), &ep, &cmd),
            v(&["/x", "a"])
        );
        assert_eq!(merge(Some(&[]), None, &ep, &cmd), v(&["/ep", "c1"]));
    }

    #[test]
    fn expansion() {
        let vars: HashMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("é$", &vars), "é$");
    }
}
