//! The module arrows of DESIGN.md, checked on the source: every `crate::BOX`
//! reference in `src/` must follow an allowed arrow, and boxes must not import
//! each other in a cycle. A failure names the file and line.
//!
//! Since issue 13's re-cut no arrow is broken and no box cycle is left: any
//! new one fails, naming the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// DESIGN.md "Allowed arrows": what each box may use besides itself and `config`.
fn allowed(from: &str) -> Option<&'static [&'static str]> {
    Some(match from {
        // Entry points and wiring: anything.
        "runtime" | "entry" => return None,
        "tools" => &[
            "transcode",
            "package",
            "media",
            "telemetry",
            "stream",
            "store",
        ],
        "ingest" => &["stream", "media", "telemetry"],
        "stream" => &["transcode", "package", "store", "telemetry", "media"],
        "origin" | "admin" => &["store", "package", "stream", "telemetry"],
        "store" => &["package", "media", "telemetry"],
        "transcode" | "package" => &["media", "telemetry"],
        "telemetry" => &[],
        "media" => &[],
        "config" => &["media"],
        _ => &[],
    })
}

/// The box a source file belongs to.
fn box_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .unwrap_or_default();
    match first.as_str() {
        "lib" | "main" | "cli" => "entry".into(),
        "probe" | "hwtest" | "tools" => "tools".into(),
        _ => first,
    }
}

/// The box a `crate::NAME` path names.
fn box_of_name(name: &str) -> String {
    match name {
        "cli" => "entry".into(),
        "probe" | "hwtest" | "tools" => "tools".into(),
        other => other.into(),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

struct Edge {
    from: String,
    to: String,
    at: String,
}

fn edges() -> Vec<Edge> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let from = box_of(rel);
        let text = std::fs::read_to_string(&f).unwrap();
        // Everything from a `#[cfg(test)]` module on is test code.
        for (n, line) in text.lines().enumerate() {
            if line.trim_start() == "#[cfg(test)]" {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let targets: Vec<String> = if name.is_empty() && rest.starts_with('{') {
                    // `use crate::{a::X, b};`
                    let inner = rest[1..].split('}').next().unwrap_or("");
                    inner
                        .split(',')
                        .filter_map(|p| p.trim().split("::").next())
                        .filter(|s| !s.is_empty())
                        .map(box_of_name)
                        .collect()
                } else {
                    vec![box_of_name(&name)]
                };
                for to in targets {
                    if to != from && to != "config" && !to.is_empty() {
                        out.push(Edge {
                            from: from.clone(),
                            to,
                            at: format!("src/{}:{}", rel.display(), n + 1),
                        });
                    }
                }
            }
        }
    }
    out
}

#[test]
fn module_arrows_follow_design_md() {
    let edges = edges();
    assert!(
        edges.len() > 20,
        "found only {} cross-box references",
        edges.len()
    );
    let mut broken: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in &edges {
        if let Some(ok) = allowed(&e.from) {
            if !ok.contains(&e.to.as_str()) {
                broken
                    .entry((e.from.clone(), e.to.clone()))
                    .or_default()
                    .push(e.at.clone());
            }
        }
    }
    let broken: Vec<String> = broken
        .iter()
        .map(|((a, b), at)| format!("{a} -> {b} (DESIGN.md forbids it): {}", at.join(", ")))
        .collect();
    assert!(
        broken.is_empty(),
        "arrows DESIGN.md forbids:\n{}",
        broken.join("\n")
    );
    println!("{} cross-box references, none forbidden", edges.len());
}

/// Box-level cycles, reported with one reference per hop. Entry points and
/// `runtime` (which wire everything) are left out; cycles through only them are
/// fine.
#[test]
fn no_import_cycles_between_boxes() {
    let edges = edges();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for e in &edges {
        if matches!(e.from.as_str(), "entry" | "runtime") || matches!(e.to.as_str(), "entry") {
            continue;
        }
        graph
            .entry(e.from.clone())
            .or_default()
            .entry(e.to.clone())
            .or_insert_with(|| e.at.clone());
    }
    // Every elementary cycle's smallest box names the cycle, found by DFS.
    let mut cycles = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, path)) = stack.pop() {
            for next in graph
                .get(&node)
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if &next == start {
                    let mut hops = Vec::new();
                    for w in path.windows(2) {
                        hops.push(format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]));
                    }
                    hops.push(format!("{node} -> {start} ({})", graph[&node][start]));
                    if path.iter().all(|p| p >= start) {
                        cycles.insert(hops.join("; "));
                    }
                } else if !path.contains(&next) && next > *start {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next, p));
                }
            }
        }
    }
    println!("{} box cycles", cycles.len());
    assert!(
        cycles.is_empty(),
        "import cycles between boxes:\n{}",
        cycles.iter().cloned().collect::<Vec<_>>().join("\n")
    );
}
