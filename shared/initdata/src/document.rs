//! The init-data TOML document and its digest.

use super::{InitDataError, MAX_TOML_LEN};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use pp_minitoml as minitoml;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The only init-data `version` this parser knows.
pub const SUPPORTED_VERSION: &str = "0.1.0";

/// The digest algorithm named by init-data's `algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The init-data spelling: `sha256`, `sha384`, `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|algorithm| algorithm.as_str() == name)
    }
}

/// A parsed init-data document: its algorithm and its `[data]` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitData {
    algorithm: Algorithm,
    data: BTreeMap<String, String>,
}

impl InitData {
    /// Parses the TOML bytes (as returned by `decode_delivery`).
    pub fn parse(toml: &[u8]) -> Result<Self, InitDataError> {
        if toml.len() > MAX_TOML_LEN {
            return Err(InitDataError::InflatesTooLarge {
                limit: MAX_TOML_LEN,
            });
        }
        let text = core::str::from_utf8(toml).map_err(|_| InitDataError::NotUtf8)?;
        let toml = |message| InitDataError::Toml { message };
        let table = minitoml::parse(text).map_err(|error| toml(error.to_string()))?;
        let (mut version, mut algorithm, mut data) = (None, None, BTreeMap::new());
        for (key, value) in table.into_entries() {
            match key.as_str() {
                "version" => version = Some(value.into_string(&key).map_err(toml)?),
                "algorithm" => {
                    let name = value.into_string(&key).map_err(toml)?;
                    algorithm = Some(Algorithm::from_name(&name).ok_or_else(|| {
                        toml(format!(
                            "unknown algorithm `{name}`, expected sha256, sha384 or sha512"
                        ))
                    })?);
                }
                "data" => {
                    for (name, text) in value.into_table(&key).map_err(toml)?.into_entries() {
                        let text = text.into_string(&name).map_err(toml)?;
                        data.insert(name, text);
                    }
                }
                _ => {
                    let expected = "version, algorithm or data";
                    return Err(toml(minitoml::unknown_key(&key, expected)));
                }
            }
        }
        let missing = |key: &str| toml(format!("missing key `{key}`"));
        let version = version.ok_or_else(|| missing("version"))?;
        let algorithm = algorithm.ok_or_else(|| missing("algorithm"))?;
        if version != SUPPORTED_VERSION {
            return Err(InitDataError::UnsupportedVersion { found: version });
        }
        Ok(Self { algorithm, data })
    }

    /// The digest algorithm the document names.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The text of the `[data]` entry `name` (e.g. `forwarder.toml`).
    pub fn file(&self, name: &str) -> Option<&str> {
        self.data.get(name).map(String::as_str)
    }

    /// All `[data]` entries, sorted by name.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.data
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
    }
}

/// The init-data digest: `algorithm` over the exact TOML bytes.
pub fn digest(toml: &[u8], algorithm: Algorithm) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha256 => Sha256::digest(toml).to_vec(),
        Algorithm::Sha384 => Sha384::digest(toml).to_vec(),
        Algorithm::Sha512 => Sha512::digest(toml).to_vec(),
    }
}

/// `digest` zero-padded or truncated to `N` bytes, as the platforms bind it.
fn fit<const N: usize>(digest: &[u8]) -> [u8; N] {
    let mut field = [0u8; N];
    for (slot, byte) in field.iter_mut().zip(digest) {
        *slot = *byte;
    }
    field
}

/// The SEV-SNP HOST_DATA value (32 bytes) for an init-data digest.
pub fn host_data(digest: &[u8]) -> [u8; 32] {
    fit(digest)
}

/// The TDX MRCONFIGID value (48 bytes) for an init-data digest.
pub fn mrconfigid(digest: &[u8]) -> [u8; 48] {
    fit(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"version = "0.1.0"
algorithm = "sha384"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = 'http://127.0.0.1:8080'
'''
"forwarder.toml" = '''
inbounds = ["BOTH_PHASES:KBS:8080"]
'''
"#;

    #[test]
    fn the_repository_example_parses() {
        let example = include_bytes!("../../../init-data/example.toml");
        let init_data = InitData::parse(example).unwrap();
        assert_eq!(init_data.algorithm(), Algorithm::Sha384);
        assert!(init_data.file("forwarder.toml").is_some());
    }

    #[test]
    fn the_documented_shape_parses_with_its_files() {
        let init_data = InitData::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(init_data.algorithm(), Algorithm::Sha384);
        assert_eq!(
            init_data.file("forwarder.toml"),
            Some("inbounds = [\"BOTH_PHASES:KBS:8080\"]\n")
        );
        assert_eq!(
            init_data.files().map(|(name, _)| name).collect::<Vec<_>>(),
            ["aa.toml", "forwarder.toml"]
        );
    }

    #[test]
    fn unknown_keys_versions_and_algorithms_are_refused() {
        let extra = "version = \"0.1.0\"\nalgorithm = \"sha256\"\nextra = 1\n";
        assert!(matches!(
            InitData::parse(extra.as_bytes()),
            Err(InitDataError::Toml { .. })
        ));
        let version = "version = \"0.2.0\"\nalgorithm = \"sha256\"\n";
        assert_eq!(
            InitData::parse(version.as_bytes()),
            Err(InitDataError::UnsupportedVersion {
                found: "0.2.0".into()
            })
        );
        let algorithm = "version = \"0.1.0\"\nalgorithm = \"md5\"\n";
        let error = InitData::parse(algorithm.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("md5") && error.contains("sha384"), "{error}");
        let not_text = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nx = 1\n";
        assert!(matches!(
            InitData::parse(not_text.as_bytes()),
            Err(InitDataError::Toml { .. })
        ));
    }

    #[test]
    fn digests_match_sha2_over_the_exact_bytes() {
        // `printf abc | sha256sum` and friends.
        assert_eq!(
            digest(b"abc", Algorithm::Sha256)[..4],
            [0xba, 0x78, 0x16, 0xbf]
        );
        assert_eq!(digest(b"abc", Algorithm::Sha384).len(), 48);
        assert_eq!(
            digest(b"abc", Algorithm::Sha512)[..4],
            [0xdd, 0xaf, 0x35, 0xa1]
        );
        assert_ne!(
            digest(b"abc ", Algorithm::Sha256),
            digest(b"abc", Algorithm::Sha256)
        );
    }

    #[test]
    fn platform_fields_are_the_digest_zero_padded_or_truncated() {
        let sha256 = digest(b"x", Algorithm::Sha256);
        let sha384 = digest(b"x", Algorithm::Sha384);
        let sha512 = digest(b"x", Algorithm::Sha512);
        assert_eq!(host_data(&sha256)[..], sha256[..]);
        assert_eq!(host_data(&sha384)[..], sha384[..32]);
        assert_eq!(mrconfigid(&sha256)[..32], sha256[..]);
        assert_eq!(mrconfigid(&sha256)[32..], [0u8; 16]);
        assert_eq!(mrconfigid(&sha384)[..], sha384[..]);
        assert_eq!(mrconfigid(&sha512)[..], sha512[..48]);
    }
}
