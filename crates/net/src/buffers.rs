//! Block buffers, handed back once their bytes are written (a download) or
//! sent (a block server) and handed out again for the blocks that come next.
//!
//! A block is 1 MiB in a 1 GiB file (up to 16 MiB in larger ones), and a
//! transfer moves hundreds a second. Each fresh buffer came in as fresh pages:
//! a page fault per 4 KiB and the zeroing, about a tenth of the getter's CPU on
//! a 1 GiB link, and a quarter of the sharer's on a 10 GiB one. A session only
//! ever has a window of blocks in flight, so the same few buffers carry them all.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

/// Free bytes kept for reuse; the rest is freed. Above what a download keeps in
/// flight (`get.rs`'s budget), so that none is freed mid-transfer.
const MAX_FREE_BYTES: usize = 64 << 20;

/// A free list of block buffers, shared by the task that reads blocks off the
/// stream and the tasks that write them.
#[derive(Clone, Default, Debug)]
pub struct Buffers {
    free: Arc<Mutex<Free>>,
}

#[derive(Default, Debug)]
struct Free {
    buffers: Vec<BytesMut>,
    /// Their capacities, summed.
    bytes: usize,
}

impl Buffers {
    /// A buffer of exactly `len` bytes, to be overwritten: it holds an earlier
    /// block's bytes, or zeros.
    pub fn take(&self, len: usize) -> BytesMut {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            let b = free.buffers.pop();
            free.bytes -= b.as_ref().map_or(0, BytesMut::capacity);
            b
        };
        match reused {
            Some(mut b) if b.capacity() >= len => {
                // Only bytes past what the buffer held before are zeroed.
                if b.len() >= len {
                    b.truncate(len);
                } else {
                    b.resize(len, 0);
                }
                b
            }
            _ => BytesMut::zeroed(len),
        }
    }

    /// Keeps `data`'s buffer for a later [`Self::take`], unless something else
    /// still holds it or enough is kept already.
    pub fn give_back(&self, data: Bytes) {
        let Ok(b) = data.try_into_mut() else { return };
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.bytes + b.capacity() <= MAX_FREE_BYTES {
            free.bytes += b.capacity();
            free.buffers.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_handed_out_again_at_the_size_asked() {
        let buffers = Buffers::default();
        let mut b = buffers.take(1 << 20);
        assert_eq!(b.len(), 1 << 20);
        b[0] = 7;
        let at = b.as_ptr();
        buffers.give_back(b.freeze());

        let small = buffers.take(4096);
        assert_eq!((small.len(), small.as_ptr()), (4096, at), "the same memory, cut to the length asked");
        buffers.give_back(small.freeze());
        let big = buffers.take(1 << 20);
        assert_eq!((big.len(), big.as_ptr()), (1 << 20, at), "and grown back within its capacity");
        assert!(big[4096..].iter().all(|&x| x == 0), "bytes past the last length are zeroed");

        // A buffer something else still holds is not reused.
        let held = big.freeze();
        let other = held.clone();
        buffers.give_back(held);
        assert_ne!(buffers.take(1 << 20).as_ptr(), other.as_ptr());
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let buffers = Buffers::default();
        let many: Vec<BytesMut> = (0..2 * MAX_FREE_BYTES / (1 << 20)).map(|_| buffers.take(1 << 20)).collect();
        for b in many {
            buffers.give_back(b.freeze());
        }
        let free = buffers.free.lock().unwrap();
        let kept: usize = free.buffers.iter().map(BytesMut::capacity).sum();
        assert_eq!(kept, free.bytes);
        assert!(kept <= MAX_FREE_BYTES, "kept {kept}");
        assert!(kept >= MAX_FREE_BYTES / 2, "kept only {kept}");
    }
}
