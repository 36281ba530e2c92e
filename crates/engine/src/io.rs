//! Positional reads and writes on every platform, so several threads can work on
//! one file handle without sharing a cursor.

use std::fs::File;
use std::io;

#[cfg(unix)]
pub(crate) fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(unix)]
pub(crate) fn write_all_at(f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_exact_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
pub(crate) fn write_all_at(f: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `offset` (public for the block servers, which read
/// into buffers they reuse).
pub fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    read_exact_at(f, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_at_reads_exactly_the_range_and_reports_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let mut buf = vec![0u8; 131_072];
        read_at(&f, &mut buf, 131_072).unwrap();
        assert_eq!(buf, &data[131_072..262_144]);
        read_at(&f, &mut [], 5).unwrap();
        let past = read_at(&f, &mut buf, 262_144).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof, "the file ends before the range does");
    }
}
