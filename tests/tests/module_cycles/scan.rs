//! A small Rust lexer for the cycle test: what one source file declares
//! (`mod x;`, inline `mod x { }`), what paths it names (`use` trees and
//! `crate::`/`super::`/`self::`/child-module paths in code) and what it
//! re-exports. Comments, strings and chars are skipped; it never needs types.

use std::collections::BTreeMap;

#[derive(Default)]
pub struct Scanned {
    /// (inline modules around it, name, `#[path]` if any) of each `mod x;`.
    pub file_mods: Vec<(Vec<String>, String, Option<String>)>,
    /// (inline modules around it, path as written) of each reference.
    pub refs: Vec<(Vec<String>, Vec<String>)>,
    /// Top-level `pub use`: exported name → path as written.
    pub reexports: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
    PathSep,
}

pub fn scan_file(text: &str) -> Scanned {
    let toks = lex(text);
    let mut out = Scanned::default();
    // Every module named in the file (declared or inline): a bare path that
    // starts with one of them is a path into that child.
    let mut children: Vec<String> = Vec::new();
    for w in toks.windows(3) {
        if let [Tok::Ident(m), Tok::Ident(name), Tok::Punct(';' | '{')] = w {
            if m == "mod" {
                children.push(name.clone());
            }
        }
    }
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_path: Option<String> = None;
    let mut i = 0;
    while i < toks.len() {
        let names = || -> Vec<String> { inline.iter().map(|(n, _)| n.clone()).collect() };
        match &toks[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Punct('#') => {
                // #[path = "x.rs"]
                if let (
                    Some(Tok::Punct('[')),
                    Some(Tok::Ident(a)),
                    Some(Tok::Punct('=')),
                    Some(Tok::Str(p)),
                ) = (
                    toks.get(i + 1),
                    toks.get(i + 2),
                    toks.get(i + 3),
                    toks.get(i + 4),
                ) {
                    if a == "path" {
                        pending_path = Some(p.clone());
                    }
                }
            }
            Tok::Ident(k) if k == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    match toks.get(i + 2) {
                        Some(Tok::Punct(';')) => {
                            out.file_mods
                                .push((names(), name.clone(), pending_path.take()));
                            i += 3;
                            continue;
                        }
                        Some(Tok::Punct('{')) => {
                            inline.push((name.clone(), depth));
                            depth += 1;
                            i += 3;
                            continue;
                        }
                        _ => {}
                    }
                }
            }
            Tok::Ident(k) if k == "use" => {
                let public = i > 0 && is_pub_before(&toks, i);
                let end = toks[i..]
                    .iter()
                    .position(|t| *t == Tok::Punct(';'))
                    .map_or(toks.len(), |p| i + p);
                let mut paths = Vec::new();
                expand(&toks[i + 1..end], &[], &mut paths);
                for (path, alias) in paths {
                    let Some(path) = anchored(path, &children) else {
                        continue;
                    };
                    if public && inline.is_empty() {
                        if let Some(name) = alias.or_else(|| path.last().cloned()) {
                            if name != "*" && name != "self" {
                                out.reexports.insert(name, path.clone());
                            }
                        }
                    } else {
                        out.refs.push((names(), path));
                    }
                }
                i = end + 1;
                continue;
            }
            Tok::Ident(first) => {
                let after_dollar = i > 0 && toks[i - 1] == Tok::Punct('$');
                let after_sep = i > 0 && toks[i - 1] == Tok::PathSep;
                if !after_dollar && !after_sep && toks.get(i + 1) == Some(&Tok::PathSep) {
                    let mut path = vec![first.clone()];
                    let mut j = i + 1;
                    while toks.get(j) == Some(&Tok::PathSep) {
                        match toks.get(j + 1) {
                            Some(Tok::Ident(s)) => path.push(s.clone()),
                            _ => break,
                        }
                        j += 2;
                    }
                    if let Some(p) = anchored(path, &children) {
                        out.refs.push((names(), p));
                    }
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `pub use` / `pub(crate) use` / `pub(super) use`.
fn is_pub_before(toks: &[Tok], i: usize) -> bool {
    match toks.get(i - 1) {
        Some(Tok::Ident(p)) => p == "pub",
        Some(Tok::Punct(')')) => {
            let open = toks[..i].iter().rposition(|t| *t == Tok::Punct('('));
            open.is_some_and(|o| o > 0 && toks[o - 1] == Tok::Ident("pub".into()))
        }
        _ => false,
    }
}

/// A path made relative to the crate (crate/super/self, or a child module
/// named in this file, which is read as `self::child`); others are external.
fn anchored(path: Vec<String>, children: &[String]) -> Option<Vec<String>> {
    match path.first().map(String::as_str) {
        Some("crate" | "super" | "self") => Some(path),
        Some(c) if children.iter().any(|x| x == c) => {
            let mut p = vec!["self".to_string()];
            p.extend(path);
            Some(p)
        }
        _ => None,
    }
}

/// Expands a `use` tree into (path, alias) pairs.
fn expand(toks: &[Tok], prefix: &[String], out: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut i = 0;
    let mut path = prefix.to_vec();
    let mut alias = None;
    let flush = |path: &mut Vec<String>, alias: &mut Option<String>, out: &mut Vec<_>| {
        if path.len() > prefix.len() || alias.is_some() {
            // `a::{self}` names `a` itself.
            if path.last().map(String::as_str) == Some("self") && path.len() > 1 {
                path.pop();
            }
            out.push((path.clone(), alias.take()));
        }
        *path = prefix.to_vec();
    };
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(a) if a == "as" => {
                if let Some(Tok::Ident(n)) = toks.get(i + 1) {
                    alias = Some(n.clone());
                }
                i += 2;
                continue;
            }
            Tok::Ident(s) => path.push(s.clone()),
            Tok::Punct('*') => path.push("*".into()),
            Tok::PathSep => {}
            Tok::Punct('{') => {
                let close = matching(toks, i);
                expand(&toks[i + 1..close], &path, out);
                path = prefix.to_vec();
                i = close + 1;
                continue;
            }
            Tok::Punct(',') => flush(&mut path, &mut alias, out),
            _ => {}
        }
        i += 1;
    }
    flush(&mut path, &mut alias, out);
}

fn matching(toks: &[Tok], open: usize) -> usize {
    let mut d = 0;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('{') => d += 1,
            Tok::Punct('}') => {
                d -= 1;
                if d == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

fn lex(text: &str) -> Vec<Tok> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut d = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    d += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    d -= 1;
                    i += 2;
                    if d == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            let (s, n) = string(&c, i + 1);
            out.push(Tok::Str(s));
            i = n;
        } else if (ch == 'r' || ch == 'b')
            && (c.get(i + 1) == Some(&'#')
                || c.get(i + 1) == Some(&'"')
                || (ch == 'b' && c.get(i + 1) == Some(&'r')))
            && raw_or_byte_start(&c, i)
        {
            let (s, n) = raw_or_byte(&c, i);
            out.push(Tok::Str(s));
            i = n;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                if c[i] == '.' && !c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push(Tok::Punct(ch));
            }
            i += 1;
        }
    }
    out
}

fn string(c: &[char], mut i: usize) -> (String, usize) {
    let mut s = String::new();
    while i < c.len() && c[i] != '"' {
        if c[i] == '\\' {
            i += 1;
        }
        if i < c.len() {
            s.push(c[i]);
        }
        i += 1;
    }
    (s, i + 1)
}

fn raw_or_byte_start(c: &[char], i: usize) -> bool {
    // Not the tail of an identifier such as `bar"`.
    i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_')
}

/// r"..", r#".."#, b"..", br#".."#.
fn raw_or_byte(c: &[char], mut i: usize) -> (String, usize) {
    let mut raw = false;
    while i < c.len() && (c[i] == 'r' || c[i] == 'b') {
        raw |= c[i] == 'r';
        i += 1;
    }
    if !raw {
        return string(c, i + 1);
    }
    let mut hashes = 0;
    while i < c.len() && c[i] == '#' {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    let start = i;
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            let s = c[start..i].iter().collect();
            return (s, i + 1 + hashes);
        }
        i += 1;
    }
    (String::new(), c.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_use_trees_mods_and_reexports() {
        let s = scan_file(
            r#"
            mod a; pub mod b;
            pub use self::a::{Thing as Other, More};
            use crate::x::{y::{self, Z}, w};
            // use crate::commented::Out;
            fn f() { let s = "crate::in_string"; b::call(); super::up(); 'l: loop {} }
            mod inner { use super::*; }
            "#,
        );
        let mods: Vec<_> = s.file_mods.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(mods, ["a", "b"]);
        assert_eq!(s.reexports["Other"], ["self", "a", "Thing"]);
        assert_eq!(s.reexports["More"], ["self", "a", "More"]);
        let refs: Vec<String> = s
            .refs
            .iter()
            .map(|(i, p)| format!("{}|{}", i.join("/"), p.join("::")))
            .collect();
        assert_eq!(
            refs,
            [
                "|crate::x::y",
                "|crate::x::y::Z",
                "|crate::x::w",
                "|self::b::call",
                "|super::up",
                "inner|super::*"
            ]
        );
    }
}
