//! The attestation agent's and CDH's configuration (`aa.toml`, `cdh.toml`):
//! checked when init-data carries them, the documented defaults when it
//! does not. Pure: [`plan`] reads the parsed init-data and returns the two
//! texts to write, or why init-data cannot work.
//!
//! In a peer pod the KBS is reachable only through the forwarder's `KBS`
//! inbound tunnel (`127.0.0.1:8080` unless `forwarder.toml` moves it): the
//! pod has no other route out and resolves no names. So what is checked is
//! what decides whether AA and CDH can reach Trustee at all:
//!
//! - the forwarder configuration has a `KBS` inbound on a TCP address (it
//!   gives the one KBS URL that works, `http://IP:PORT`);
//! - `cdh.toml` is TOML (CDH exits at start otherwise), has `[kbc]` with
//!   `name = "cc_kbc"` (the KBS client; the offline and SEV ones never reach
//!   Trustee) and `url` = that URL, and a `socket`, when given, at
//!   [`CDH_SOCKET`] (where api-server-rest and pp-init look for it);
//! - `aa.toml` is TOML, and `[token_configs.kbs] url`, when given, is that
//!   URL.
//!
//! Everything else in the two files (certificates, image settings,
//! credentials, log levels) is left to AA and CDH, which know their own
//! schema: a check here would only go stale against guest-components.

use std::net::SocketAddr;

use pp_forwarder_core::config::ForwarderConfig;
use pp_initdata::InitData;
use pp_tag::Target;

/// The file names in init-data's `[data]` and in the output directory.
pub const AA_FILE: &str = "aa.toml";
pub const CDH_FILE: &str = "cdh.toml";
/// The inbound tunnel that carries AA's and CDH's KBS traffic.
pub const KBS_TUNNEL: &str = "KBS";
/// The inbound tunnel to the worker node's egress proxy (image pulls).
pub const EGRESS_TUNNEL: &str = "EGRESS";
/// CDH's ttrpc socket, guest-components' default.
pub const CDH_SOCKET: &str = "unix:///run/confidential-containers/cdh.sock";

/// Why init-data's AA or CDH configuration cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuestConfigError {
    #[error("init-data forwarder.toml: {0}")]
    Forwarder(String),
    #[error(
        "init-data has no {KBS_TUNNEL} inbound tunnel on a TCP address (forwarder.toml inbounds): AA and CDH could not reach Trustee; keep the default \"BOTH_PHASES:KBS:8080\""
    )]
    NoKbsTunnel,
    #[error("init-data {file} is not TOML ({reason}): {program} would exit at start")]
    NotToml {
        file: &'static str,
        program: &'static str,
        reason: String,
    },
    #[error("init-data {file}: {field} {problem}")]
    Field {
        file: &'static str,
        field: &'static str,
        problem: String,
    },
}

/// What to write for AA and CDH.
#[derive(Debug, PartialEq, Eq)]
pub struct GuestConfigs {
    pub aa_toml: String,
    pub cdh_toml: String,
    /// The files that came from the defaults, not from init-data.
    pub defaulted: Vec<&'static str>,
}

/// Checks init-data's `aa.toml` / `cdh.toml`, or supplies the defaults.
pub fn plan(document: &InitData) -> Result<GuestConfigs, GuestConfigError> {
    let forwarder = ForwarderConfig::from_init_data(Some(document))
        .map_err(|e| GuestConfigError::Forwarder(e.to_string()))?;
    let tunnel_url = |name| match forwarder.inbounds.get(name).map(|tag| tag.target()) {
        Some(Target::Tcp { ip, port }) => Some(format!("http://{}", SocketAddr::new(*ip, *port))),
        _ => None,
    };
    let kbs_url = tunnel_url(KBS_TUNNEL).ok_or(GuestConfigError::NoKbsTunnel)?;
    let egress_url = tunnel_url(EGRESS_TUNNEL);
    let mut defaulted = Vec::new();
    let aa_toml = match document.file(AA_FILE) {
        Some(text) => {
            check_aa(text, &kbs_url)?;
            text.to_owned()
        }
        None => {
            defaulted.push(AA_FILE);
            default_aa_toml(&kbs_url)
        }
    };
    let cdh_toml = match document.file(CDH_FILE) {
        Some(text) => {
            check_cdh(text, &kbs_url)?;
            text.to_owned()
        }
        None => {
            defaulted.push(CDH_FILE);
            default_cdh_toml(&kbs_url, egress_url.as_deref())
        }
    };
    Ok(GuestConfigs {
        aa_toml,
        cdh_toml,
        defaulted,
    })
}

/// The default `aa.toml`: KBS tokens from Trustee through the tunnel.
pub fn default_aa_toml(kbs_url: &str) -> String {
    format!(
        "# Written by pp-provision: init-data had no aa.toml.\n\
         [token_configs.kbs]\nurl = \"{kbs_url}\"\n"
    )
}

/// The default `cdh.toml`: the KBS client through the tunnel, CDH's socket
/// at its default path, and, when the forwarder has an `EGRESS` inbound,
/// image pulls through it (`https_proxy` only: the worker node's proxy
/// serves `CONNECT`, so registries must be https).
pub fn default_cdh_toml(kbs_url: &str, egress_url: Option<&str>) -> String {
    let image_pull_proxy = egress_url
        .map(|url| {
            format!(
                "\n[image.image_pull_proxy]\nhttps_proxy = \"{url}\"\nno_proxy = \"127.0.0.1,localhost\"\n"
            )
        })
        .unwrap_or_default();
    format!(
        "# Written by pp-provision: init-data had no cdh.toml.\n\
         socket = \"{CDH_SOCKET}\"\ncredentials = []\n\n\
         [kbc]\nname = \"cc_kbc\"\nurl = \"{kbs_url}\"\n{image_pull_proxy}"
    )
}

fn parse(
    file: &'static str,
    program: &'static str,
    text: &str,
) -> Result<toml::Table, GuestConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| GuestConfigError::NotToml {
            file,
            program,
            reason: e.message().to_owned(),
        })
}

fn check_aa(text: &str, kbs_url: &str) -> Result<(), GuestConfigError> {
    let table = parse(AA_FILE, "the attestation agent", text)?;
    let kbs = table
        .get("token_configs")
        .and_then(|v| v.as_table())
        .and_then(|t| t.get("kbs"));
    let Some(kbs) = kbs else {
        return Ok(());
    };
    let url = kbs.as_table().and_then(|t| t.get("url"));
    match url {
        None => Ok(()),
        Some(url) => check_url(AA_FILE, "[token_configs.kbs] url", url, kbs_url),
    }
}

fn check_cdh(text: &str, kbs_url: &str) -> Result<(), GuestConfigError> {
    let table = parse(CDH_FILE, "CDH", text)?;
    let field = |field, problem: String| GuestConfigError::Field {
        file: CDH_FILE,
        field,
        problem,
    };
    if let Some(socket) = table.get("socket")
        && socket.as_str() != Some(CDH_SOCKET)
    {
        return Err(field(
            "socket",
            format!(
                "is {}; api-server-rest and pp-init expect \"{CDH_SOCKET}\" (or leave it out)",
                describe(socket)
            ),
        ));
    }
    let kbc = table
        .get("kbc")
        .and_then(|v| v.as_table())
        .ok_or_else(|| field("[kbc]", "is missing; CDH needs it".into()))?;
    match kbc.get("name") {
        Some(name) if name.as_str() == Some("cc_kbc") => {}
        other => {
            let found = other.map_or("missing".to_owned(), describe);
            return Err(field(
                "[kbc] name",
                format!(
                    "is {found}; only \"cc_kbc\" (the KBS client) reaches Trustee from a peer pod"
                ),
            ));
        }
    }
    let url = kbc
        .get("url")
        .ok_or_else(|| field("[kbc] url", format!("is missing; use \"{kbs_url}\"")))?;
    check_url(CDH_FILE, "[kbc] url", url, kbs_url)
}

fn check_url(
    file: &'static str,
    field: &'static str,
    url: &toml::Value,
    kbs_url: &str,
) -> Result<(), GuestConfigError> {
    let matches = url
        .as_str()
        .is_some_and(|url| url.strip_suffix('/').unwrap_or(url) == kbs_url);
    if matches {
        return Ok(());
    }
    Err(GuestConfigError::Field {
        file,
        field,
        problem: format!(
            "is {}; a peer pod reaches the KBS only through the forwarder's {KBS_TUNNEL} tunnel: use \"{kbs_url}\"",
            describe(url)
        ),
    })
}

/// A value for a message: a string quoted, anything else by its type.
fn describe(value: &toml::Value) -> String {
    match value.as_str() {
        Some(text) => format!("{text:?}"),
        None => format!("a {}", value.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initdata(data: &str) -> InitData {
        let text = format!("version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n{data}");
        InitData::parse(text.as_bytes()).unwrap()
    }

    fn refusal(data: &str) -> String {
        plan(&initdata(data))
            .expect_err("this init-data must be refused")
            .to_string()
    }

    #[test]
    fn without_aa_and_cdh_entries_the_defaults_point_at_the_kbs_tunnel() {
        let configs = plan(&initdata("\"policy.rego\" = \"x\"\n")).unwrap();
        assert_eq!(configs.defaulted, [AA_FILE, CDH_FILE]);
        assert!(configs.aa_toml.contains("url = \"http://127.0.0.1:8080\""));
        assert!(configs.cdh_toml.contains("url = \"http://127.0.0.1:8080\""));
        // The defaults pass the checks they stand in for.
        check_aa(&configs.aa_toml, "http://127.0.0.1:8080").unwrap();
        check_cdh(&configs.cdh_toml, "http://127.0.0.1:8080").unwrap();
        assert!(!configs.cdh_toml.contains("image_pull_proxy"));
    }

    #[test]
    fn with_an_egress_inbound_the_default_cdh_pulls_images_through_it() {
        let configs = plan(&initdata(
            "\"forwarder.toml\" = 'inbounds = [\"BOTH_PHASES:KBS:8080\", \"KUBERNETES_PHASE:EGRESS:3128\"]'\n",
        ))
        .unwrap();
        let cdh: toml::Table = configs.cdh_toml.parse().unwrap();
        let proxy = &cdh["image"]["image_pull_proxy"];
        assert_eq!(proxy["https_proxy"].as_str(), Some("http://127.0.0.1:3128"));
        assert_eq!(proxy["no_proxy"].as_str(), Some("127.0.0.1,localhost"));
        check_cdh(&configs.cdh_toml, "http://127.0.0.1:8080").unwrap();
    }

    #[test]
    fn the_kbs_url_follows_a_moved_kbs_inbound() {
        let configs = plan(&initdata(
            "\"forwarder.toml\" = 'inbounds = [\"BOTH_PHASES:KBS:18080\"]'\n",
        ))
        .unwrap();
        assert!(
            configs
                .cdh_toml
                .contains("url = \"http://127.0.0.1:18080\"")
        );
        assert!(
            refusal(
                "\"forwarder.toml\" = 'inbounds = [\"BOTH_PHASES:KBS:18080\"]'\n\
                 \"cdh.toml\" = '''\n[kbc]\nname = \"cc_kbc\"\nurl = \"http://127.0.0.1:8080\"\n'''\n"
            )
            .contains("use \"http://127.0.0.1:18080\"")
        );
    }

    #[test]
    fn given_entries_that_work_are_written_as_they_are() {
        let cdh = "socket = \"unix:///run/confidential-containers/cdh.sock\"\n\
                   [kbc]\nname = \"cc_kbc\"\nurl = \"http://127.0.0.1:8080/\"\n\
                   [[credentials]]\npath = \"/run/x\"\nresource_uri = \"kbs:///a/b/c\"\n";
        let aa = "[token_configs]\n[token_configs.coco_as]\nurl = \"http://127.0.0.1:8080\"\n";
        let configs = plan(&initdata(&format!(
            "\"cdh.toml\" = '''\n{cdh}'''\n\"aa.toml\" = '''\n{aa}'''\n"
        )))
        .unwrap();
        assert_eq!(configs.cdh_toml, cdh);
        assert_eq!(configs.aa_toml, aa);
        assert!(configs.defaulted.is_empty());
    }

    #[test]
    fn entries_that_cannot_work_are_refused_naming_the_file_and_field() {
        let cdh = |body: &str| format!("\"cdh.toml\" = '''\n{body}\n'''\n");
        let cases = [
            (cdh("[kbc"), "init-data cdh.toml is not TOML"),
            (cdh("credentials = []"), "[kbc] is missing"),
            (
                cdh("[kbc]\nname = \"offline_fs_kbc\"\nurl = \"\""),
                "[kbc] name is \"offline_fs_kbc\"",
            ),
            (cdh("[kbc]\nname = \"cc_kbc\""), "[kbc] url is missing"),
            (
                cdh("[kbc]\nname = \"cc_kbc\"\nurl = \"http://kbs.example:8080\""),
                "cdh.toml: [kbc] url is \"http://kbs.example:8080\"; a peer pod reaches the KBS only",
            ),
            (
                cdh(
                    "socket = \"unix:///tmp/cdh.sock\"\n[kbc]\nname = \"cc_kbc\"\nurl = \"http://127.0.0.1:8080\"",
                ),
                "socket is \"unix:///tmp/cdh.sock\"",
            ),
            (
                "\"aa.toml\" = '= 1'\n".into(),
                "init-data aa.toml is not TOML",
            ),
            (
                "\"aa.toml\" = '''\n[token_configs.kbs]\nurl = \"https://1.2.3.4\"\n'''\n".into(),
                "aa.toml: [token_configs.kbs] url is \"https://1.2.3.4\"",
            ),
            (
                "\"forwarder.toml\" = 'inbounds = []'\n".into(),
                "no KBS inbound tunnel",
            ),
            (
                "\"forwarder.toml\" = 'inbounds = 3'\n".into(),
                "init-data forwarder.toml:",
            ),
        ];
        for (data, expected) in cases {
            let why = refusal(&data);
            assert!(why.contains(expected), "{data}: {why}");
        }
    }
}
