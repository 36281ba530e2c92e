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

/// Reads the `len` bytes at `offset` into a new buffer that is not zeroed first:
/// the block servers read every byte they send, and zeroing the buffer before
/// the read cost them as much as the read's own copy.
pub fn read_new(f: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    #[cfg(unix)]
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(f, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    #[cfg(not(unix))]
    {
        buf.resize(len, 0);
        read_exact_at(f, &mut buf, offset)?;
    }
    // The spare capacity may have been more than asked for.
    buf.truncate(len);
    Ok(buf)
}

/// Reads `buf.len()` bytes at `offset` (public for the node's block server).
pub fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    read_exact_at(f, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_new_reads_exactly_the_range_and_reports_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(read_new(&f, 131_072, 131_072).unwrap(), &data[131_072..262_144]);
        assert_eq!(read_new(&f, 0, 5).unwrap(), Vec::<u8>::new());
        let past = read_new(&f, 131_072, 262_144).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof, "the file ends before the range does");
    }
}
