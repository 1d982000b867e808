//! The crate's modules use each other one way only: no import cycle, and `store` uses nothing
//! above it.
//!
//! Every file of `src/` is parsed; each reference a module makes to a path of the crate (a
//! `use`, or a path in code such as `crate::telemetry::created()`) is an edge from that module
//! to the module that defines the item. A module's use of its own ancestors (`super::Inner`) is
//! no edge: a submodule is a part of its parent, which it sees from inside; two modules of
//! which neither holds the other must not use each other, even through a third. A re-export (`pub use`, `pub(crate) use`) is followed to
//! where the item is defined, and is no edge of its own: it shows an item, it does not use it.
//! Test modules are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module's path in the crate, as segments after `crate`.
type ModPath = Vec<String>;

/// What one module says: the paths it uses, and the names it re-exports.
#[derive(Default)]
struct Module {
    uses: Vec<ModPath>,
    reexports: BTreeMap<String, ModPath>,
}

fn module_path(src: &Path, file: &Path) -> ModPath {
    let relative = file.strip_prefix(src).unwrap();
    let mut segments: ModPath = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = segments.pop().unwrap();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        name => segments.push(name.trim_end_matches(".rs").to_owned()),
    }
    segments
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

/// `path` (written in module `at`) as a path from the crate root, if it is one of the crate's.
fn absolute(at: &ModPath, children: &BTreeSet<String>, path: &[String]) -> Option<ModPath> {
    let (first, rest) = path.split_first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" => Vec::new(),
        "self" => at.clone(),
        "super" => at[..at.len().checked_sub(1)?].to_vec(),
        name if children.contains(name) => {
            let mut base = at.clone();
            base.push(name.to_owned());
            base
        }
        _ => return None,
    };
    let mut rest = rest;
    while let Some((next, tail)) = rest.split_first() {
        if next != "super" {
            break;
        }
        base.pop()?;
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The paths a use tree names, each with whether it is a glob.
fn flatten(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            flatten(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => {
            let ident = name.ident.to_string();
            let mut full = prefix.clone();
            if ident != "self" {
                full.push(ident.clone());
            }
            let alias = full.last().cloned().unwrap_or_default();
            out.push((full, alias));
        }
        syn::UseTree::Rename(rename) => {
            let mut full = prefix.clone();
            full.push(rename.ident.to_string());
            out.push((full, rename.rename.to_string()));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), String::new())),
        syn::UseTree::Group(group) => {
            for tree in &group.items {
                flatten(tree, prefix, out);
            }
        }
    }
}

/// Collects what one file's items use, leaving out what only tests compile.
struct Collector<'a> {
    at: &'a ModPath,
    children: &'a BTreeSet<String>,
    module: Module,
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(item) => &item.attrs,
            syn::Item::Fn(item) => &item.attrs,
            syn::Item::Impl(item) => &item.attrs,
            syn::Item::Use(item) => &item.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_test_only(attrs) {
            return;
        }
        if let syn::Item::Use(item) = item {
            let mut named = Vec::new();
            flatten(&item.tree, &mut Vec::new(), &mut named);
            let shown = !matches!(item.vis, syn::Visibility::Inherited);
            for (path, alias) in named {
                let Some(path) = absolute(self.at, self.children, &path) else {
                    continue;
                };
                if shown && !alias.is_empty() {
                    self.module.reexports.insert(alias, path);
                } else {
                    self.module.uses.push(path);
                }
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_impl_item_fn(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        if let Some(first) = segments.first()
            && matches!(first.as_str(), "crate" | "super" | "self")
            && let Some(path) = absolute(self.at, self.children, &segments)
        {
            self.module.uses.push(path);
        }
        syn::visit::visit_path(self, path);
    }
}

/// The module that defines what `path` names: its longest prefix that is a module, followed
/// through re-exports.
fn defining_module(modules: &BTreeMap<ModPath, Module>, path: &ModPath, depth: usize) -> ModPath {
    let mut at = path.len();
    while at > 0 && !modules.contains_key(&path[..at]) {
        at -= 1;
    }
    let module = path[..at].to_vec();
    if depth < 16
        && let Some(name) = path.get(at)
        && let Some(target) = modules[&module].reexports.get(name)
    {
        let mut target = target.clone();
        target.extend(path[at + 1..].iter().cloned());
        return defining_module(modules, &target, depth + 1);
    }
    module
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut parsed = BTreeMap::new();
    for file in &files {
        let path = module_path(&src, file);
        if path.iter().any(|segment| segment == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let syntax = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        parsed.insert(path, syntax);
    }
    let mut modules = BTreeMap::new();
    for (path, syntax) in &parsed {
        let children: BTreeSet<String> = syntax
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Mod(module) if module.content.is_none() => {
                    Some(module.ident.to_string())
                }
                _ => None,
            })
            .collect();
        let mut collector = Collector {
            at: path,
            children: &children,
            module: Module::default(),
        };
        collector.visit_file(syntax);
        modules.insert(path.clone(), collector.module);
    }
    let name = |path: &ModPath| {
        if path.is_empty() {
            "crate".to_owned()
        } else {
            path.join("::")
        }
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, module) in &modules {
        let from = name(path);
        let targets = edges.entry(from.clone()).or_default();
        for used in &module.uses {
            let defining = defining_module(&modules, used, 0);
            if !path.starts_with(&defining) {
                targets.insert(name(&defining));
            }
        }
    }
    edges
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        let edges = state.edges;
        for to in edges.get(node).into_iter().flatten() {
            let to = to.as_str();
            if !state.index.contains_key(to) {
                visit(state, to);
                let low = state.low[node].min(state.low[to]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(to) {
                let low = state.low[node].min(state.index[to]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

#[test]
fn the_module_graph_has_no_cycle() {
    let edges = graph();
    assert!(
        edges.len() > 20,
        "the crate's modules were not found: {edges:?}"
    );
    let found = cycles(&edges);
    let inside: Vec<String> = found
        .iter()
        .flat_map(|component| {
            let edges = &edges;
            component.iter().flat_map(move |from| {
                edges[from]
                    .iter()
                    .filter(|to| component.contains(to))
                    .map(move |to| format!("{from} -> {to}"))
            })
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between the crate's modules: {found:#?}\nthe uses inside them: {inside:#?}"
    );
}

#[test]
fn store_uses_nothing_above_it() {
    let edges = graph();
    let above = [
        "hub",
        "resume",
        "layer",
        "session::ws_session",
        "session::live",
    ];
    for (from, targets) in &edges {
        if from == "store" || from.starts_with("store::") {
            for to in targets {
                assert!(
                    !above
                        .iter()
                        .any(|up| to == up || to.starts_with(&format!("{up}::"))),
                    "{from} uses {to}"
                );
            }
        }
    }
}

#[test]
fn the_check_finds_a_cycle_when_there_is_one() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    edges.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycles(&edges), [["a", "b", "c"]]);
}
