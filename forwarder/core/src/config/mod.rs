//! The forwarder's settings from init-data: `[data]."forwarder.toml"`, a
//! TOML file with kebab-case keys, all optional:
//!
//! ```toml
//! wn-public-key = "ssh-ed25519 AAAA... comment"   # attestation-phase WN key
//! inbounds = ["BOTH_PHASES:KBS:8080"]             # local listeners
//! outbounds = ["KUBERNETES_PHASE:KATAAGENT:unix:/run/kata-containers/agent.sock"]
//! wn-source-networks = ["10.0.0.0/8"]             # where the WN connects from
//! wn-source-networks-only = false                 # refuse every other source
//! udp-idle-secs = 60                              # UDP flow idle timeout, 1..=86400
//! ```
//!
//! `wn-source-networks` (default: none) makes connections from those
//! networks preferred before authentication: they have slots of their own
//! and are never penalised (see the forwarder's `preauth` module);
//! `wn-source-networks-only = true` refuses every other source at accept.
//! It needs a non-empty list.
//!
//! `inbounds` / `outbounds`, when present, replace the defaults (an empty
//! list means none). Without init-data, or without `forwarder.toml` in it,
//! the defaults apply: no WN key (attestation phase accepts `none` auth),
//! inbound `BOTH_PHASES:KBS:8080`, outbound
//! `KUBERNETES_PHASE:KATAAGENT:unix:/run/kata-containers/agent.sock`.
//!
//! Contract: [`ForwarderConfig::parse`] never panics; unknown keys, a bad
//! key or a bad tag are errors that name the file and the field.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use pp_initdata::InitData;
pub use pp_ipnet::{SourceNetwork, mask};
use pp_minitoml as minitoml;
use pp_ssh_key::{KeyError, PublicKey};
use pp_tag::{Direction, TagError, TunnelSet};

/// The name of the forwarder's file in init-data's `[data]`.
pub const FILE_NAME: &str = "forwarder.toml";
/// The inbound tunnel when none is configured: CDH's KBS traffic.
pub const DEFAULT_INBOUND: &str = "BOTH_PHASES:KBS:8080";
/// The outbound tunnel when none is configured: the kata-agent.
pub const DEFAULT_OUTBOUND: &str =
    "KUBERNETES_PHASE:KATAAGENT:unix:/run/kata-containers/agent.sock";

/// The forwarder's validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderConfig {
    /// The WN key the attestation phase requires; `None` means `none` auth.
    pub wn_public_key: Option<PublicKey>,
    /// Local listeners whose connections become streams to the WN.
    pub inbounds: TunnelSet,
    /// Targets the WN may open streams to.
    pub outbounds: TunnelSet,
    /// Networks the WN connects from (preferred before authentication).
    pub wn_source_networks: Vec<SourceNetwork>,
    /// Refuse every source outside `wn_source_networks`.
    pub wn_source_networks_only: bool,
    /// Seconds a datagram flow may carry nothing before it is reset.
    pub udp_idle_secs: u32,
}

/// Why `forwarder.toml` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not TOML, or keys of the wrong type or unknown.
    Toml {
        /// What the TOML parser said.
        message: String,
    },
    /// `wn-public-key` is not a usable Ed25519 public key.
    WnPublicKey(KeyError),
    /// A tag in `inbounds` or `outbounds` is invalid.
    Tag {
        /// The field holding the tag.
        field: &'static str,
        /// What is wrong with the tag.
        error: TagError,
    },
    /// `wn-source-networks` holds a bad network, or `-only` has no list.
    SourceNetworks {
        /// What is wrong, naming the field.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Toml { message } => write!(f, "init-data {FILE_NAME}: {message}"),
            Self::WnPublicKey(error) => write!(f, "init-data {FILE_NAME}: wn-public-key: {error}"),
            Self::Tag { field, error } => write!(f, "init-data {FILE_NAME}: {field}: {error}"),
            Self::SourceNetworks { message } => write!(f, "init-data {FILE_NAME}: {message}"),
        }
    }
}

impl core::error::Error for ConfigError {}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            wn_public_key: None,
            inbounds: default_set(DEFAULT_INBOUND, Direction::Inbound),
            outbounds: default_set(DEFAULT_OUTBOUND, Direction::Outbound),
            wn_source_networks: Vec::new(),
            wn_source_networks_only: false,
            udp_idle_secs: 60,
        }
    }
}

/// A set holding one built-in tag; the constants above are valid tags (a
/// test checks), so the empty fallback is never taken.
fn default_set(tag: &str, direction: Direction) -> TunnelSet {
    TunnelSet::parse([tag], direction).unwrap_or_default()
}

impl ForwarderConfig {
    /// Parses the text of `forwarder.toml`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let toml = |message| ConfigError::Toml { message };
        let table = minitoml::parse(text).map_err(|error| toml(error.to_string()))?;
        let mut config = Self::default();
        for (key, value) in table.into_entries() {
            match key.as_str() {
                "wn-public-key" => {
                    let line = value.into_string(&key).map_err(toml)?;
                    let key = PublicKey::parse(&line).map_err(ConfigError::WnPublicKey)?;
                    config.wn_public_key = Some(key);
                }
                "inbounds" => {
                    let tags = value.into_strings(&key).map_err(toml)?;
                    config.inbounds = parse_set(&tags, Direction::Inbound, "inbounds")?;
                }
                "outbounds" => {
                    let tags = value.into_strings(&key).map_err(toml)?;
                    config.outbounds = parse_set(&tags, Direction::Outbound, "outbounds")?;
                }
                "wn-source-networks" => {
                    let networks = value.into_strings(&key).map_err(toml)?;
                    config.wn_source_networks = networks
                        .iter()
                        .map(|n| SourceNetwork::parse(n))
                        .collect::<Result<_, _>>()
                        .map_err(|e| ConfigError::SourceNetworks {
                            message: alloc::format!("wn-source-networks: {e}"),
                        })?;
                }
                "wn-source-networks-only" => {
                    config.wn_source_networks_only = value.into_bool(&key).map_err(toml)?;
                }
                "udp-idle-secs" => match value.into_integer(&key).map_err(toml)? {
                    n @ 1..=86_400 => config.udp_idle_secs = n.try_into().unwrap_or(60),
                    n => return Err(toml(alloc::format!("udp-idle-secs = {n}: give 1..=86400"))),
                },
                _ => {
                    let expected = "wn-public-key, inbounds, outbounds, wn-source-networks, \
                                    wn-source-networks-only or udp-idle-secs";
                    return Err(toml(minitoml::unknown_key(&key, expected)));
                }
            }
        }
        if config.wn_source_networks_only && config.wn_source_networks.is_empty() {
            return Err(ConfigError::SourceNetworks {
                message: "wn-source-networks-only = true needs a non-empty wn-source-networks \
                          list (else every connection would be refused)"
                    .into(),
            });
        }
        Ok(config)
    }

    /// The settings for a boot: from `forwarder.toml` in init-data when
    /// there is one, else the defaults.
    pub fn from_init_data(init_data: Option<&InitData>) -> Result<Self, ConfigError> {
        match init_data.and_then(|init_data| init_data.file(FILE_NAME)) {
            Some(text) => Self::parse(text),
            None => Ok(Self::default()),
        }
    }
}

fn parse_set(
    tags: &[String],
    direction: Direction,
    field: &'static str,
) -> Result<TunnelSet, ConfigError> {
    TunnelSet::parse(tags.iter().map(String::as_str), direction)
        .map_err(|error| ConfigError::Tag { field, error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_tag::{Tag, TagErrorKind};
    use pp_test_support::keys as fixtures;

    fn names(set: &TunnelSet) -> Vec<&str> {
        set.iter().map(Tag::name).collect()
    }

    #[test]
    fn reading_mutated_init_data_never_panics() {
        let toml = pp_test_support::SAMPLE_INIT_DATA.as_bytes();
        let delivered = pp_initdata::emit_delivery(toml);
        pp_test_support::feed_mutations(&[toml, delivered.as_bytes()], 3000, |input| {
            if let Ok(decoded) = pp_initdata::decode_delivery(input)
                && let Ok(init_data) = InitData::parse(&decoded)
            {
                let _ = ForwarderConfig::from_init_data(Some(&init_data));
            }
        });
    }

    #[test]
    fn the_built_in_defaults_are_valid_tags() {
        assert!(Tag::parse(DEFAULT_INBOUND, Direction::Inbound).is_ok());
        assert!(Tag::parse(DEFAULT_OUTBOUND, Direction::Outbound).is_ok());
        let config = ForwarderConfig::default();
        assert_eq!(config.wn_public_key, None);
        assert_eq!(names(&config.inbounds), ["KBS"]);
        assert_eq!(names(&config.outbounds), ["KATAAGENT"]);
    }

    #[test]
    fn no_init_data_or_no_forwarder_file_means_defaults() {
        assert_eq!(
            ForwarderConfig::from_init_data(None),
            Ok(ForwarderConfig::default())
        );
        let init_data = InitData::parse(b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n").unwrap();
        assert_eq!(
            ForwarderConfig::from_init_data(Some(&init_data)),
            Ok(ForwarderConfig::default())
        );
    }

    #[test]
    fn a_full_file_sets_the_key_and_replaces_the_tunnel_lists() {
        let text = alloc::format!(
            "wn-public-key = \"{}\"\ninbounds = []\noutbounds = [\"KUBERNETES_PHASE:A:9000\", \"BOTH_PHASES:B:unix:/b.sock\"]\n",
            fixtures::ED25519_PUB.trim()
        );
        let config = ForwarderConfig::parse(&text).unwrap();
        assert_eq!(
            config.wn_public_key,
            Some(PublicKey::parse(fixtures::ED25519_PUB).unwrap())
        );
        assert!(names(&config.inbounds).is_empty());
        assert_eq!(names(&config.outbounds), ["A", "B"]);
    }

    #[test]
    fn forwarder_file_inside_init_data_is_used() {
        let init_data = InitData::parse(
            b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"forwarder.toml\" = 'inbounds = [\"BOTH_PHASES:KBS:18080\"]'\n",
        )
        .unwrap();
        let config = ForwarderConfig::from_init_data(Some(&init_data)).unwrap();
        assert_eq!(
            config.inbounds.get("KBS").unwrap().emit(),
            "BOTH_PHASES:KBS:18080"
        );
        assert_eq!(names(&config.outbounds), ["KATAAGENT"]);
    }

    #[test]
    fn wn_source_networks_are_parsed_and_only_needs_a_list() {
        let config = ForwarderConfig::parse(
            "wn-source-networks = [\"10.0.0.0/8\", \"fd00::/64\"]\nwn-source-networks-only = true\n",
        )
        .unwrap();
        let shown: Vec<String> = config
            .wn_source_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/64"]);
        assert!(config.wn_source_networks_only);
        assert!(ForwarderConfig::default().wn_source_networks.is_empty());

        let alone = ForwarderConfig::parse("wn-source-networks-only = true\n").unwrap_err();
        assert!(alone.to_string().contains("non-empty"), "{alone}");
        let bad = ForwarderConfig::parse("wn-source-networks = [\"10.0.0.1/8\"]\n").unwrap_err();
        assert!(
            bad.to_string()
                .contains("forwarder.toml: wn-source-networks: \"10.0.0.1/8\""),
            "{bad}"
        );
    }

    #[test]
    fn udp_idle_secs_defaults_to_60_and_takes_1_to_86400() {
        assert_eq!(ForwarderConfig::default().udp_idle_secs, 60);
        let config = ForwarderConfig::parse("udp-idle-secs = 5\n").unwrap();
        assert_eq!(config.udp_idle_secs, 5);
        for bad in ["0", "86401", "-1", "\"5\""] {
            let error = ForwarderConfig::parse(&alloc::format!("udp-idle-secs = {bad}\n"));
            assert!(error.unwrap_err().to_string().contains("udp-idle-secs"));
        }
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let unknown = ForwarderConfig::parse("wn_public_key = \"x\"\n").unwrap_err();
        assert!(matches!(unknown, ConfigError::Toml { .. }));
        assert!(unknown.to_string().contains("forwarder.toml"), "{unknown}");

        let rsa = alloc::format!("wn-public-key = \"{}\"\n", fixtures::RSA_PUB.trim());
        let error = ForwarderConfig::parse(&rsa).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::WnPublicKey(KeyError::NotEd25519 { .. })
        ));
        assert!(error.to_string().contains("wn-public-key"), "{error}");

        let error = ForwarderConfig::parse("outbounds = [\"KUBERNETES_PHASE:A:host.example:1\"]")
            .unwrap_err();
        let ConfigError::Tag {
            field,
            error: tag_error,
        } = &error
        else {
            panic!("{error}")
        };
        assert_eq!(*field, "outbounds");
        assert!(matches!(tag_error.kind, TagErrorKind::Host { .. }));
        assert!(
            error.to_string().contains("outbounds: tunnel tag"),
            "{error}"
        );
    }
}
