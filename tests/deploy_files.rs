//! What an operator deploys: the example chained conflists in `conflists/` and the DaemonSet in
//! `deploy/`. Each conflist must be a chain a runtime loads, ending in exactly one hostguard entry
//! made of keys hostguard knows, and the real binary must accept that entry: an ADD with it runs
//! in a throwaway namespace that has the interfaces its `waitFor` names. The manifest is checked
//! line by line (no YAML crate), and structurally too when PyYAML is installed.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{prev_result, Cni, Netns, TempDir};
use hostguard::config::ENTRY_KEYS as KNOWN_KEYS;
use ipnetwork::IpNetwork;
use serde_json::{json, Map, Value};

/// The primaries the examples must cover, by the type of their first plugin.
const PRIMARIES: [&str; 5] = ["bridge", "flannel", "calico", "cilium-cni", "azure-vnet"];

const MANIFEST: &str = "deploy/hostguard-daemonset.yaml";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn conflists() -> BTreeMap<String, Value> {
    let dir = repo().join("conflists");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("conflist") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("conflists/{name} is not JSON: {e}"));
        out.insert(name, json);
    }
    out
}

/// Checks the shape a runtime needs and returns the hostguard entry.
fn chained_entry<'a>(name: &str, list: &'a Value) -> &'a Map<String, Value> {
    assert!(list["cniVersion"].is_string(), "{name}: cniVersion");
    assert!(list["name"].is_string(), "{name}: name");
    let plugins = list["plugins"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: plugins is not an array"));
    assert!(!plugins.is_empty(), "{name}: plugins is empty");
    for (i, plugin) in plugins.iter().enumerate() {
        assert!(
            plugin.is_object() && plugin["type"].is_string(),
            "{name}: plugins[{i}] is not an object with a string type: {plugin}"
        );
    }
    let hostguards = plugins.iter().filter(|p| p["type"] == "hostguard").count();
    assert_eq!(hostguards, 1, "{name}: hostguard entries");
    let last = plugins.last().unwrap();
    assert_eq!(last["type"], "hostguard", "{name}: hostguard is not last");
    assert!(
        plugins.len() >= 2,
        "{name}: nothing for hostguard to chain after"
    );
    let entry = last.as_object().unwrap();
    assert_known_keys(name, entry);
    entry
}

fn assert_known_keys(what: &str, entry: &Map<String, Value>) {
    for key in entry.keys() {
        assert!(
            KNOWN_KEYS.contains(&key.as_str()),
            "{what}: hostguard key {key:?} is not one of {KNOWN_KEYS:?}"
        );
    }
}

#[test]
fn every_example_is_a_chain_ending_in_one_hostguard_entry_of_known_keys() {
    let lists = conflists();
    let mut firsts = Vec::new();
    for (name, list) in &lists {
        chained_entry(name, list);
        firsts.push(list["plugins"][0]["type"].as_str().unwrap().to_string());
    }
    for primary in PRIMARIES {
        assert!(
            firsts.iter().any(|t| t == primary),
            "no example for {primary}: {firsts:?}"
        );
    }
}

#[test]
fn examples_wait_for_the_interface_their_primary_creates() {
    let lists = conflists();
    let waits: BTreeMap<&str, Vec<&str>> = lists
        .iter()
        .map(|(name, list)| {
            let names = list["plugins"]
                .as_array()
                .and_then(|p| p.last())
                .and_then(|e| e["waitFor"]["interfaces"].as_array())
                .map(|ifs| ifs.iter().filter_map(|i| i["name"].as_str()).collect())
                .unwrap_or_default();
            (name.as_str(), names)
        })
        .collect();
    assert_eq!(waits["flannel.conflist"], ["flannel.1"]);
    assert_eq!(waits["calico.conflist"], ["tunl0"]);
    assert_eq!(waits["calico-vxlan.conflist"], ["vxlan.calico"]);
    assert_eq!(waits["cilium.conflist"], ["cilium_host"]);
    // tunl0 exists without an address wherever ipip is loaded (incident 3): only a CIDR proves
    // that the primary set it up.
    for name in [
        "calico.conflist",
        "calico-vxlan.conflist",
        "flannel.conflist",
    ] {
        let entry = lists[name]["plugins"].as_array().unwrap().last().unwrap();
        let cidr = entry["waitFor"]["interfaces"][0]["cidr"].as_str();
        assert!(
            cidr.is_some_and(|c| c.parse::<IpNetwork>().is_ok()),
            "{name}: waitFor needs the pod CIDR"
        );
    }
}

/// The entry as hostguard receives it, with every host path moved into `dir`.
fn runnable(entry: &Map<String, Value>, version: &str, name: &str, dir: &Path) -> Value {
    let mut conf = entry.clone();
    let at = |rel: &str| Value::String(dir.join(rel).display().to_string());
    conf.insert("stateDir".into(), at("state"));
    conf.insert("logFile".into(), at("hostguard.log"));
    if conf.contains_key("networkManager") {
        conf.insert(
            "networkManager".into(),
            json!({"runDir": at("nm-run"), "confDir": at("nm-etc")}),
        );
    }
    conf.insert("type".into(), "hostguard".into());
    conf.insert("cniVersion".into(), version.into());
    conf.insert("name".into(), name.into());
    conf.insert("prevResult".into(), prev_result(version));
    Value::Object(conf)
}

/// In `host`, what the primary would have made: each waited-for interface, up, with an address in
/// its CIDR (veth pairs, as this kernel has no dummy links).
fn make_ready(host: &Netns, entry: &Map<String, Value>) {
    let wanted = entry
        .get("waitFor")
        .and_then(|w| w["interfaces"].as_array())
        .cloned()
        .unwrap_or_default();
    for (i, iface) in wanted.iter().enumerate() {
        let name = iface["name"].as_str().unwrap();
        let peer = format!("hgready{i}");
        host.ip(&format!("link add {name} type veth peer name {peer}"));
        if let Some(cidr) = iface["cidr"].as_str() {
            let net: IpNetwork = cidr.parse().unwrap();
            let addr = net.iter().nth(1).unwrap();
            host.ip(&format!("addr add {addr}/{} dev {name}", net.prefix()));
        }
        host.ip(&format!("link set {peer} up"));
        host.ip(&format!("link set {name} up"));
    }
}

fn assert_accepted(what: &str, entry: &Map<String, Value>, version: &str, name: &str) {
    let host = Netns::new("dfh");
    let container = Netns::new("dfc");
    let dir = TempDir::new("deployfiles");
    make_ready(&host, entry);
    let conf = runnable(entry, version, name, &dir.path);
    let out = Cni::attach("ADD", "deploy-files", &container.path(), "eth0")
        .in_ns(&host)
        .config(&conf)
        .run();
    assert_eq!(
        out.status, 0,
        "{what}: hostguard refused the entry: {} {}",
        out.stdout, out.stderr
    );
    let result = out.json();
    assert_eq!(result["cniVersion"], version, "{what}: {result}");
    assert_eq!(result["ips"], conf["prevResult"]["ips"], "{what}: {result}");
    let log = std::fs::read_to_string(dir.join("hostguard.log")).unwrap_or_default();
    assert!(
        log.contains("ADD"),
        "{what}: logFile was not written: {log:?}"
    );
}

#[test]
fn the_binary_accepts_every_example_entry() {
    for (file, list) in &conflists() {
        let entry = chained_entry(file, list);
        let version = list["cniVersion"].as_str().unwrap();
        let name = list["name"].as_str().unwrap();
        assert_accepted(&format!("conflists/{file}"), entry, version, name);
    }
}

// --- the DaemonSet manifest, line by line -------------------------------------

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines below `lines[at]` that are indented deeper than it (its YAML block).
fn block_after<'a>(lines: &[&'a str], at: usize) -> Vec<&'a str> {
    let base = indent(lines[at]);
    lines[at + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .copied()
        .collect()
}

/// The block of the first line that reads exactly `key` (trimmed).
fn block<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    let at = lines
        .iter()
        .position(|l| l.trim() == key)
        .unwrap_or_else(|| panic!("{MANIFEST}: no line {key:?}"));
    block_after(lines, at)
}

/// The list item (`- ...` and its continuation lines) that holds `lines[at]`.
fn item_at<'a>(lines: &[&'a str], at: usize) -> Vec<&'a str> {
    let start = (0..=at)
        .rev()
        .find(|&i| lines[i].trim_start().starts_with("- ") && indent(lines[i]) < indent(lines[at]))
        .unwrap_or_else(|| panic!("{MANIFEST}: {:?} is not in a list item", lines[at]));
    let mut item = vec![lines[start]];
    item.extend(block_after(lines, start));
    item
}

/// The list item that holds the first line reading `wanted`.
fn item_with<'a>(lines: &[&'a str], wanted: &str) -> Vec<&'a str> {
    let at = lines
        .iter()
        .position(|l| l.trim() == wanted)
        .unwrap_or_else(|| panic!("{MANIFEST}: no line {wanted:?}"));
    item_at(lines, at)
}

fn trimmed<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines.iter().map(|l| l.trim()).collect()
}

/// `- name: X` / `value: Y` pairs of an `env:` list inside `lines`.
fn env_of(lines: &[&str]) -> BTreeMap<String, String> {
    let all = trimmed(lines);
    let mut env = BTreeMap::new();
    for (i, line) in all.iter().enumerate() {
        if let Some(name) = line.strip_prefix("- name: ") {
            if let Some(value) = all.get(i + 1).and_then(|l| l.strip_prefix("value: ")) {
                env.insert(name.to_string(), value.trim_matches('"').to_string());
            }
        }
    }
    env
}

fn manifest() -> String {
    std::fs::read_to_string(repo().join(MANIFEST)).unwrap()
}

/// The `plugin-config.json: |` literal block of the ConfigMap, de-indented.
fn plugin_config(lines: &[&str]) -> Map<String, Value> {
    let body = block(lines, "plugin-config.json: |");
    let text: String = body.iter().map(|l| format!("{}\n", l.trim())).collect();
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => map,
        other => panic!("{MANIFEST}: plugin-config.json is not a JSON object: {other:?}"),
    }
}

#[test]
fn the_daemonset_installs_in_an_init_container_and_watches_in_another() {
    let text = manifest();
    let lines: Vec<&str> = text.lines().collect();
    let docs: Vec<&str> = text.split("\n---\n").collect();
    let kinds: Vec<&str> = docs
        .iter()
        .filter_map(|d| d.lines().find(|l| l.starts_with("kind: ")))
        .collect();
    assert_eq!(
        kinds,
        ["kind: ServiceAccount", "kind: ConfigMap", "kind: DaemonSet"]
    );
    let all = trimmed(&lines);
    assert!(all.contains(&"hostNetwork: true"));
    assert!(all.contains(&"priorityClassName: system-node-critical"));
    // one toleration without a key tolerates every taint
    assert_eq!(
        trimmed(&block(&lines, "tolerations:")),
        ["- operator: Exists"]
    );

    let init = block(&lines, "initContainers:");
    let main = block(&lines, "containers:");
    for container in [&init, &main] {
        assert!(trimmed(container).contains(&"- /usr/local/bin/install-cni.sh"));
    }
    let init_env = env_of(&init);
    let main_env = env_of(&main);
    for (name, value) in [
        ("HOSTGUARD_BIN", "/usr/local/bin/hostguard"),
        ("CNI_CONF_DIR", "/etc/cni/net.d"),
        ("CNI_BIN_DIR", "/opt/cni/bin"),
        ("HOSTGUARD_STATE_DIR", "/var/lib/cni/hostguard"),
        (
            "HOSTGUARD_PLUGIN_CONFIG",
            "/etc/hostguard/plugin-config.json",
        ),
    ] {
        assert_eq!(
            init_env.get(name).map(String::as_str),
            Some(value),
            "init {name}"
        );
    }
    assert_ne!(
        init_env.get("HOSTGUARD_WATCH").map(String::as_str),
        Some("true"),
        "the init container must end"
    );
    assert_eq!(
        main_env.get("HOSTGUARD_WATCH").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        main_env.get("CNI_CONF_DIR").map(String::as_str),
        Some("/etc/cni/net.d")
    );

    // every variable set is one the entrypoint reads
    let entrypoint = std::fs::read_to_string(repo().join("scripts/install-cni.sh")).unwrap();
    for name in init_env.keys().chain(main_env.keys()) {
        assert!(
            entrypoint.contains(&format!("${{{name}")),
            "install-cni.sh does not read {name}"
        );
    }

    // the installer only writes files: no privilege, no capability
    assert!(!all.contains(&"privileged: true"));
    assert!(!all.iter().any(|l| l.starts_with("add:")));
    assert_eq!(
        all.iter()
            .filter(|l| **l == "allowPrivilegeEscalation: false")
            .count(),
        2
    );
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "drop:" {
            assert_eq!(trimmed(&block_after(&lines, i)), ["- ALL"]);
        }
    }
}

#[test]
fn the_daemonset_mounts_the_host_paths_it_needs_and_network_manager_read_only() {
    let text = manifest();
    let lines: Vec<&str> = text.lines().collect();
    let volumes = trimmed(&block(&lines, "volumes:"));
    for path in [
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/var/lib/cni/hostguard",
        "/run/NetworkManager",
    ] {
        let line = format!("path: {path}");
        assert!(volumes.contains(&line.as_str()), "no hostPath {path}");
        // each volume is mounted at the same path, so the paths install writes are the host's
        let mount = format!("mountPath: {path}");
        assert!(
            lines.iter().any(|l| l.trim() == mount),
            "{path} is not mounted at the host's path"
        );
    }
    let mut nm_mounts = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "mountPath: /run/NetworkManager" {
            let item = trimmed(&item_at(&lines, i));
            assert!(item.contains(&"readOnly: true"), "{item:?}");
            nm_mounts += 1;
        }
    }
    assert!(nm_mounts > 0);
    let nm = trimmed(&item_with(&lines, "path: /run/NetworkManager"));
    assert!(
        !nm.iter().any(|l| l.starts_with("type:")),
        "a node without NetworkManager must still start the pod: {nm:?}"
    );
}

#[test]
fn the_daemonset_plugin_config_is_accepted_by_the_binary() {
    let text = manifest();
    let lines: Vec<&str> = text.lines().collect();
    let config = plugin_config(&lines);
    assert!(!config.contains_key("type"), "install adds the type itself");
    assert_known_keys("plugin-config.json", &config);
    assert_accepted("plugin-config.json", &config, "1.0.0", "k8s-pod-network");
}

/// The init container as the manifest configures it, with its mounts moved into a temp dir: it
/// chains the upstream conflist, copies the binary and records the baseline.
#[test]
fn the_init_container_as_configured_chains_the_upstream() {
    let text = manifest();
    let lines: Vec<&str> = text.lines().collect();
    let env = env_of(&block(&lines, "initContainers:"));
    let node = Netns::new("dfinit");
    node.ip("link add eth0 type veth peer name up0");
    node.ip("addr add 172.26.0.3/27 dev eth0");
    node.ip("link set up0 up");
    node.ip("link set eth0 up");
    node.ip("route add default via 172.26.0.1 dev eth0");
    let dir = TempDir::new("dfinit");
    let upstream_dir = dir.join("etc/cni/net.d");
    std::fs::create_dir_all(&upstream_dir).unwrap();
    let mut upstream = conflists()["bridge.conflist"].clone();
    upstream["plugins"].as_array_mut().unwrap().pop();
    let upstream_text = serde_json::to_string_pretty(&upstream).unwrap();
    std::fs::write(upstream_dir.join("10-bridge.conflist"), &upstream_text).unwrap();
    let config = plugin_config(&lines);
    let config_path = dir.join("etc/hostguard/plugin-config.json");
    std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
    std::fs::write(&config_path, Value::Object(config.clone()).to_string()).unwrap();

    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &node.name, "bash"])
        .arg(repo().join("scripts/install-cni.sh"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (name, value) in &env {
        let value = match name.as_str() {
            "HOSTGUARD_BIN" => common::BIN.to_string(),
            // a path of the container: the same path under the temp dir
            _ if value.starts_with('/') => dir
                .join(value.trim_start_matches('/'))
                .display()
                .to_string(),
            _ => value.clone(),
        };
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "install-cni.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let chained: Value = serde_json::from_str(
        &std::fs::read_to_string(upstream_dir.join("00-hostguard.conflist")).unwrap(),
    )
    .unwrap();
    let mut entry = config;
    entry.insert("type".into(), "hostguard".into());
    let mut want = upstream.clone();
    want["plugins"]
        .as_array_mut()
        .unwrap()
        .push(Value::Object(entry));
    assert_eq!(chained, want);
    assert_eq!(
        std::fs::read_to_string(upstream_dir.join("10-bridge.conflist")).unwrap(),
        upstream_text,
        "the upstream file must stay as it was"
    );
    let bin = dir.join("opt/cni/bin/hostguard");
    assert!(bin.is_file(), "no {}", bin.display());
    let baseline =
        std::fs::read_to_string(dir.join("var/lib/cni/hostguard/baseline.json")).unwrap();
    assert!(baseline.contains("172.26.0.1"), "{baseline}");
}

/// With PyYAML (Debian's python3-yaml, which scripts/test.sh installs), the manifest is also
/// loaded as YAML and the same facts are checked on its structure.
#[test]
fn the_daemonset_is_valid_yaml_with_the_same_structure() {
    let path = repo().join(MANIFEST);
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(&path)
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named") => {
            eprintln!(
                "note: PyYAML is missing (apt-get install python3-yaml); only the line checks ran"
            );
            return;
        }
        Ok(out) => panic!(
            "{MANIFEST}: not valid YAML: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => {
            eprintln!("note: python3 not found ({err}); only the line checks ran");
            return;
        }
    };
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        ds["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));

    let host_paths: BTreeMap<&str, &str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
        .collect();
    let init = &pod["initContainers"][0];
    let watch = &pod["containers"][0];
    let env = |c: &Value, name: &str| -> Option<String> {
        c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(init["command"], json!(["/usr/local/bin/install-cni.sh"]));
    assert_eq!(watch["command"], json!(["/usr/local/bin/install-cni.sh"]));
    assert_eq!(env(init, "HOSTGUARD_WATCH"), None);
    assert_eq!(env(watch, "HOSTGUARD_WATCH").as_deref(), Some("true"));
    assert_eq!(env(init, "HOSTGUARD_TIMEOUT").as_deref(), Some("300"));
    for container in [init, watch] {
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert!(container["securityContext"]["capabilities"]["add"].is_null());
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        for mount in container["volumeMounts"].as_array().unwrap() {
            let name = mount["name"].as_str().unwrap();
            let declared = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == name);
            assert!(declared, "volume {name} is mounted but not declared");
            if let Some(host) = host_paths.get(name) {
                assert_eq!(mount["mountPath"], *host, "{name}");
            }
            if mount["mountPath"] == "/run/NetworkManager" {
                assert_eq!(mount["readOnly"], true);
            }
        }
    }
    let mounted: Vec<&str> = init["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for path in [
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/var/lib/cni/hostguard",
        "/run/NetworkManager",
    ] {
        assert!(mounted.contains(&path), "install does not mount {path}");
    }
    let lines: Vec<String> = manifest().lines().map(str::to_string).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let text_config = Value::Object(plugin_config(&refs));
    let yaml_config: Value =
        serde_json::from_str(cm["data"]["plugin-config.json"].as_str().unwrap()).unwrap();
    assert_eq!(text_config, yaml_config);
}
