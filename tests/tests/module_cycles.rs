//! Fails on any import cycle between the files of a crate in the workspace.
//!
//! Cargo keeps crates apart; inside one crate Rust lets modules use each
//! other both ways, which is how a 26-file circle between the kubelet and its
//! server grew unnoticed. This test reads every crate's sources, builds the
//! graph "file A uses an item of file B" from `crate::`, `super::` and
//! `self::` paths (following `pub use` re-exports to the file that defines the
//! name), and reports every strongly connected component of more than one
//! file. A `mod.rs` that only declares and re-exports its children adds no
//! edges; one that holds items its children use must not use them back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[path = "module_cycles/scan.rs"]
mod scan;

use scan::{scan_file, Scanned};

/// One module backed by a file: its path in the crate and what it refers to.
struct Module {
    file: PathBuf,
    scanned: Scanned,
}

/// All file-backed modules of one crate, keyed by module path ("a::b").
struct Crate {
    name: String,
    modules: BTreeMap<Vec<String>, Module>,
}

#[test]
fn no_import_cycle_in_any_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let mut failures = Vec::new();
    let mut crates = 0;
    let mut files = 0;
    for krate in workspace_crates(&root) {
        crates += 1;
        files += krate.modules.len();
        for cycle in cycles(&krate) {
            let names: Vec<String> = cycle
                .iter()
                .map(|m| {
                    let f = &krate.modules[m].file;
                    f.strip_prefix(&root).unwrap_or(f).display().to_string()
                })
                .collect();
            failures.push(format!(
                "{}: {} files import each other in a circle:\n    {}",
                krate.name,
                names.len(),
                names.join("\n    ")
            ));
        }
    }
    println!("module_cycles: read {crates} crates ({files} files)");
    assert!(
        failures.is_empty(),
        "{}\n{} cycles; break each by moving what both sides need into a leaf module",
        failures.join("\n\n"),
        failures.len()
    );
}

/// Every crate root (lib.rs, main.rs, src/bin/*.rs) of every package below
/// `root`, skipping build output and fetched code.
fn workspace_crates(root: &Path) -> Vec<Crate> {
    let mut manifests = Vec::new();
    find_manifests(root, &mut manifests);
    manifests.sort();
    let mut out = Vec::new();
    for manifest in manifests {
        let dir = manifest.parent().expect("manifest dir");
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        let Some(package) = package_name(&text) else {
            continue;
        };
        let src = dir.join("src");
        let mut roots = Vec::new();
        for f in ["lib.rs", "main.rs"] {
            if src.join(f).is_file() {
                roots.push(src.join(f));
            }
        }
        if let Ok(entries) = std::fs::read_dir(src.join("bin")) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "rs") {
                    roots.push(p);
                }
            }
        }
        roots.sort();
        for r in roots {
            let label = format!(
                "{package} ({})",
                r.strip_prefix(dir).unwrap_or(&r).display()
            );
            out.push(load_crate(label, &r));
        }
    }
    out
}

fn find_manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name.starts_with('.') || name == "target" || name.starts_with("tgt") {
                continue;
            }
            find_manifests(&p, out);
        } else if name == "Cargo.toml" {
            out.push(p);
        }
    }
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_package = l == "[package]";
        } else if in_package && l.starts_with("name") {
            return l.split('"').nth(1).map(str::to_string);
        }
    }
    None
}

/// Walks `mod x;` declarations from the crate root to every file.
fn load_crate(name: String, root: &Path) -> Crate {
    let mut modules = BTreeMap::new();
    let mut todo = vec![(Vec::<String>::new(), root.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let scanned = scan_file(&text);
        // Children of `a.rs` live in `a/`; of `mod.rs`, `lib.rs`, `main.rs` beside it.
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let base = if path.is_empty() || stem == "mod" {
            file.parent().expect("dir").to_path_buf()
        } else {
            file.with_extension("")
        };
        for (inline, child, custom) in &scanned.file_mods {
            let mut dir = base.clone();
            for m in inline {
                dir.push(m);
            }
            let candidates = match custom {
                Some(p) => vec![file.parent().expect("dir").join(p)],
                None => vec![
                    dir.join(format!("{child}.rs")),
                    dir.join(child).join("mod.rs"),
                ],
            };
            if let Some(f) = candidates.into_iter().find(|c| c.is_file()) {
                let mut p = path.clone();
                p.extend(inline.iter().cloned());
                p.push(child.clone());
                todo.push((p, f));
            }
        }
        modules.insert(path, Module { file, scanned });
    }
    Crate { name, modules }
}

/// The file that defines what `path` (absolute, segments) names: the deepest
/// file-backed module on the path, then through its `pub use` re-exports.
fn resolve(krate: &Crate, path: &[String], depth: usize) -> Option<Vec<String>> {
    let mut best: Option<Vec<String>> = None;
    for n in (0..=path.len()).rev() {
        if krate.modules.contains_key(&path[..n]) {
            best = Some(path[..n].to_vec());
            break;
        }
    }
    let module = best?;
    let rest = &path[module.len()..];
    if depth < 8 {
        if let Some(name) = rest.first() {
            let m = &krate.modules[&module];
            if let Some(target) = m.scanned.reexports.get(name) {
                let abs = absolute(&module, target)?;
                let mut full = abs;
                full.extend(rest[1..].iter().cloned());
                if let Some(r) = resolve(krate, &full, depth + 1) {
                    return Some(r);
                }
            }
        }
    }
    Some(module)
}

/// `crate::`, `super::`, `self::` paths made absolute from `module`.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut it = path.iter().peekable();
    match it.peek().map(|s| s.as_str()) {
        Some("crate") => {
            it.next();
        }
        Some("self") => {
            it.next();
            out = module.to_vec();
        }
        Some("super") => {
            out = module.to_vec();
            while it.peek().map(|s| s.as_str()) == Some("super") {
                it.next();
                out.pop()?;
            }
        }
        _ => return None,
    }
    out.extend(it.cloned());
    Some(out)
}

fn edges(krate: &Crate) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (path, m) in &krate.modules {
        let set = g.entry(path.clone()).or_default();
        for (inline, r) in &m.scanned.refs {
            let mut here = path.clone();
            here.extend(inline.iter().cloned());
            let Some(abs) = absolute(&here, r) else {
                continue;
            };
            let Some(target) = resolve(krate, &abs, 0) else {
                continue;
            };
            if &target != path {
                set.insert(target);
            }
        }
    }
    g
}

/// Tarjan's strongly connected components of size > 1.
fn cycles(krate: &Crate) -> Vec<Vec<Vec<String>>> {
    let g = edges(krate);
    let nodes: Vec<&Vec<String>> = g.keys().collect();
    let index_of: BTreeMap<&Vec<String>, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            g[*n]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let mut t = Tarjan {
        adj: &adj,
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on_stack: vec![false; nodes.len()],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut c: Vec<Vec<String>> = c.into_iter().map(|i| nodes[i].clone()).collect();
            c.sort();
            c
        })
        .collect()
}

struct Tarjan<'a> {
    adj: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    out: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.adj[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            self.out.push(comp);
        }
    }
}
