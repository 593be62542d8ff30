//! Bounded little-endian reads over untrusted byte slices.
//!
//! Contract: every function returns `None` instead of panicking when the
//! requested range does not lie inside the slice (including on offset
//! overflow). Callers turn `None` into an error naming the structure they
//! were reading.

/// `len` bytes at `offset`, or `None` if they are not all inside `data`.
pub fn slice_at(data: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    data.get(offset..offset.checked_add(len)?)
}

/// A fixed-size array at `offset`.
pub fn array_at<const N: usize>(data: &[u8], offset: usize) -> Option<[u8; N]> {
    slice_at(data, offset, N)?.try_into().ok()
}

pub fn u16_at(data: &[u8], offset: usize) -> Option<u16> {
    array_at(data, offset).map(u16::from_le_bytes)
}

pub fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    array_at(data, offset).map(u32::from_le_bytes)
}

pub fn u64_at(data: &[u8], offset: usize) -> Option<u64> {
    array_at(data, offset).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_the_slice_succeed() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(u16_at(&data, 0), Some(0x0201));
        assert_eq!(u32_at(&data, 4), Some(0x0807_0605));
        assert_eq!(u64_at(&data, 0), Some(0x0807_0605_0403_0201));
    }

    #[test]
    fn reads_past_the_end_or_overflowing_return_none() {
        let data = [0u8; 4];
        assert_eq!(u32_at(&data, 1), None);
        assert_eq!(u64_at(&data, 0), None);
        assert_eq!(slice_at(&data, usize::MAX, 2), None);
    }
}
