//! `wn-source-networks-only` in the kernel too: the nftables rules that
//! drop new SSH connections from every source outside `wn-source-networks`
//! before they reach the forwarder. Written at boot by
//! `pp-forwarder --nft-rules FILE` (after provisioning wrote init-data) and
//! loaded by `nft -f FILE` into the `inet peerpod` table of the image's
//! /etc/nftables.conf. Without the setting the file holds only a comment.
//!
//! Pure: builds the text; `main.rs` writes it. The forwarder's own check
//! at accept stays in force either way.

use pp_forwarder_core::config::{ForwarderConfig, SourceNetwork};

/// The rules file for `config`, the forwarder listening on `port`.
pub fn nft_rules(config: &ForwarderConfig, port: u16) -> String {
    let mut text = String::from(
        "# Written at boot by pp-forwarder --nft-rules from init-data's forwarder.toml.\n",
    );
    if !config.wn_source_networks_only {
        text.push_str("# wn-source-networks-only is not set: no rules to add.\n");
        return text;
    }
    text.push_str(
        "# wn-source-networks-only: new SSH connections from other sources are dropped.\n",
    );
    let (v4, v6): (Vec<&SourceNetwork>, Vec<&SourceNetwork>) =
        config.wn_source_networks.iter().partition(|n| n.is_ipv4());
    for (family, field, networks) in [("ipv4", "ip", v4), ("ipv6", "ip6", v6)] {
        // `insert` puts the rule first in the chain, before the accept of
        // the SSH port.
        let rule = format!(
            "insert rule inet peerpod input iif != \"lo\" tcp dport {port} ct state new meta nfproto {family}"
        );
        if networks.is_empty() {
            text.push_str(&format!("{rule} drop\n"));
        } else {
            let set: Vec<String> = networks.iter().map(ToString::to_string).collect();
            text.push_str(&format!(
                "{rule} {field} saddr != {{ {} }} drop\n",
                set.join(", ")
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> ForwarderConfig {
        ForwarderConfig::parse(toml).unwrap()
    }

    #[test]
    fn without_only_there_are_no_rules() {
        let text = nft_rules(&config("wn-source-networks = [\"10.0.0.0/8\"]\n"), 2222);
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
    }

    #[test]
    fn only_drops_every_other_source_of_each_family() {
        let text = nft_rules(
            &config(
                "wn-source-networks = [\"10.0.0.0/8\", \"192.168.1.0/24\"]\nwn-source-networks-only = true\n",
            ),
            2222,
        );
        let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            rules,
            [
                "insert rule inet peerpod input iif != \"lo\" tcp dport 2222 ct state new meta nfproto ipv4 ip saddr != { 10.0.0.0/8, 192.168.1.0/24 } drop",
                "insert rule inet peerpod input iif != \"lo\" tcp dport 2222 ct state new meta nfproto ipv6 drop",
            ]
        );
        let v6 = nft_rules(
            &config("wn-source-networks = [\"fd00::/64\"]\nwn-source-networks-only = true\n"),
            22,
        );
        assert!(
            v6.contains(
                "tcp dport 22 ct state new meta nfproto ipv6 ip6 saddr != { fd00::/64 } drop"
            ),
            "{v6}"
        );
        assert!(v6.contains("meta nfproto ipv4 drop"), "{v6}");
    }
}
