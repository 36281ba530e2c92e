//! The process's open-file limit: raised once at start, and the share of it that
//! folder pulls may hold as temp files at once.
//!
//! A pull keeps each file of its batch open from the temp file's creation until it
//! is in place, so a batch of thousands of small files needs thousands of
//! descriptors. Desktop sessions on Linux start with a soft limit of 1,024 (macOS:
//! 256); past it every later open fails, and a folder of a few thousand files would
//! retry forever. Like Go's runtime and Syncthing, Peerbox raises the soft limit to
//! the hard one at start, and sizes its batches by what it got.

/// Highest soft limit asked for. macOS refuses more than its per-process maximum
/// (`OPEN_MAX`), even when the hard limit says unlimited.
#[cfg(target_os = "macos")]
const WANTED: u64 = 10_240;
/// Highest soft limit asked for: a link download holds a temp file per file of
/// the link until it is done.
#[cfg(all(unix, not(target_os = "macos")))]
const WANTED: u64 = 1 << 20;

/// Descriptors kept out of the pulls' share: sockets, the index, the watcher,
/// the scanners' readers, link downloads and the UI.
const RESERVED: u64 = 192;

/// Fewest temp files a pull may hold, however low the limit: below this,
/// batches get too small to move files fast, and the reserve is mostly unused.
const MIN_PULL_FILES: u64 = 32;

/// Raises the soft open-file limit towards the hard one (up to [`WANTED`]) and
/// returns the soft limit now in force. Never lowers it; where the system refuses,
/// the old limit stays and batches shrink to fit it.
pub fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let now = getrlimit(Resource::Nofile);
        let soft = now.current.unwrap_or(u64::MAX);
        let want = now.maximum.map_or(WANTED, |hard| hard.min(WANTED));
        if want > soft && setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: now.maximum }).is_ok() {
            return want;
        }
        soft
    }
    #[cfg(not(unix))]
    {
        // Windows has no per-process descriptor limit of this kind.
        u64::MAX
    }
}

/// Temp files that folder pulls may hold at once, all folders together, under a
/// soft limit of `limit` open files: up to two whole batches.
pub(crate) fn pull_files(limit: u64) -> usize {
    let share = limit.saturating_sub(RESERVED) / 2;
    share.clamp(MIN_PULL_FILES, 2 * crate::folders::PULL_BATCH as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_get_a_share_of_the_limit_that_leaves_room_for_the_rest() {
        // A desktop session's default.
        assert_eq!(pull_files(1024), 416);
        // Raised: two whole batches.
        assert_eq!(pull_files(10_240), 2 * crate::folders::PULL_BATCH);
        assert_eq!(pull_files(u64::MAX), 2 * crate::folders::PULL_BATCH);
        // Very low limits still leave batches that can make progress.
        assert_eq!(pull_files(256), MIN_PULL_FILES as usize);
        assert_eq!(pull_files(0), MIN_PULL_FILES as usize);
    }

    #[cfg(unix)]
    #[test]
    fn raising_never_lowers_and_reports_what_is_in_force() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let got = raise_open_file_limit();
        let after = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(after.current.unwrap_or(u64::MAX), got);
        assert!(got >= before.current.unwrap_or(u64::MAX), "{got} < {before:?}");
        assert_eq!(after.maximum, before.maximum, "the hard limit is left alone");
    }
}
