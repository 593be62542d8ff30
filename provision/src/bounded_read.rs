//! Read a whole file, refusing files larger than a limit (sysfs, configfs
//! and device files can be large or endless; a bound is never optional).

use std::io::Read;
use std::path::Path;

/// Read `path` completely; an error if it holds more than `limit` bytes.
pub fn read_bounded(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut contents = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(cap).read_to_end(&mut contents)?;
    if contents.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {limit} bytes"),
        ));
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::read_bounded;

    #[test]
    fn a_file_within_the_limit_is_read_and_a_longer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        assert!(read_bounded(&path, 4).is_err());
    }
}
