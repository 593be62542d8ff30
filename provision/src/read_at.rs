//! Positioned reads over a device, a file or a byte slice, so the ISO9660
//! reader works the same on `/dev/sr0`, on an `.iso` file in a test and on
//! fuzzer input.
//!
//! Contract: `read_exact_at` either fills the whole buffer or fails; reading
//! past the end of a slice is an `UnexpectedEof` error, never a panic.

use std::io;

/// A source of bytes addressed by absolute offset.
pub trait ReadAt {
    /// Fill `buf` with the bytes starting at `offset`, or fail.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let source = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(buf.len())?))
            .and_then(|range| self.get(range))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(source);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ReadAt;

    #[test]
    fn a_slice_read_inside_bounds_returns_those_bytes() {
        let data = [1u8, 2, 3, 4, 5];
        let mut buf = [0u8; 2];
        data[..].read_exact_at(&mut buf, 3).unwrap();
        assert_eq!(buf, [4, 5]);
    }

    #[test]
    fn a_slice_read_past_the_end_is_an_error_not_a_panic() {
        let data = [1u8, 2, 3];
        let mut buf = [0u8; 2];
        assert!(data[..].read_exact_at(&mut buf, 2).is_err());
        assert!(data[..].read_exact_at(&mut buf, u64::MAX).is_err());
    }
}
