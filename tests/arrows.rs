//! The module arrows of docs/architecture.md, checked on the source. The doc's
//! box table (between its `arrows:begin` and `arrows:end` markers) says which
//! files make each box and which boxes it may use; every reference from one box
//! to another in `src/` must follow an allowed arrow, boxes must not import
//! each other in a cycle, and the files of one box must not import each other
//! in a circle. A failure names the file and line.
//!
//! References are read from the code with comments, string literals and
//! `#[cfg(test)]` items left out (a file brought in by `#[cfg(test)] mod
//! NAME;` is test code too: its references are left out, so a box's tests may
//! use what they need): `use` trees (nested groups included) and
//! `crate::`/`super::`/`self::` paths in expressions. A path to an item is
//! followed through the `use` that brings it into the module it is named in,
//! so `super::Body` from `origin/playback.rs` counts as a use of the file that
//! defines `Body`, not of `origin/mod.rs` which only re-exports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";
const BEGIN: &str = "<!-- arrows:begin -->";
const END: &str = "<!-- arrows:end -->";

/// File-level circles inside a box that are known and being fixed: listed, not
/// failed on. Each is (the circle, as `a.rs -> b.rs` from its smallest file,
/// files relative to src/; why it is left). Empty once every circle is gone; a
/// new circle always fails, and so does an entry whose circle is gone.
const KNOWN_CIRCLES: &[(&str, &str)] = &[];

/// The checkout to read: this one, or `LADDERD_ARROWS_ROOT` (to try the check
/// on another tree).
fn root() -> PathBuf {
    std::env::var_os("LADDERD_ARROWS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// One row of the doc's box table.
#[derive(Debug)]
struct BoxRow {
    /// Top-level entries of `src/` the box is made of: `name.rs` or `name/`.
    files: Vec<String>,
    /// Boxes it may use; `None` for `*` (anything).
    may_use: Option<BTreeSet<String>>,
    /// A box still to be built (its files need not exist yet).
    planned: bool,
    /// Arrows the planned work will need: for the reader, checked for names.
    planned_arrows: Vec<String>,
}

/// Reads the box table out of docs/architecture.md, or says what is wrong
/// with it.
fn table() -> BTreeMap<String, BoxRow> {
    let path = root().join(DOC);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{DOC} must hold the box table tests/arrows.rs reads: {e}"));
    parse_table(&text).unwrap_or_else(|e| panic!("{DOC}: the box table is malformed: {e}"))
}

fn parse_table(text: &str) -> Result<BTreeMap<String, BoxRow>, String> {
    let start = text
        .find(BEGIN)
        .ok_or(format!("no `{BEGIN}` marker before the table"))?;
    let body = &text[start + BEGIN.len()..];
    let end = body
        .find(END)
        .ok_or(format!("no `{END}` marker after the table"))?;
    let mut rows = body[..end].lines().map(str::trim).filter(|l| !l.is_empty());
    let header = rows.next().ok_or("the table is empty")?;
    let cells = |l: &str| -> Vec<String> {
        l.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let want = ["box", "files", "may use", "planned arrows"];
    if cells(header) != want {
        return Err(format!(
            "the header must be `| {} |`, found `{header}`",
            want.join(" | ")
        ));
    }
    match rows.next() {
        Some(l) if l.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) => {}
        other => return Err(format!("no `|---|` line under the header: {other:?}")),
    }
    let names = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|s| s.trim().trim_matches('`').to_string())
            .filter(|s| !s.is_empty() && s != "—")
            .collect()
    };
    let mut out = BTreeMap::new();
    for line in rows {
        let c = cells(line);
        if !line.starts_with('|') || c.len() != want.len() {
            return Err(format!("a row needs {} cells: `{line}`", want.len()));
        }
        let mut name = c[0].as_str();
        let planned = name.ends_with("(planned)");
        name = name.trim_end_matches("(planned)").trim().trim_matches('`');
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_') {
            return Err(format!(
                "a box is one lowercase word in backticks: `{line}`"
            ));
        }
        let files = names(&c[1]);
        if files.is_empty()
            || files
                .iter()
                .any(|f| !(f.ends_with(".rs") || f.ends_with('/')))
        {
            return Err(format!(
                "box `{name}`: files are `name.rs` or `name/` entries of src/: `{}`",
                c[1]
            ));
        }
        let may_use = if c[2] == "*" {
            None
        } else {
            Some(names(&c[2]).into_iter().collect())
        };
        let row = BoxRow {
            files,
            may_use,
            planned,
            planned_arrows: names(&c[3]),
        };
        if out.insert(name.to_string(), row).is_some() {
            return Err(format!("box `{name}` has two rows"));
        }
    }
    if out.len() < 5 {
        return Err(format!("only {} rows", out.len()));
    }
    for (name, row) in &out {
        let named = row.may_use.iter().flatten().chain(&row.planned_arrows);
        for to in named {
            if !out.contains_key(to.as_str()) {
                return Err(format!("box `{name}` names `{to}`, which has no row"));
            }
        }
    }
    Ok(out)
}

/// The box a source file belongs to, by the table's files column.
fn box_of(table: &BTreeMap<String, BoxRow>, rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let entry = if rel.components().count() > 1 {
        format!("{first}/")
    } else {
        first.to_string()
    };
    table
        .iter()
        .find(|(_, row)| row.files.contains(&entry))
        .map(|(name, _)| name.clone())
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

/// `text` with comments and the insides of string and char literals blanked
/// (newlines kept, so line numbers hold).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push('"');
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                out.push(blank(b[j]));
                j += 1;
            }
            out.push('"');
            i = j;
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}'), else a lifetime.
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                out.push_str("' '");
                i = j + 1;
            } else if b.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Blanks every `#[cfg(test)]` item (a test module, a test-only `use` or fn).
fn without_test_items(code: &str) -> String {
    let mut b: Vec<char> = code.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= b.len() {
        if b[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        // The item runs to its first `;` at depth 0 or the end of its first
        // brace block, whichever comes first.
        let mut j = i;
        let mut depth = 0i32;
        let mut square = 0i32;
        while j < b.len() {
            match b[j] {
                '[' => square += 1,
                ']' => square -= 1,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ';' if depth == 0 && square == 0 => break,
                _ => {}
            }
            j += 1;
        }
        let last = j.min(b.len() - 1);
        for ch in &mut b[i..=last] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        i = j + 1;
    }
    b.into_iter().collect()
}

/// The modules `code` declares as `#[cfg(test)] mod NAME;` (a file of tests).
fn test_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (pos, marker) in code.match_indices("#[cfg(test)]") {
        let rest = code[pos + marker.len()..].trim_start();
        let rest = rest.strip_prefix("pub(crate)").unwrap_or(rest).trim_start();
        let Some(rest) = rest.strip_prefix("mod ") else {
            continue;
        };
        let rest = rest.trim_start();
        let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if !name.is_empty() && rest[name.len()..].trim_start().starts_with(';') {
            out.insert(name);
        }
    }
    out
}

/// One source file's module path and what it says.
struct SourceFile {
    rel: PathBuf,
    /// `origin::routes` is `["origin", "routes"]`; `origin/mod.rs` is `["origin"]`.
    module: Vec<String>,
    /// Child modules declared with `mod NAME;`.
    children: BTreeSet<String>,
    /// Child modules declared with `#[cfg(test)] mod NAME;`: test code.
    test_children: BTreeSet<String>,
    /// Every `use` leaf: (line, the name it binds, the path it names).
    uses: Vec<(usize, String, Vec<String>)>,
    /// `crate::`/`super::`/`self::` paths outside `use`: (line, path).
    paths: Vec<(usize, Vec<String>)>,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a `use` tree (`a::{b, c::{self, D as E}}`) into leaves:
/// (bound name, path).
fn use_leaves(tree: &str) -> Vec<(String, Vec<String>)> {
    const AS: char = '\u{1}';
    fn walk(s: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
        let mut path = prefix;
        loop {
            let start = *i;
            while *i < s.len() && is_ident(s[*i]) {
                *i += 1;
            }
            let seg: String = s[start..*i].iter().collect();
            if s.get(*i) == Some(&'{') {
                *i += 1;
                loop {
                    walk(s, i, path.clone(), out);
                    match s.get(*i) {
                        Some(',') => {
                            *i += 1;
                            if s.get(*i) == Some(&'}') {
                                *i += 1;
                                return;
                            }
                        }
                        Some('}') => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                }
            }
            if s.get(*i) == Some(&'*') {
                *i += 1;
                out.push(("*".into(), path));
                return;
            }
            if seg.is_empty() {
                return;
            }
            if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
                *i += 2;
                path.push(seg);
                continue;
            }
            // The last segment: `self` names the prefix itself; `as` renames.
            let (bound, full) = if seg == "self" {
                (path.last().cloned().unwrap_or_default(), path)
            } else {
                let mut p = path;
                p.push(seg.clone());
                (seg, p)
            };
            let bound = if s.get(*i) == Some(&AS) {
                *i += 1;
                let start = *i;
                while *i < s.len() && is_ident(s[*i]) {
                    *i += 1;
                }
                s[start..*i].iter().collect()
            } else {
                bound
            };
            out.push((bound, full));
            return;
        }
    }
    // Whitespace only matters around `as`, which becomes one marker.
    let compact: Vec<char> = tree
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", &AS.to_string())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    walk(&compact, &mut i, Vec::new(), &mut out);
    out
}

fn read_source(src: &Path, f: &Path) -> SourceFile {
    let rel = f.strip_prefix(src).unwrap().to_path_buf();
    let mut module: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        module.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        module.pop();
    }
    let text = std::fs::read_to_string(f).unwrap();
    let code = code_only(&text);
    let test_children = test_modules(&code);
    let code = without_test_items(&code);
    let line_at = |pos: usize| code[..pos].matches('\n').count() + 1;
    let mut file = SourceFile {
        rel,
        module,
        children: BTreeSet::new(),
        test_children,
        uses: Vec::new(),
        paths: Vec::new(),
    };
    let bytes = code.as_bytes();
    let boundary = |pos: usize| pos == 0 || !is_ident(bytes[pos - 1] as char);
    // `use …;` statements, then blanked so the path scan does not see them.
    let mut scan = code.clone().into_bytes();
    let mut at = 0;
    while let Some(k) = code[at..].find("use ") {
        let pos = at + k;
        at = pos + 4;
        if !boundary(pos) {
            continue;
        }
        let Some(end) = code[pos..].find(';') else {
            break;
        };
        let tree = &code[pos + 4..pos + end];
        for (bound, path) in use_leaves(tree) {
            file.uses.push((line_at(pos), bound, path));
        }
        for b in &mut scan[pos..pos + end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        at = pos + end;
    }
    let scan = String::from_utf8(scan).unwrap();
    for (pos, _) in scan.match_indices("mod ") {
        if boundary(pos) {
            let rest = &scan[pos + 4..];
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() && rest[name.len()..].trim_start().starts_with(';') {
                file.children.insert(name);
            }
        }
    }
    for root in ["crate::", "super::", "self::"] {
        for (pos, _) in scan.match_indices(root) {
            if !boundary(pos) {
                continue;
            }
            let path: Vec<String> = scan[pos..]
                .split("::")
                .map(|s| s.chars().take_while(|c| is_ident(*c)).collect::<String>())
                .scan(true, |more, seg| {
                    // Segments run while each is followed by `::`.
                    if !*more || seg.is_empty() {
                        return None;
                    }
                    Some(seg)
                })
                .collect();
            // `super::super::x`: only the outermost `super` starts a path.
            if root != "crate::" && pos >= 7 && scan[..pos].ends_with("super::") {
                continue;
            }
            file.paths
                .push((line_at(pos), trim_path(&scan[pos..], path)));
        }
    }
    file
}

/// The segments of the path at the start of `at`: each is followed by `::`
/// except the last.
fn trim_path(at: &str, segs: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = at;
    for s in segs {
        out.push(s.clone());
        rest = &rest[s.len()..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

/// The module path a `use` or expression path names, made absolute, or `None`
/// for another crate.
fn absolute(file: &SourceFile, path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base = file.module.clone();
    let mut rest = path;
    match first.as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        name if file.children.contains(name) => {}
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

struct Crate {
    files: Vec<SourceFile>,
    /// Module path → index in `files`.
    modules: BTreeMap<Vec<String>, usize>,
}

impl Crate {
    fn read() -> Crate {
        let src = root().join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        paths.sort();
        // main.rs is the binary's own crate: it reaches the library as `ladderd::`.
        let files: Vec<SourceFile> = paths
            .iter()
            .filter(|p| !p.ends_with("main.rs"))
            .map(|p| read_source(&src, p))
            .collect();
        let modules = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        Crate { files, modules }
    }

    /// Whether file `i` is test code: it, or a module above it, is declared
    /// `#[cfg(test)] mod NAME;` by its parent.
    fn test_only(&self, i: usize) -> bool {
        let module = &self.files[i].module;
        (1..=module.len()).any(|n| {
            self.modules
                .get(&module[..n - 1])
                .is_some_and(|&p| self.files[p].test_children.contains(&module[n - 1]))
        })
    }

    /// The file that defines what the absolute `path` names: the deepest
    /// module file on it, followed through that file's `use` of the item.
    fn resolve(&self, path: &[String], hops: usize) -> Option<usize> {
        let mut depth = 0;
        for n in (0..=path.len()).rev() {
            if self.modules.contains_key(&path[..n]) {
                depth = n;
                break;
            }
        }
        let at = *self.modules.get(&path[..depth])?;
        let Some(item) = path.get(depth) else {
            return Some(at);
        };
        if hops < 8 {
            let file = &self.files[at];
            for (_, bound, via) in &file.uses {
                if bound == item {
                    if let Some(abs) = absolute(file, via) {
                        let mut abs = abs;
                        abs.extend(path[depth + 1..].iter().cloned());
                        if let Some(found) = self.resolve(&abs, hops + 1) {
                            return Some(found);
                        }
                    }
                }
            }
        }
        Some(at)
    }
}

/// One reference from a file to another file of the crate.
struct Edge {
    from: usize,
    to: usize,
    /// The box the path names (`crate::transcode::X` names `transcode` even
    /// when `X` is re-exported from elsewhere).
    named_box: Option<String>,
    at: String,
}

fn edges(krate: &Crate, table: &BTreeMap<String, BoxRow>) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, file) in krate.files.iter().enumerate() {
        if krate.test_only(i) {
            continue;
        }
        let refs = file
            .uses
            .iter()
            .map(|(line, _, path)| (*line, path))
            .chain(file.paths.iter().map(|(line, path)| (*line, path)));
        for (line, path) in refs {
            let Some(abs) = absolute(file, path) else {
                continue;
            };
            let Some(to) = krate.resolve(&abs, 0) else {
                continue;
            };
            let named_box = abs.first().and_then(|top| {
                let entry = if krate.modules.contains_key(&vec![top.clone()])
                    && krate.files[krate.modules[&vec![top.clone()]]]
                        .rel
                        .components()
                        .count()
                        > 1
                {
                    format!("{top}/")
                } else {
                    format!("{top}.rs")
                };
                table
                    .iter()
                    .find(|(_, r)| r.files.contains(&entry))
                    .map(|(n, _)| n.clone())
            });
            out.push(Edge {
                from: i,
                to,
                named_box,
                at: format!("src/{}:{line}", file.rel.display()),
            });
        }
    }
    out
}

#[test]
fn the_box_table_covers_src_and_names_real_files() {
    let table = table();
    let krate = Crate::read();
    let mut unboxed = Vec::new();
    for f in &krate.files {
        if box_of(&table, &f.rel).is_none() {
            unboxed.push(format!("src/{}", f.rel.display()));
        }
    }
    assert!(
        unboxed.is_empty(),
        "{DOC}'s box table puts these files in no box (add them to a row's files): {}",
        unboxed.join(", ")
    );
    let src = root().join("src");
    for (name, row) in &table {
        for f in &row.files {
            let exists = src.join(f.trim_end_matches('/')).exists();
            assert!(
                exists || row.planned,
                "{DOC}: box `{name}` lists src/{f}, which does not exist (mark the box (planned) or fix the row)"
            );
        }
    }
}

#[test]
fn module_arrows_follow_the_architecture_doc() {
    let table = table();
    let krate = Crate::read();
    let edges = edges(&krate, &table);
    let mut cross = 0;
    let mut broken: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in &edges {
        let (Some(from), Some(to)) = (
            box_of(&table, &krate.files[e.from].rel),
            e.named_box.clone(),
        ) else {
            continue;
        };
        if from == to {
            continue;
        }
        cross += 1;
        if let Some(ok) = &table[&from].may_use {
            if !ok.contains(&to) {
                broken.entry((from, to)).or_default().push(e.at.clone());
            }
        }
    }
    assert!(cross > 100, "found only {cross} cross-box references");
    let broken: Vec<String> = broken
        .iter()
        .map(|((a, b), at)| format!("{a} -> {b} ({DOC} does not allow it): {}", at.join(", ")))
        .collect();
    assert!(
        broken.is_empty(),
        "arrows {DOC} does not allow:\n{}",
        broken.join("\n")
    );
    println!("{cross} cross-box references, none forbidden");
}

/// Every elementary cycle of `graph`, each reported once (from its smallest
/// node): its nodes in order, and the hops with the reference behind each.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
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
                    found.insert(path.clone(), hops.join("; "));
                } else if !path.contains(&next) && next > *start {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next, p));
                }
            }
        }
    }
    found
}

/// Box-level cycles. The wiring (`*` boxes: entry points and `runtime`) is
/// left out; cycles through only them are fine.
#[test]
fn no_import_cycles_between_boxes() {
    let table = table();
    let krate = Crate::read();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for e in edges(&krate, &table) {
        let (Some(from), Some(to)) = (box_of(&table, &krate.files[e.from].rel), e.named_box) else {
            continue;
        };
        let wiring = |b: &str| table[b].may_use.is_none();
        if from == to || wiring(&from) || wiring(&to) {
            continue;
        }
        graph
            .entry(from)
            .or_default()
            .entry(to)
            .or_insert_with(|| e.at.clone());
    }
    let found = cycles(&graph);
    println!("{} box cycles", found.len());
    assert!(
        found.is_empty(),
        "import cycles between boxes:\n{}",
        found.values().cloned().collect::<Vec<_>>().join("\n")
    );
}

/// File-level circles inside one box: file A uses something of file B and B
/// of A, directly or around a longer loop (a re-exported item counts as a use
/// of the file that defines it). Every circle fails, one through a module's
/// root file (`mod.rs`: a parent whose code uses a child that uses the parent's
/// shared types) too: shared types go in a leaf file the root re-exports.
#[test]
fn no_import_circles_between_files_of_a_box() {
    let table = table();
    let krate = Crate::read();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut refs = 0;
    for e in edges(&krate, &table) {
        let (a, b) = (&krate.files[e.from].rel, &krate.files[e.to].rel);
        if e.from == e.to || box_of(&table, a) != box_of(&table, b) {
            continue;
        }
        refs += 1;
        graph
            .entry(a.display().to_string())
            .or_default()
            .entry(b.display().to_string())
            .or_insert_with(|| e.at.clone());
    }
    assert!(
        refs > 100,
        "found only {refs} references between files of a box"
    );
    let found = cycles(&graph);
    let mut failing = Vec::new();
    let mut known = BTreeSet::new();
    for (nodes, hops) in &found {
        let files = nodes.join(" -> ");
        if let Some((k, why)) = KNOWN_CIRCLES.iter().find(|(k, _)| files == *k) {
            known.insert(*k);
            println!("known circle ({why}): {hops}");
        } else {
            println!("circle: {hops}");
            failing.push(hops.clone());
        }
    }
    println!(
        "{refs} references between files of a box; {} circles ({} known)",
        found.len(),
        known.len()
    );
    assert!(
        failing.is_empty(),
        "import circles between files of one box (a type both sides use goes in a leaf \
         file; a module root only declares and re-exports):\n{}",
        failing.join("\n")
    );
    let gone: Vec<&str> = KNOWN_CIRCLES
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| !known.contains(k))
        .collect();
    assert!(
        gone.is_empty(),
        "KNOWN_CIRCLES entries whose circle is gone (delete them): {}",
        gone.join(", ")
    );
}

#[test]
fn a_malformed_box_table_is_refused_with_the_reason() {
    let good = format!(
        "{BEGIN}\n| box | files | may use | planned arrows |\n|---|---|---|---|\n\
         | `a` | `a/` | `b` | — |\n| `b` | `b.rs` | — | — |\n| `c` | `c/` | * | — |\n\
         | `d` | `d.rs` | `a` | — |\n| `e` (planned) | `e/` | `a` | `b` |\n{END}\n"
    );
    let t = parse_table(&good).unwrap();
    assert!(t["e"].planned && t["c"].may_use.is_none());
    assert_eq!(t["a"].may_use, Some(["b".to_string()].into()));
    for (bad, says) in [
        (good.replace(BEGIN, ""), "no `<!-- arrows:begin -->`"),
        (good.replace(END, ""), "no `<!-- arrows:end -->`"),
        (good.replace("may use", "uses"), "the header must be"),
        (
            good.replace("| `b` | — |", "| `b` |"),
            "a row needs 4 cells",
        ),
        (good.replace("`d.rs`", "`d`"), "files are"),
        (good.replace("| `a` | — |", "| `z` | — |"), "names `z`"),
        (good.replace("|---|---|---|---|\n", ""), "no `|---|` line"),
    ] {
        let e = parse_table(&bad).unwrap_err();
        assert!(e.contains(says), "{e} (wanted {says})");
    }
}

#[test]
fn use_trees_and_literals_are_read_as_rust_reads_them() {
    let leaves = use_leaves("crate::{a::{self, B as C}, d::*, e::f}");
    let got: Vec<String> = leaves
        .iter()
        .map(|(b, p)| format!("{b}={}", p.join("::")))
        .collect();
    assert_eq!(
        got,
        ["a=crate::a", "C=crate::a::B", "*=crate::d", "f=crate::e::f"]
    );
    let code = code_only("let s = \"crate::x // y\"; // crate::z\nlet c = '\"'; crate::w::v();");
    assert!(
        !code.contains("crate::x") && !code.contains("crate::z"),
        "{code}"
    );
    assert!(code.contains("crate::w::v"), "{code}");
    let t = without_test_items(
        "use crate::a;\n#[cfg(test)]\nmod tests {\n use crate::b;\n}\nuse crate::c;",
    );
    assert!(t.contains("crate::a") && !t.contains("crate::b") && t.contains("crate::c"));
    let tests = test_modules(&code_only(
        "mod a;\n#[cfg(test)]\nmod tests;\n#[cfg(test)] mod b { }\n#[cfg(test)] pub(crate) mod c ;",
    ));
    assert_eq!(tests, ["c".to_string(), "tests".to_string()].into());
}
