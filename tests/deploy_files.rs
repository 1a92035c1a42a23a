//! What an operator deploys: the example chained conflists in `conflists/` and the DaemonSet in
//! `deploy/`. Each conflist must be a chain a runtime loads, ending in exactly one hostguard entry
//! made of keys hostguard knows, and the real binary must accept that entry: an ADD with it runs
//! in a throwaway namespace that has the interfaces its `waitFor` names. The manifests are
//! checked against the Kubernetes API's object model offline (tests/k8s/schema_check.py, with
//! Debian's python3-yaml and python3-kubernetes: `kubectl --dry-run=client` needs a server), then
//! their containers are run as configured, with their host paths moved into a temp dir.

use crate::common;

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
const UNINSTALL_MANIFEST: &str = "deploy/hostguard-uninstall.yaml";
/// Debian's interpreter: python3-yaml and python3-kubernetes are installed for it, not for
/// whatever python3 comes first on PATH.
const PYTHON: &str = "/usr/bin/python3";

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
    conf.insert("runDir".into(), at("run"));
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

// --- the manifests -------------------------------------------------------------

/// The objects of `manifests`, after the schema check passed.
fn schema_checked(manifests: &[&Path]) -> Result<Vec<Value>, String> {
    let out = Command::new(PYTHON)
        .arg(repo().join("tests/k8s/schema_check.py"))
        .args(manifests)
        .output()
        .unwrap_or_else(|e| panic!("{PYTHON}: {e} (apt-get install python3)"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("No module named"),
        "{stderr}: apt-get install python3-yaml python3-kubernetes (scripts/lib/deps.sh)"
    );
    if !out.status.success() {
        return Err(stderr);
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn objects() -> Vec<Value> {
    let (ds, un) = (repo().join(MANIFEST), repo().join(UNINSTALL_MANIFEST));
    schema_checked(&[&ds, &un]).unwrap_or_else(|problems| panic!("{problems}"))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod[list]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {list} {name}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn env_of(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    let value = e["value"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{e}: no value"));
                    (e["name"].as_str().unwrap().to_string(), value.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Mount path -> (host path, read-only) of a container's hostPath volumes.
fn host_mounts(pod: &Value, container: &Value) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let name = mount["name"].as_str().unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name} is mounted but not declared"));
        if let Some(host) = volume["hostPath"]["path"].as_str() {
            out.insert(
                mount["mountPath"].as_str().unwrap().to_string(),
                (host.to_string(), mount["readOnly"] == true),
            );
        }
    }
    out
}

fn plugin_config(objects: &[Value]) -> Map<String, Value> {
    let cm = find(objects, "ConfigMap", "hostguard-config");
    match serde_json::from_str(cm["data"]["plugin-config.json"].as_str().unwrap()) {
        Ok(Value::Object(map)) => map,
        other => panic!("{MANIFEST}: plugin-config.json is not a JSON object: {other:?}"),
    }
}

#[test]
fn the_schema_check_finds_what_the_api_would_refuse() {
    let dir = TempDir::new("schema");
    let text = std::fs::read_to_string(repo().join(MANIFEST)).unwrap();
    for (from, to, wanted) in [
        (
            "hostNetwork: true",
            "hostNetwrk: true",
            "not a field of V1PodSpec",
        ),
        ("- name: guard", "- nme: guard", "V1Container needs name"),
        ("periodSeconds: 10", "periodSeconds: ten", "expected int"),
    ] {
        assert!(text.contains(from), "{from}");
        let broken = dir.join("broken.yaml");
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let problems = schema_checked(&[&broken]).expect_err(to);
        assert!(problems.contains(wanted), "{to}: {problems}");
    }
}

#[test]
fn the_daemonset_installs_first_then_guards_with_probes_and_metrics() {
    let objects = objects();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "ConfigMap", "DaemonSet", "DaemonSet"]
    );
    let ds = find(&objects, "DaemonSet", "hostguard");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        ds["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(pod["securityContext"]["seLinuxOptions"]["type"], "spc_t");

    let install = container(pod, "initContainers", "install");
    assert_eq!(strings(&install["args"]), ["install"]);
    assert!(install["command"].is_null(), "the image's entry point runs");
    let env = env_of(install);
    assert!(
        !env.contains_key("HOSTGUARD_WATCH"),
        "the init step must end"
    );
    assert_eq!(env["HOSTGUARD_HOST_ROOT"], "/host");
    // every variable is one of install's options, by the rule the binary derives them with
    let help = Command::new(common::BIN)
        .args(["install", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for name in env.keys() {
        let flag = format!(
            "--{}",
            name.strip_prefix("HOSTGUARD_")
                .unwrap_or_else(|| panic!("{name} is not a HOSTGUARD_ variable"))
                .to_lowercase()
                .replace('_', "-")
        );
        assert!(
            help.contains(&format!("  {flag} ")),
            "{name}: install has no {flag}"
        );
    }

    // a long-running install keeps the conflist in sync after the init step, with the same
    // options but --watch
    let sync = container(pod, "containers", "sync");
    assert_eq!(strings(&sync["args"]), ["install"]);
    let sync_env = env_of(sync);
    assert_eq!(sync_env["HOSTGUARD_WATCH"], "true");
    for key in [
        "HOSTGUARD_CONF_DIR",
        "HOSTGUARD_STATE_DIR",
        "HOSTGUARD_RUN_DIR",
        "HOSTGUARD_PLUGIN_CONFIG",
    ] {
        assert_eq!(
            sync_env[key], env[key],
            "sync and install disagree on {key}"
        );
    }

    let guard = container(pod, "containers", "guard");
    let args = strings(&guard["args"]);
    assert_eq!(args[0], "guard");
    let addr = args[args.iter().position(|a| *a == "--metrics-addr").unwrap() + 1];
    let port: u64 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(guard["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(guard["readinessProbe"]["httpGet"]["port"], port);
    assert_eq!(guard["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(guard["livenessProbe"]["httpGet"]["port"], port);
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // the least capabilities: none to install, CAP_NET_ADMIN alone to guard
    for (c, added) in [
        (install, json!(null)),
        (sync, json!(null)),
        (guard, json!(["NET_ADMIN"])),
    ] {
        let sc = &c["securityContext"];
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{}", c["name"]);
        assert_eq!(sc["capabilities"]["add"], added, "{}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_ne!(sc["privileged"], true);
    }
}

#[test]
fn the_daemonset_mounts_its_host_paths_and_the_host_root_read_only() {
    let objects = objects();
    let pod = &find(&objects, "DaemonSet", "hostguard")["spec"]["template"]["spec"];
    let install = host_mounts(pod, container(pod, "initContainers", "install"));
    let sync = host_mounts(pod, container(pod, "containers", "sync"));
    let guard = host_mounts(pod, container(pod, "containers", "guard"));
    for (mounts, path, read_only) in [
        (&install, "/etc/cni/net.d", false),
        (&install, "/opt/cni/bin", false),
        (&install, "/var/lib/cni/hostguard", false),
        (&install, "/run/hostguard", false),
        (&sync, "/etc/cni/net.d", false),
        (&sync, "/var/lib/cni/hostguard", false),
        (&sync, "/run/hostguard", false),
        (&guard, "/etc/cni/net.d", false),
        (&guard, "/var/lib/cni/hostguard", false),
        (&guard, "/run/hostguard", false),
        (&guard, "/var/log/hostguard", false),
        (&guard, "/run/NetworkManager", true),
    ] {
        // at the host's own path, so the paths written into the conflist are the host's
        assert_eq!(
            mounts.get(path),
            Some(&(path.to_string(), read_only)),
            "{path}"
        );
    }
    assert_eq!(install.get("/host"), Some(&("/".to_string(), true)));
    // the entry's directories are the ones mounted, at the same paths
    let entry = plugin_config(&objects);
    for key in ["stateDir", "runDir"] {
        let dir = entry[key].as_str().unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(guard.get(dir), Some(&(dir.to_string(), false)), "{key}");
        assert_eq!(install.get(dir), Some(&(dir.to_string(), false)), "{key}");
    }
    // the log the guard writes is inside a directory it has writable
    let log = plugin_config(&objects)["logFile"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        guard
            .iter()
            .any(|(mount, (_, ro))| !ro && log.starts_with(&format!("{mount}/"))),
        "{log} is not under a writable mount of the guard"
    );
    let nm = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hostPath"]["path"] == "/run/NetworkManager")
        .unwrap();
    assert!(
        nm["hostPath"]["type"].is_null(),
        "a node without NetworkManager must still start the pod"
    );
}

#[test]
fn the_daemonset_plugin_config_is_accepted_by_the_binary() {
    let config = plugin_config(&objects());
    assert!(!config.contains_key("type"), "install adds the type itself");
    assert_known_keys("plugin-config.json", &config);
    assert_accepted("plugin-config.json", &config, "1.0.0", "k8s-pod-network");
}

/// Runs a container of a manifest with the binary in place of its image: its args, its env, and
/// every absolute path moved under `dir`, inside `node`.
fn run_as_configured(container: &Value, dir: &TempDir, node: &Netns) -> std::process::Output {
    as_configured(container, dir, node).output().unwrap()
}

fn as_configured(container: &Value, dir: &TempDir, node: &Netns) -> Command {
    let moved = |value: &str| {
        if value.starts_with('/') {
            dir.join(value.trim_start_matches('/'))
                .display()
                .to_string()
        } else {
            value.to_string()
        }
    };
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &node.name, common::BIN])
        .args(strings(&container["args"]).into_iter().map(moved))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (name, value) in env_of(container) {
        cmd.env(name, moved(&value));
    }
    cmd
}

/// The install step as the manifest configures it chains the upstream, copies the binary and
/// records the baseline; the uninstall workload then takes the conflist away again and leaves the
/// primary's file as it was.
#[test]
fn install_then_the_uninstall_workload_as_configured() {
    let objects = objects();
    let pod = &find(&objects, "DaemonSet", "hostguard")["spec"]["template"]["spec"];
    let node = Netns::new("dfinit");
    node.ip("link add eth0 type veth peer name up0");
    node.ip("addr add 172.26.0.3/27 dev eth0");
    node.ip("link set up0 up");
    node.ip("link set eth0 up");
    node.ip("route add default via 172.26.0.1 dev eth0");
    let dir = TempDir::new("dfinit");
    let upstream_dir = dir.join("etc/cni/net.d");
    std::fs::create_dir_all(&upstream_dir).unwrap();
    std::fs::create_dir_all(dir.join("host")).unwrap();
    let mut upstream = conflists()["bridge.conflist"].clone();
    upstream["plugins"].as_array_mut().unwrap().pop();
    let upstream_text = serde_json::to_string_pretty(&upstream).unwrap();
    std::fs::write(upstream_dir.join("10-bridge.conflist"), &upstream_text).unwrap();
    let config = plugin_config(&objects);
    let config_path = dir.join("etc/hostguard/plugin-config.json");
    std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
    std::fs::write(&config_path, Value::Object(config.clone()).to_string()).unwrap();

    let out = run_as_configured(container(pod, "initContainers", "install"), &dir, &node);
    assert!(
        out.status.success(),
        "install: {}",
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
    want["hostguardInstall"] =
        serde_json::json!({"output": "00-hostguard.conflist", "upstream": "10-bridge.conflist"});
    assert_eq!(chained, want);
    let bin = dir.join("opt/cni/bin/hostguard");
    assert!(bin.is_file(), "no {}", bin.display());
    let baseline =
        std::fs::read_to_string(dir.join("var/lib/cni/hostguard/baseline.json")).unwrap();
    assert!(baseline.contains("172.26.0.1"), "{baseline}");

    // The sync container follows a primary that rewrites its config, and ends on SIGTERM.
    let sync = as_configured(container(pod, "containers", "sync"), &dir, &node)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut rewritten = upstream.clone();
    rewritten["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}));
    std::fs::write(
        upstream_dir.join("10-bridge.conflist"),
        serde_json::to_string_pretty(&rewritten).unwrap(),
    )
    .unwrap();
    let output = upstream_dir.join("00-hostguard.conflist");
    let followed = crate::install_support::wait_until(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&output).is_ok_and(|text| text.contains("bandwidth"))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sync.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let ended = sync.wait_with_output().unwrap();
    assert!(
        followed,
        "sync did not follow the rewrite: {}",
        String::from_utf8_lossy(&ended.stderr)
    );
    assert_eq!(
        ended.status.code(),
        Some(0),
        "sync on SIGTERM: {:?} {}",
        ended.status,
        String::from_utf8_lossy(&ended.stderr)
    );
    std::fs::write(upstream_dir.join("10-bridge.conflist"), &upstream_text).unwrap();

    let un = &find(&objects, "DaemonSet", "hostguard-uninstall")["spec"]["template"]["spec"];
    assert_eq!(un["tolerations"], json!([{"operator": "Exists"}]));
    let step = container(un, "initContainers", "uninstall");
    assert_eq!(strings(&step["args"])[0], "uninstall");
    assert_eq!(
        step["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    for _ in 0..2 {
        // a second run (a restarted pod) finds nothing to do and still succeeds
        let out = run_as_configured(step, &dir, &node);
        assert!(
            out.status.success(),
            "uninstall: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!upstream_dir.join("00-hostguard.conflist").exists());
    }
    assert_eq!(
        std::fs::read_to_string(upstream_dir.join("10-bridge.conflist")).unwrap(),
        upstream_text,
        "the upstream file must stay as it was"
    );
    assert!(
        bin.is_file(),
        "pods created while chained still need the binary for DEL"
    );
}
