//! The test data: one file of random bytes, written once per invocation in
//! streaming chunks, and the streamed SHA-256 used to check every copy of it.
//! Called by `main` (generation) and by each case (verification).

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
    let mut rng = Xoshiro256::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let chunk = &mut buf[..n];
        rng.fill(chunk);
        hasher.update(&*chunk);
        file.write_all(chunk).with_context(|| format!("cannot write {}", path.display()))?;
        left -= n as u64;
    }
    file.sync_all().with_context(|| format!("cannot fsync {}", path.display()))?;
    Ok(Source { path: path.to_owned(), size, sha256: hex::encode(hasher.finalize()) })
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
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
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
}
