//! Relative paths as they travel between peers.
//!
//! A [`RelPath`] is the only form in which a peer may name a file: `/`-separated,
//! relative, NFC-normalised, every segment a plain name. The validator refuses
//! anything non-canonical instead of cleaning it (`a/./b` is an error, not `a/b`), so
//! two peers can never disagree about which file a path means. Callers open files
//! relative to a root handle as well; this check is the first of two fences.

use std::fmt;

use unicode_normalization::{UnicodeNormalization, is_nfc};

/// Longest accepted path, in bytes. Longer than any real tree needs, short enough
/// that a hostile peer cannot make us build huge strings.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted segment, in bytes: the limit of ext4, APFS and NTFS (in UTF-16
/// units, which is at most this many bytes for the characters we allow).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Deepest accepted nesting. Deeper trees break tools on every OS.
pub const MAX_DEPTH: usize = 256;
/// Names Peerbox keeps for itself inside a folder: the marker directory and the
/// prefix of temp files. A peer may never name them.
pub const RESERVED_PREFIX: &str = ".peerbox";
/// The one name under [`RESERVED_PREFIX`] a folder may hold: its shared ignore
/// patterns, synced like any file.
pub const IGNORE_FILE: &str = ".peerboxignore";

/// Why a path was refused. The message is meant for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty path.
    #[error("empty path")]
    Empty,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// Deeper than [`MAX_DEPTH`].
    #[error("path is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A segment longer than [`MAX_SEGMENT_BYTES`].
    #[error("a name is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    /// Starts with `/`, or looks like a drive or UNC path.
    #[error("path is absolute")]
    Absolute,
    /// Contains `..`.
    #[error("path climbs out of its folder (`..`)")]
    Traversal,
    /// Contains `.`, an empty segment or a trailing `/`.
    #[error("path is not canonical (`.`, empty segment or trailing `/`)")]
    NotCanonical,
    /// Contains a backslash, NUL, or another control character.
    #[error("name contains a forbidden character {0:?}")]
    ForbiddenChar(char),
    /// Not in Unicode normalisation form C.
    #[error("name is not in Unicode NFC form")]
    NotNfc,
    /// Names the `.peerbox` marker or a temp file.
    #[error("name is reserved for Peerbox (`.peerbox…`)")]
    Reserved,
}

/// A validated, canonical, relative path. Construct with [`RelPath::new`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `s` as a path a peer may name. See the module docs.
    pub fn new(s: &str) -> Result<Self, PathError> {
        validate(s)?;
        Ok(Self(s.to_owned()))
    }

    /// Builds a path from local names, normalising them to NFC first. Used when we
    /// scan our own disk: the local filesystem may hand us NFD (macOS).
    pub fn from_local_segments<'a>(segments: impl IntoIterator<Item = &'a str>) -> Result<Self, PathError> {
        let joined = segments.into_iter().map(|s| s.nfc().collect::<String>()).collect::<Vec<_>>().join("/");
        Self::new(&joined)
    }

    /// Local name `name` inside `parent` (None: at the top), normalised to NFC: what
    /// [`RelPath::from_local_segments`] makes of `parent`'s segments and `name`,
    /// without going over `parent` again (already valid, so NFC). A scan builds one
    /// for every entry it lists.
    pub fn join_local(parent: Option<&RelPath>, name: &str) -> Result<Self, PathError> {
        let name: std::borrow::Cow<'_, str> =
            if is_nfc(name) { name.into() } else { name.nfc().collect::<String>().into() };
        let joined = match parent {
            None => name.into_owned(),
            Some(p) => {
                let mut s = String::with_capacity(p.0.len() + 1 + name.len());
                s.push_str(&p.0);
                s.push('/');
                s.push_str(&name);
                s
            }
        };
        validate(&joined)?;
        Ok(Self(joined))
    }

    /// The path as a `/`-separated string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Every proper ancestor, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(|(i, _)| &self.0[..i])
    }

    /// A key under which paths that one filesystem or another would treat as the
    /// same file compare equal (case-folded; NFC is already guaranteed).
    pub fn collision_key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for RelPath {
    /// Shows the path with control characters escaped, so a name can never drive a
    /// terminal. (Validated paths have none, but Display must be safe regardless.)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_debug())
    }
}

fn validate(s: &str) -> Result<(), PathError> {
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    if s.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if let Some(c) = s.chars().find(|c| is_forbidden(*c)) {
        return Err(PathError::ForbiddenChar(c));
    }
    if s.starts_with('/') || looks_like_drive(s) {
        return Err(PathError::Absolute);
    }
    let mut depth = 0;
    for segment in s.split('/') {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        match segment {
            ".." => return Err(PathError::Traversal),
            "" | "." => return Err(PathError::NotCanonical),
            _ => {}
        }
        if segment.len() > MAX_SEGMENT_BYTES {
            return Err(PathError::SegmentTooLong);
        }
        if segment.starts_with(RESERVED_PREFIX) && segment != IGNORE_FILE {
            return Err(PathError::Reserved);
        }
    }
    if !is_nfc(s) {
        return Err(PathError::NotNfc);
    }
    Ok(())
}

fn is_forbidden(c: char) -> bool {
    c == '\\' || c.is_control()
}

/// `C:` and friends: absolute (or drive-relative) on Windows, so never acceptable.
fn looks_like_drive(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Whether `name` is a name Windows cannot create (`CON`, `nul.txt`, trailing dot
/// or space, `:*?"<>|`). Valid on other systems; on Windows such a file is skipped
/// with an error while the rest proceeds.
pub fn is_windows_unsafe(name: &str) -> bool {
    const RESERVED: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1",
        "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if name.ends_with('.') || name.ends_with(' ') {
        return true;
    }
    if name.contains([':', '*', '?', '"', '<', '>', '|']) {
        return true;
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["a", "a/b/c.txt", "사진/여행 🏖.jpg", "..hidden", "a..b", ".bashrc", "x/.git/y"] {
            assert!(RelPath::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_escapes_and_non_canonical_forms() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("../x", PathError::Traversal),
            ("a/../../x", PathError::Traversal),
            ("/etc/x", PathError::Absolute),
            ("C:\\x", PathError::ForbiddenChar('\\')),
            ("C:x", PathError::Absolute),
            ("\\\\srv\\s", PathError::ForbiddenChar('\\')),
            ("sub/../x", PathError::Traversal),
            ("./x", PathError::NotCanonical),
            ("x/", PathError::NotCanonical),
            ("a//b", PathError::NotCanonical),
            ("a\0b", PathError::ForbiddenChar('\0')),
            ("a\u{1b}[31mb", PathError::ForbiddenChar('\u{1b}')),
            ("a\nb", PathError::ForbiddenChar('\n')),
            (".peerbox/trash/x", PathError::Reserved),
            (".peerboxignore2", PathError::Reserved),
            ("a/.peerbox-tmp-1234", PathError::Reserved),
            ("\u{1100}\u{1161}", PathError::NotNfc),
        ];
        for (input, want) in cases {
            assert_eq!(RelPath::new(input).as_ref().err(), Some(want), "{input:?}");
        }
    }

    #[test]
    fn bounds_length_depth_and_segments() {
        assert_eq!(RelPath::new(&"a".repeat(300)), Err(PathError::SegmentTooLong));
        assert!(RelPath::new(&"a".repeat(255)).is_ok());
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert_eq!(RelPath::new(&deep), Err(PathError::TooDeep));
        let long = vec!["abcdefgh"; 600].join("/");
        assert_eq!(RelPath::new(&long), Err(PathError::TooLong));
    }

    #[test]
    fn local_names_are_normalised_to_nfc() {
        // 한 in NFD (three jamo) becomes the single precomposed syllable.
        let p = RelPath::from_local_segments(["\u{1112}\u{1161}\u{11ab}.txt"]).unwrap();
        assert_eq!(p.as_str(), "\u{d55c}.txt");
    }

    #[test]
    fn collision_key_folds_case() {
        let a = RelPath::new("Readme.md").unwrap();
        let b = RelPath::new("README.md").unwrap();
        assert_eq!(a.collision_key(), b.collision_key());
    }

    #[test]
    fn ancestors_are_outermost_first() {
        let p = RelPath::new("a/b/c").unwrap();
        assert_eq!(p.ancestors().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(p.file_name(), "c");
    }

    #[test]
    fn windows_unsafe_names() {
        for bad in ["CON", "nul.txt", "com1", "a.", "b ", "x:y", "q?"] {
            assert!(is_windows_unsafe(bad), "{bad}");
        }
        for ok in ["console", "a.txt", "null"] {
            assert!(!is_windows_unsafe(ok), "{ok}");
        }
    }
}

#[cfg(test)]
mod properties {
    use std::path::{Component, Path};

    use proptest::prelude::*;

    use super::*;

    /// Text made mostly of what makes paths dangerous: dots, slashes, backslashes,
    /// control characters, drive colons, Hangul in both forms, case pairs.
    fn hostile() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            "B",
            "b",
            ".",
            "..",
            "/",
            "\\",
            "\0",
            "\u{1b}",
            "\n",
            ":",
            "C:",
            " ",
            "한",
            "\u{1112}\u{1161}\u{11ab}",
            ".peerbox",
            ".peerbox-tmp-",
            ".peerboxignore",
            "~",
            "é",
            "e\u{301}",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn an_accepted_path_stays_under_any_root(s in hostile()) {
            if let Ok(p) = RelPath::new(&s) {
                let under = Path::new("/srv/folder").join(p.as_str());
                prop_assert!(under.starts_with("/srv/folder"));
                for c in Path::new(p.as_str()).components() {
                    prop_assert!(matches!(c, Component::Normal(_)), "{s:?}: {c:?}");
                }
                for seg in p.segments() {
                    prop_assert!(!seg.is_empty() && seg != "." && seg != "..");
                    prop_assert!(!seg.chars().any(|c| c.is_control() || c == '\\'));
                    prop_assert!(!seg.starts_with(RESERVED_PREFIX) || seg == IGNORE_FILE);
                }
                prop_assert!(is_nfc(p.as_str()));
                prop_assert_eq!(RelPath::from_local_segments(p.segments()).ok(), Some(p.clone()));
            }
        }

        #[test]
        fn joining_a_local_name_is_normalising_all_segments(parent in hostile(), name in hostile()) {
            // Whatever the parent (valid or not) and the name (a segment or not,
            // NFC or not), both ways give the same path or both refuse it.
            let parent = RelPath::new(&parent).ok();
            let segments: Vec<&str> = parent.iter().flat_map(|p| p.segments()).chain([name.as_str()]).collect();
            prop_assert_eq!(
                RelPath::join_local(parent.as_ref(), &name).ok(),
                RelPath::from_local_segments(segments).ok()
            );
        }

        #[test]
        fn two_spellings_of_one_name_share_a_collision_key(s in "[a-zA-Z]{1,8}") {
            // Case and Unicode form are what make one file two names on another disk.
            let lower = RelPath::from_local_segments([s.to_lowercase().as_str()]).expect("valid");
            let upper = RelPath::from_local_segments([s.to_uppercase().as_str()]).expect("valid");
            prop_assert_eq!(lower.collision_key(), upper.collision_key());
            let nfd = RelPath::from_local_segments([format!("{s}\u{1112}\u{1161}\u{11ab}").as_str()]).expect("valid");
            let nfc = RelPath::new(&format!("{s}\u{d55c}")).expect("valid");
            prop_assert_eq!(nfd.collision_key(), nfc.collision_key());
        }
    }
}
