//! deploy/ names what the adaptor reads: the manifests parse (YAML), the
//! DaemonSet's arguments are accepted by the real command line and point
//! at the ConfigMap's `adaptor.toml`, which the real configuration parser
//! accepts; its admin key, state directory and key-store namespace are
//! where the volumes, the Role and the RoleBinding put them; the Role
//! grants Secrets only; the Containerfile ships the static binary the
//! DaemonSet runs.

use std::path::{Path, PathBuf};

use pp_adaptor::config::AdaptorConfig;
use pp_adaptor::keystore::KeyStoreConfig;
use serde_json::Value;

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

/// Every document of a YAML file.
fn documents(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy(name)).unwrap();
    serde_saphyr::from_multiple(&text).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|document| document["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
}

/// The volume mounted at the folder holding `path`, and the file name.
fn volume_holding<'a>(pod: &'a Value, container: &'a Value, path: &Path) -> (&'a Value, String) {
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|mount| path.starts_with(text(&mount["mountPath"])))
        .unwrap_or_else(|| panic!("no volume mounted over {}", path.display()));
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|volume| volume["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume named {}", mount["name"]));
    let relative = path
        .strip_prefix(text(&mount["mountPath"]))
        .unwrap()
        .display()
        .to_string();
    (volume, relative)
}

#[test]
fn the_daemonset_runs_the_adaptor_with_a_configuration_it_accepts_and_the_volumes_it_reads() {
    let daemonset_file = documents("daemonset.yaml");
    let rbac = documents("rbac.yaml");
    let daemonset = find(&daemonset_file, "DaemonSet");
    let config_map = find(&daemonset_file, "ConfigMap");
    let namespace = text(&daemonset["metadata"]["namespace"]);
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let container = &pod["containers"][0];

    // The arguments: the real command line accepts them (`--help` after
    // them parses everything before it and exits).
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let parsed = std::process::Command::new(env!("CARGO_BIN_EXE_pp-adaptor"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let config_path = Path::new(args[args.iter().position(|a| *a == "--config").unwrap() + 1]);

    // The configuration file comes from the ConfigMap and parses.
    let (config_volume, key) = volume_holding(pod, container, config_path);
    assert_eq!(
        config_volume["configMap"]["name"],
        config_map["metadata"]["name"]
    );
    let toml = text(&config_map["data"][key.as_str()]);
    let config = AdaptorConfig::from_toml(toml, config_path).unwrap();

    // The admin key: a Secret volume with owner-only mode.
    let (admin_volume, _) = volume_holding(pod, container, &config.admin_key_path);
    let mode = admin_volume["secret"]["defaultMode"].as_u64().unwrap();
    assert_eq!(mode & 0o077, 0, "defaultMode {mode:o}");
    assert!(admin_volume["secret"]["secretName"].is_string());
    if let Some(ca) = &config.trustee_ca {
        volume_holding(pod, container, ca);
    }

    // State on the node, so a restarted adaptor finds its records.
    let (state_volume, _) = volume_holding(pod, container, &config.state_dir);
    assert!(state_volume["hostPath"]["path"].is_string());

    // The control socket folder is the node's /run/pp-adaptor.
    let (control_volume, _) = volume_holding(pod, container, Path::new("/run/pp-adaptor/x"));
    assert_eq!(control_volume["hostPath"]["path"], "/run/pp-adaptor");

    // Keys as Secrets in the DaemonSet's namespace, where the Role is.
    let KeyStoreConfig::Kubernetes(secrets) = &config.key_store else {
        panic!("the DaemonSet keeps keys as Kubernetes Secrets");
    };
    assert_eq!(secrets.namespace, namespace);
    assert_eq!(secrets.kubeconfig, None, "in-cluster service account");

    let account = find(&rbac, "ServiceAccount");
    let role = find(&rbac, "Role");
    let binding = find(&rbac, "RoleBinding");
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    for object in [account, role, binding] {
        assert_eq!(object["metadata"]["namespace"], namespace);
    }
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], namespace);
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["apiGroups"], serde_json::json!([""]));
    assert_eq!(rules[0]["resources"], serde_json::json!(["secrets"]));
    let verbs: Vec<&str> = rules[0]["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(verbs, ["get", "create", "update", "delete"]);
}

#[test]
fn the_containerfile_ships_the_static_binary_the_daemonset_runs() {
    let text = std::fs::read_to_string(deploy("Containerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    assert_eq!(lines[0], "FROM scratch");
    assert!(
        lines.contains(&"COPY target/x86_64-unknown-linux-musl/release/pp-adaptor /pp-adaptor")
    );
    assert!(lines.contains(&"ENTRYPOINT [\"/pp-adaptor\"]"));
    let daemonset_file = documents("daemonset.yaml");
    let container =
        &find(&daemonset_file, "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container.get("command").is_none(),
        "the DaemonSet must use the image's ENTRYPOINT"
    );
}
