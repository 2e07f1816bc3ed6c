//! Every file in tests/bad_configs/ breaks one rule (or a few) of the
//! config checker. Its first lines say where and how:
//!
//! ```text
//! # expect: LINE:COL: substring of the message
//! ```
//!
//! and the checker must report an error at exactly that place, with that
//! text, naming the file.

use std::fs;
use std::path::{Path, PathBuf};

use switch::config;

fn bad_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The `# expect:` lines at the top of a file: (line, col, substring).
fn expectations(text: &str) -> Vec<(usize, usize, String)> {
    text.lines()
        .map_while(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().unwrap().trim().parse().unwrap();
            let col = parts.next().unwrap().trim().parse().unwrap();
            let msg = parts.next().unwrap().trim().to_string();
            (line, col, msg)
        })
        .collect()
}

#[test]
fn there_is_a_bad_config_for_each_rule() {
    let files = bad_configs();
    assert!(files.len() >= 15, "only {} bad configs", files.len());
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        assert!(
            !expectations(&text).is_empty(),
            "{} has no `# expect: LINE:COL: message` first line",
            f.display()
        );
    }
}

#[test]
fn each_bad_config_is_refused_at_the_place_it_names() {
    let mut failures = Vec::new();
    for f in bad_configs() {
        let text = fs::read_to_string(&f).unwrap();
        let name = f.display().to_string();
        let out = match config::load(&f) {
            Ok(_) => {
                failures.push(format!("{name}: accepted, but it is a bad config"));
                continue;
            }
            Err(e) => e.to_string(),
        };
        for (line, col, msg) in expectations(&text) {
            let place = format!("{name}:{line}:{col}: ");
            let found = out
                .lines()
                .any(|l| l.starts_with(&place) && l[place.len()..].contains(&msg));
            if !found {
                failures.push(format!(
                    "{name}: want an error `{place}...{msg}...`, got:\n{out}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_error_is_one_line() {
    for f in bad_configs() {
        let err = config::load(&f).unwrap_err();
        for e in err.errors() {
            assert!(!e.message.contains('\n'), "{}: {e:?}", f.display());
            assert!(e.line >= 1 && e.col >= 1, "{}: {e:?}", f.display());
        }
    }
}

#[test]
fn an_unreadable_file_is_an_error_that_names_it() {
    let err = config::load(Path::new("/nonexistent/podswitch.toml")).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("/nonexistent/podswitch.toml: "), "{text}");
    assert!(text.contains("cannot read"), "{text}");
}
