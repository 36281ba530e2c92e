//! The test data: one file of random bytes, written once per invocation in
//! streaming chunks, or a folder of many small random files ([`Tree`]), and
//! the streamed SHA-256 used to check every copy of them. Called by `main`
//! and `files` (generation) and by each case (verification).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Chunk size for generating, copying and hashing: 1 MiB.
pub(crate) const CHUNK: usize = 1 << 20;

/// A small, fast PRNG (xoshiro256**), seeded through splitmix64.
/// Several GB/s, so generating 1 GiB costs well under a second.
struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// The source file every case transfers.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its SHA-256, lowercase hex.
    pub(crate) sha256: String,
}

/// Writes `size` random bytes to `path` in 1 MiB chunks, hashing as it goes,
/// then fsyncs it so that its write-back does not land inside the first round.
/// Blocking: call from `spawn_blocking`.
pub(crate) fn generate(path: &Path, size: u64, seed: u64) -> Result<Source> {
    let mut file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut buf = vec![0u8; CHUNK];
    let digest =
        write_random(&mut file, size, seed, &mut buf).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot fsync {}", path.display()))?;
    Ok(Source { path: path.to_owned(), size, sha256: hex::encode(digest) })
}

/// Writes `size` pseudo-random bytes from `seed` to `w` through `buf` (its
/// length is the chunk size) and returns their SHA-256.
fn write_random(w: &mut impl Write, size: u64, seed: u64, buf: &mut [u8]) -> std::io::Result<[u8; 32]> {
    let mut rng = Xoshiro256::new(seed);
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = &mut buf[..n];
        rng.fill(chunk);
        hasher.update(&*chunk);
        w.write_all(chunk)?;
        left -= n as u64;
    }
    Ok(hasher.finalize().into())
}

/// A folder of `count` files of `file_size` random bytes each, all in one
/// folder (as a user's folder of photos or notes would hold them), with the
/// SHA-256 of each, to check every copy of it file by file.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    /// The folder.
    pub(crate) root: PathBuf,
    /// Bytes in each file.
    pub(crate) file_size: u64,
    /// Each file's SHA-256, in name order ([`Tree::name`]).
    digests: Vec<[u8; 32]>,
}

impl Tree {
    /// The name of file `i` (zero-padded, so name order is number order).
    pub(crate) fn name(i: usize) -> String {
        format!("f{i:06}.bin")
    }

    /// How many files it holds.
    pub(crate) fn count(&self) -> usize {
        self.digests.len()
    }

    /// Bytes in all its files.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.file_size * self.count() as u64
    }

    /// The folder's own name, which every tool keeps for the copy it makes.
    pub(crate) fn dir_name(&self) -> Result<&std::ffi::OsStr> {
        self.root.file_name().with_context(|| format!("{} has no folder name", self.root.display()))
    }
}

/// Writes the [`Tree`] of `count` files of `file_size` bytes into `root`
/// (created; it must not hold other files), file `i`'s bytes coming from
/// `seed` and `i`. It is not made durable here: the caller syncs the whole
/// file system once, as each case's timing must not include it.
/// Blocking: call from `spawn_blocking`.
pub(crate) fn generate_tree(root: &Path, count: usize, file_size: u64, seed: u64) -> Result<Tree> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let mut buf = vec![0u8; usize::try_from(file_size).unwrap_or(CHUNK).min(CHUNK)];
    let mut digests = Vec::with_capacity(count);
    for i in 0..count {
        let path = root.join(Tree::name(i));
        let mut file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let file_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let digest = write_random(&mut file, file_size, file_seed, &mut buf)
            .with_context(|| format!("cannot write {}", path.display()))?;
        digests.push(digest);
    }
    Ok(Tree { root: root.to_owned(), file_size, digests })
}

/// Checks that `copy` holds exactly `tree`'s files with exactly their bytes,
/// and nothing else; the error ([`WrongBytes`]) names the case and the first
/// file that differs. Blocking: call from `spawn_blocking`.
pub(crate) fn verify_tree(case: &str, tree: &Tree, copy: &Path) -> Result<()> {
    let wrong = |what: String| -> anyhow::Error { WrongBytes(format!("WRONG BYTES from {case}: {what}")).into() };
    let entries =
        std::fs::read_dir(copy).map_err(|e| wrong(format!("cannot list its copy {}: {e}", copy.display())))?;
    let mut found = 0usize;
    for entry in entries {
        let entry = entry.map_err(|e| wrong(format!("cannot list its copy {}: {e}", copy.display())))?;
        let name = entry.file_name();
        let known = name.to_str().and_then(parse_name).is_some_and(|i| i < tree.count());
        if !known {
            return Err(wrong(format!("{} holds {name:?}, which the source does not", copy.display())));
        }
        found += 1;
    }
    if found != tree.count() {
        return Err(wrong(format!("{} holds {found} files; expected {}", copy.display(), tree.count())));
    }
    let mut buf = vec![0u8; CHUNK];
    for (i, want) in tree.digests.iter().enumerate() {
        let path = copy.join(Tree::name(i));
        let (size, digest) = hash_with(&path, &mut buf).map_err(|e| wrong(format!("cannot read its copy: {e:#}")))?;
        if size != tree.file_size || &digest != want {
            return Err(wrong(format!(
                "{} has {size} bytes, SHA-256 {}; expected {} bytes, SHA-256 {}",
                path.display(),
                hex::encode(digest),
                tree.file_size,
                hex::encode(want)
            )));
        }
    }
    Ok(())
}

/// File `i`'s number from its name, when it is one of [`Tree::name`]'s.
fn parse_name(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('f')?.strip_suffix(".bin")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `len` pseudo-random bytes from `seed`: the same seed always gives the same
/// bytes, so a small file's expected content can be made again to check a copy.
pub(crate) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    Xoshiro256::new(seed).fill(&mut buf);
    buf
}

/// Streams a file through SHA-256; returns (size, lowercase hex digest).
/// Blocking: call from `spawn_blocking`.
pub(crate) fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut buf = vec![0u8; CHUNK];
    let (total, digest) = hash_with(path, &mut buf)?;
    Ok((total, hex::encode(digest)))
}

/// Streams a file through SHA-256 using `buf`; returns (size, digest).
fn hash_with(path: &Path, buf: &mut [u8]) -> Result<(u64, [u8; 32])> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = file.read(buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finalize().into()))
}

/// A copy whose bytes differ from the source: always fatal, whichever case made it.
#[derive(Debug)]
pub(crate) struct WrongBytes(pub(crate) String);

impl std::fmt::Display for WrongBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WrongBytes {}

/// Checks that `copy` holds exactly the bytes of `source`; the error
/// ([`WrongBytes`]) names the case, so a benchmark that moved wrong bytes fails loudly.
pub(crate) async fn verify(case: &str, source: &Source, copy: &Path) -> Result<()> {
    let path = copy.to_owned();
    let (size, digest) = match tokio::task::spawn_blocking(move || sha256_file(&path)).await? {
        Ok(r) => r,
        Err(e) => return Err(WrongBytes(format!("WRONG BYTES from {case}: cannot read its copy: {e:#}")).into()),
    };
    if size != source.size || digest != source.sha256 {
        return Err(WrongBytes(format!(
            "WRONG BYTES from {case}: {} has {size} bytes, SHA-256 {digest}; expected {} bytes, SHA-256 {}",
            copy.display(),
            source.size,
            source.sha256
        ))
        .into());
    }
    Ok(())
}

/// Parses a size such as `1GiB`, `256MiB`, `500MB`, `1.5G` or `1048576`.
/// Binary units (KiB, MiB, GiB, TiB) are powers of 1024; K, KB, M, MB, G, GB, T, TB are powers of 1000.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| format!("`{s}` is not a size (try 1GiB, 256MiB, 500MB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("unknown unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)")),
    };
    let bytes = (num * mult as f64).round();
    if !(1.0..1e15).contains(&bytes) {
        return Err(format!("`{s}` is out of range (1 byte to under 1 PB)"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5k"), Ok(1_500));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn generated_file_hashes_the_same_when_read_back() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // Not a multiple of 8 or of the chunk size: exercises both remainders.
        let size = CHUNK as u64 * 2 + 13;
        let src = generate(&dir.path().join("f"), size, 7)?;
        let (n, digest) = sha256_file(&src.path)?;
        assert_eq!((n, digest), (size, src.sha256.clone()));
        let other = generate(&dir.path().join("g"), size, 8)?;
        assert_ne!(other.sha256, src.sha256);
        Ok(())
    }

    fn is_wrong(r: Result<()>) -> bool {
        r.is_err_and(|e| e.downcast_ref::<WrongBytes>().is_some())
    }

    #[test]
    fn trees_verify_file_by_file() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let tree = generate_tree(&dir.path().join("src"), 25, 4096, 11)?;
        assert_eq!((tree.count(), tree.total_bytes()), (25, 25 * 4096));
        // A copy made the same way is the same tree; files differ from each other.
        let copy = generate_tree(&dir.path().join("copy"), 25, 4096, 11)?;
        verify_tree("test", &tree, &copy.root)?;
        assert_ne!(tree.digests[0], tree.digests[1]);

        std::fs::write(copy.root.join(Tree::name(7)), vec![0u8; 4096])?;
        assert!(is_wrong(verify_tree("test", &tree, &copy.root)));
        let copy = generate_tree(&dir.path().join("copy2"), 25, 4096, 11)?;
        std::fs::remove_file(copy.root.join(Tree::name(24)))?;
        assert!(is_wrong(verify_tree("test", &tree, &copy.root)));
        let copy = generate_tree(&dir.path().join("copy3"), 25, 4096, 11)?;
        std::fs::write(copy.root.join("extra.txt"), b"x")?;
        assert!(is_wrong(verify_tree("test", &tree, &copy.root)));
        assert!(is_wrong(verify_tree("test", &tree, &dir.path().join("missing"))));
        Ok(())
    }

    #[test]
    fn tree_names() {
        assert_eq!(Tree::name(42), "f000042.bin");
        assert_eq!(parse_name("f000042.bin"), Some(42));
        assert_eq!(parse_name("f1234567.bin"), Some(1_234_567));
        assert_eq!(parse_name("f42.bin"), None);
        assert_eq!(parse_name(".sendme-x"), None);
        assert_eq!(parse_name("f000042.bin.part"), None);
    }
}
