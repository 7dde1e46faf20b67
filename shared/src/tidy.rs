//! House rules checked by ordinary `cargo test`, as rust-analyzer's tidy tests do: this
//! crate's module graph flows one way.
//!
//! [`LAYERS`] lists the top-level modules bottom-up. A module may name (`crate::x`, also inside
//! `use crate::{…}` groups and macros' `$crate::x`) only modules on an earlier line — never a
//! later one, nor a sibling on its own line. Unit-test modules (`#[cfg(test)] mod …`) are
//! exempt: tests may use `testing`. A new module must be given a line here, which is the point:
//! deciding where it sits is deciding what it may depend on.

use std::{collections::BTreeMap, fs, path::Path};

/// Bottom-up; modules on one line must not use each other.
const LAYERS: &[&[&str]] = &[
    &["ssrf", "sealed", "probe"],
    &["config", "signal"],
    &["telemetry", "migrations", "tls"],
    &["db"],
    &["error"],
    &["repo", "validate"],
    &["views"],
    &["auth", "rate_limit"],
    &["state"],
    &["extract", "idempotency"],
    &["routes"],
    &["http"],
    &["lambda"],
    &["testing"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|line| line.contains(&module))
}

/// The source without comments and without its unit-test module.
fn production_code(source: &str) -> String {
    let end = source.find("#[cfg(test)]\nmod ").unwrap_or(source.len());
    source[..end]
        .lines()
        .map(|line| line.find("//").map_or(line, |i| &line[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every name that follows `crate::` in `code`: `crate::a::b` gives `a`, `crate::{a, b::c}`
/// gives `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = code[i + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // Names at depth 1 of the group: after `{` or after a `,` at that depth.
            let mut depth = 1;
            let mut expect_name = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => expect_name = true,
                    c if expect_name && depth == 1 && !c.is_whitespace() => {
                        names.push(ident(&group[j..]));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(rest));
        }
    }
    names
}

/// The crate root's `pub use module::Item;` re-exports, as item → module.
fn root_reexports(lib_rs: &str) -> BTreeMap<String, String> {
    lib_rs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub use ")?.strip_suffix(';'))
        .filter_map(|path| {
            let (module, item) = path.split_once("::")?;
            Some((item.to_owned(), module.to_owned()))
        })
        .collect()
}

/// The edges of `module`'s code that break the layering.
fn violations(module: &str, source: &str, reexports: &BTreeMap<String, String>) -> Vec<String> {
    let Some(own) = layer_of(module) else {
        return vec![format!("`{module}` has no line in tidy::LAYERS")];
    };
    let mut found = Vec::new();
    for name in crate_paths(&production_code(source)) {
        let target = reexports.get(&name).cloned().unwrap_or(name);
        if target == module {
            continue;
        }
        if let Some(layer) = layer_of(&target)
            && layer >= own
        {
            let how = if layer == own {
                "a sibling"
            } else {
                "a module above it"
            };
            found.push(format!("`{module}` uses `crate::{target}`, {how}"));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn module_graph_flows_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib_rs = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexports = root_reexports(&lib_rs);
    let mut problems = Vec::new();
    for declared in lib_rs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';'))
    {
        if layer_of(declared).is_none() {
            problems.push(format!("`{declared}` has no line in tidy::LAYERS"));
        }
    }
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under {src:?}",
        files.len()
    );
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .unwrap_or_default();
        if top == "lib" || top == "tidy" {
            continue;
        }
        let source = fs::read_to_string(&file).expect("read source");
        for v in violations(&top, &source, &reexports) {
            problems.push(format!("{}: {v}", relative.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "the module graph must flow one way (see shared/src/tidy.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_upward_sideways_and_grouped_imports() {
    let reexports = root_reexports("pub use state::AppState;\npub use aide;");
    let check = |module: &str, source: &str| violations(module, source, &reexports);
    assert!(check("repo", "use crate::db::{Db, DbError};").is_empty());
    assert_eq!(
        check("auth", "use crate::{config::X, state::AppState};"),
        ["`auth` uses `crate::state`, a module above it"]
    );
    assert_eq!(
        check(
            "rate_limit",
            "use crate::{\n    auth::{self, V},\n    db::Db,\n};"
        ),
        ["`rate_limit` uses `crate::auth`, a sibling"]
    );
    // Root re-exports count as their module; macros' `$crate::` counts too.
    assert_eq!(
        check("error", "fn f() -> $crate::AppState {}"),
        ["`error` uses `crate::state`, a module above it"]
    );
    // Comments and unit tests are not the module's dependencies.
    assert!(
        check(
            "db",
            "// see crate::http\n#[cfg(test)]\nmod tests { use crate::testing; }"
        )
        .is_empty()
    );
    assert_eq!(
        check("newcomer", ""),
        ["`newcomer` has no line in tidy::LAYERS"]
    );
}
