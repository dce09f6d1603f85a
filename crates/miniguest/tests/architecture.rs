//! The layers of the library hold: a module uses only the layers beneath
//! its own (docs/architecture.md), so there are no upward imports and no
//! cycles between layers. Read from the sources, as `crate::LAYER` paths.

use std::path::Path;

/// From the bottom up; a layer may use the ones before it.
const LAYERS: &[&[&str]] = &[
    &["fs", "formats"],
    &["nix", "remote"],
    &["contract"],
    &["guest"],
    &["backend"],
    &["service"],
    &["cli", "commands", "completion", "template"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is in no layer of docs/architecture.md"))
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if ["lib", "main", "bin"].contains(&module) {
            continue;
        }
        let own = layer_of(module);
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let used: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if used.is_empty() || used == module {
                continue;
            }
            if layer_of(&used) > own {
                violations.push(format!("{} uses crate::{used}", rel.display()));
            }
        }
    }
    assert!(violations.is_empty(), "upward imports: {violations:#?}");
}
