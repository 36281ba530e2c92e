//! A folder's shared ignore patterns: `.peerboxignore` at its root, in gitignore
//! syntax (matched by the `ignore` crate, the one ripgrep uses).
//!
//! The file is itself synced, so every member ignores the same things; it is peer
//! data, so it is read with a size cap and a bad line costs only that line. Paths
//! are matched top-down like git does: a file inside an ignored directory stays
//! ignored even if a later `!pattern` names it. Nothing can ignore the file
//! itself, nor un-ignore Peerbox's own `.peerbox`.

use std::io::Read;
use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

pub use peerbox_proto::path::IGNORE_FILE;
/// Bytes of it that are read; the rest is left out (with a warning).
pub const MAX_IGNORE_BYTES: u64 = 64 * 1024;

/// Compiled ignore patterns (possibly none).
#[derive(Debug, Clone, Default)]
pub struct Ignores {
    matcher: Option<Gitignore>,
    /// Lines that could not be used, with why (for the folder's status).
    pub problems: Vec<String>,
}

impl Ignores {
    /// Reads `.peerboxignore` under `root`; a missing file means nothing is ignored.
    pub fn load(root: &Path) -> Self {
        let path = root.join(IGNORE_FILE);
        let mut bytes = Vec::new();
        let read = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .and_then(|_| std::fs::File::open(&path).ok())
            .map(|f| f.take(MAX_IGNORE_BYTES).read_to_end(&mut bytes));
        let mut out = match read {
            // Cut at the cap, the last character may be split: lossy is right here.
            Some(Ok(_)) => Self::parse(&String::from_utf8_lossy(&bytes)),
            Some(Err(e)) => Self { matcher: None, problems: vec![format!("{IGNORE_FILE}: {e}")] },
            None => Self::default(),
        };
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_IGNORE_BYTES) {
            out.problems.push(format!("{IGNORE_FILE}: only its first {MAX_IGNORE_BYTES} bytes are used"));
        }
        out
    }

    /// Compiles patterns from the text of an ignore file.
    pub fn parse(text: &str) -> Self {
        let mut b = GitignoreBuilder::new("");
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Err(e) = b.add_line(None, line) {
                problems.push(format!("{IGNORE_FILE} line {}: {e}", i + 1));
            }
        }
        match b.build() {
            Ok(m) if m.is_empty() => Self { matcher: None, problems },
            Ok(m) => Self { matcher: Some(m), problems },
            Err(e) => {
                problems.push(format!("{IGNORE_FILE}: {e}"));
                Self { matcher: None, problems }
            }
        }
    }

    /// Whether `path` (a validated folder path; `dir` if it is a directory) is
    /// ignored, itself or through an ignored directory above it.
    pub fn is_ignored(&self, path: &str, dir: bool) -> bool {
        let Some(m) = &self.matcher else { return false };
        if path == IGNORE_FILE || path == ".peerbox" || path.starts_with(".peerbox/") {
            return false;
        }
        for (i, _) in path.match_indices('/') {
            if m.matched(&path[..i], true).is_ignore() {
                return true;
            }
        }
        m.matched(path, dir).is_ignore()
    }

    /// Whether there are patterns at all.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_patterns_as_git_reads_them() {
        let ig = Ignores::parse("# build output\n*.tmp\ncache/\n/top-only.txt\n!keep.tmp\n사진/원본/\n");
        assert!(ig.is_ignored("a.tmp", false));
        assert!(ig.is_ignored("deep/down/b.tmp", false));
        assert!(!ig.is_ignored("keep.tmp", false), "negation re-includes");
        assert!(ig.is_ignored("cache", true));
        assert!(!ig.is_ignored("cache", false), "cache/ names directories only");
        assert!(ig.is_ignored("cache/x/y.bin", false), "inside an ignored directory");
        assert!(ig.is_ignored("top-only.txt", false));
        assert!(!ig.is_ignored("sub/top-only.txt", false), "anchored to the root");
        assert!(ig.is_ignored("사진/원본/IMG_0001.HEIC", false));
        assert!(!ig.is_ignored("사진/IMG_0001.HEIC", false));
        assert!(!ig.is_ignored("notes.txt", false));
    }

    #[test]
    fn the_file_itself_and_peerbox_cannot_be_ignored_and_bad_lines_cost_only_themselves() {
        let ig = Ignores::parse("*\n");
        assert!(ig.is_ignored("anything", false));
        assert!(!ig.is_ignored(IGNORE_FILE, false));
        let ig = Ignores::parse("{unclosed\n*.log\n");
        assert!(ig.is_ignored("x.log", false), "the good line still works");
        assert_eq!(ig.problems.len(), 1, "{:?}", ig.problems);
        assert!(Ignores::parse("").is_empty() && Ignores::parse("# only a comment\n").is_empty());
        // A file inside an ignored directory stays ignored, as in git.
        let ig = Ignores::parse("build/\n!build/keep.txt\n");
        assert!(ig.is_ignored("build/keep.txt", false));
    }

    #[test]
    fn a_huge_or_missing_file_is_handled() {
        let d = tempfile::tempdir().unwrap();
        assert!(Ignores::load(d.path()).is_empty());
        let mut text = "*.bin\n".to_owned();
        text.push_str(&"x".repeat(MAX_IGNORE_BYTES as usize));
        text.push_str("\n*.late\n");
        std::fs::write(d.path().join(IGNORE_FILE), text).unwrap();
        let ig = Ignores::load(d.path());
        assert!(ig.is_ignored("a.bin", false));
        assert!(!ig.is_ignored("a.late", false), "past the cap");
        assert!(ig.problems.iter().any(|p| p.contains("first")), "{:?}", ig.problems);
    }
}
