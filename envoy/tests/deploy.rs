//! The Kubernetes examples in `envoy/deploy` and the filter's OCI image: every manifest validates
//! against the schema of its kind (`envoy/deploy/schemas`, cut from the published CRDs), the
//! plugin configuration in them passes the filter's own validation, and `edge-oci` writes an
//! image layout whose digests hold (the Wasm layer's digest is the `.wasm`'s sha256).

use std::path::{Path, PathBuf};
use std::process::Command;

use edge_envoy::launch::{default_plugin_config, default_wasm, workspace_root};
use edge_envoy::oci::{IMAGE_INDEX, IMAGE_MANIFEST, WASM_CONFIG, WASM_LAYER};
use edge_filter::policy::Config;
use serde::Deserialize;
use serde_json::{json, Value};

/// One YAML document of one manifest file.
struct Manifest {
    file: PathBuf,
    value: Value,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> String {
        format!(
            "{}: {} {}",
            self.file.display(),
            self.kind(),
            self.value["metadata"]["name"].as_str().unwrap_or("?")
        )
    }
}

fn deploy_dir() -> PathBuf {
    workspace_root().join("envoy/deploy")
}

fn yaml_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "yaml") {
            files.push(path);
        }
    }
}

/// Every document of every `*.yaml` under `envoy/deploy`, as JSON.
fn manifests() -> Vec<Manifest> {
    let mut files = Vec::new();
    yaml_files(&deploy_dir(), &mut files);
    let mut manifests = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|err| panic!("{}: not YAML: {err}", file.display()));
            if !value.is_null() {
                let file = file.strip_prefix(workspace_root()).unwrap().to_path_buf();
                manifests.push(Manifest { file, value });
            }
        }
    }
    manifests
}

fn manifest_of_kind(kind: &str) -> Manifest {
    manifests()
        .into_iter()
        .find(|manifest| manifest.kind() == kind)
        .unwrap_or_else(|| panic!("no {kind} in envoy/deploy"))
}

/// `envoy/deploy/schemas/<group>_<version>_<Kind>.json` (`core` for the core group).
fn schema_file(manifest: &Value) -> Option<PathBuf> {
    let api_version = manifest["apiVersion"].as_str()?;
    let kind = manifest["kind"].as_str()?;
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("core", api_version));
    Some(deploy_dir().join(format!("schemas/{group}_{version}_{kind}.json")))
}

/// What the schema of the manifest's kind says is wrong with it; a kind without a schema is
/// wrong too, so no manifest goes unchecked.
fn violations(manifest: &Value) -> Vec<String> {
    let Some(path) = schema_file(manifest).filter(|path| path.exists()) else {
        return vec![format!(
            "no schema for apiVersion {} kind {} in envoy/deploy/schemas",
            manifest["apiVersion"], manifest["kind"]
        )];
    };
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|err| panic!("{}: not a JSON schema: {err}", path.display()));
    validator
        .iter_errors(manifest)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

#[test]
fn every_manifest_validates_against_the_schema_of_its_kind() {
    let manifests = manifests();
    let kinds: Vec<&str> = manifests.iter().map(Manifest::kind).collect();
    for kind in [
        "WasmPlugin",
        "EnvoyExtensionPolicy",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(&kind), "no {kind} among {kinds:?}");
    }
    let mut failures = Vec::new();
    for manifest in &manifests {
        for violation in violations(&manifest.value) {
            failures.push(format!("{}: {violation}", manifest.name()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A copy of `manifest` with `edit` applied.
fn broken(manifest: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut copy = manifest.clone();
    edit(&mut copy);
    copy
}

#[test]
fn broken_manifests_are_rejected_by_the_schema_check() {
    let plugin = manifest_of_kind("WasmPlugin").value;
    let policy = manifest_of_kind("EnvoyExtensionPolicy").value;
    let deployment = manifest_of_kind("Deployment").value;
    assert!(violations(&plugin).is_empty());
    assert!(violations(&policy).is_empty());
    assert!(violations(&deployment).is_empty());

    let cases = [
        (
            "WasmPlugin phase not in the enum",
            broken(&plugin, |m| m["spec"]["phase"] = json!("AUTHORIZATION")),
        ),
        (
            "WasmPlugin without its required url",
            broken(&plugin, |m| {
                m["spec"].as_object_mut().unwrap().remove("url");
            }),
        ),
        (
            "WasmPlugin field misspelt (the API server's strict validation refuses it)",
            broken(&plugin, |m| m["spec"]["pluginname"] = json!("edge")),
        ),
        (
            "WasmPlugin failStrategy not in the enum",
            broken(&plugin, |m| {
                m["spec"]["failStrategy"] = json!("FAIL_RESTART")
            }),
        ),
        (
            "WasmPlugin pluginConfig not an object",
            broken(&plugin, |m| {
                m["spec"]["pluginConfig"] = json!("{\"services\": []}")
            }),
        ),
        (
            "EnvoyExtensionPolicy code type not in the enum",
            broken(&policy, |m| {
                m["spec"]["wasm"][0]["code"]["type"] = json!("OCI")
            }),
        ),
        (
            "EnvoyExtensionPolicy targetRef without its group",
            broken(&policy, |m| {
                m["spec"]["targetRefs"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("group");
            }),
        ),
        (
            "EnvoyExtensionPolicy image without its url",
            broken(&policy, |m| {
                m["spec"]["wasm"][0]["code"]["image"] = json!({});
            }),
        ),
        (
            "Deployment memory that is not a quantity",
            broken(&deployment, |m| {
                m["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] =
                    json!("1200MB");
            }),
        ),
        (
            "a metadata name that is not a DNS name",
            broken(&plugin, |m| m["metadata"]["name"] = json!("Edge_Filter")),
        ),
        (
            "a kind without a schema",
            broken(&plugin, |m| m["kind"] = json!("WasmPlugins")),
        ),
    ];
    for (what, manifest) in cases {
        assert!(!violations(&manifest).is_empty(), "accepted: {what}");
    }
}

/// The plugin configurations the manifests carry, with where they are.
fn plugin_configurations() -> Vec<(String, Value)> {
    let mut configs = Vec::new();
    for manifest in manifests() {
        match manifest.kind() {
            "WasmPlugin" => configs.push((
                manifest.name(),
                manifest.value["spec"]["pluginConfig"].clone(),
            )),
            "EnvoyExtensionPolicy" => {
                for wasm in manifest.value["spec"]["wasm"].as_array().unwrap() {
                    configs.push((manifest.name(), wasm["config"].clone()));
                }
            }
            _ => {}
        }
    }
    configs
}

/// Top-level settings that name the platform's clusters, so they differ from the demo's
/// `envoy/plugin-config.json` (the fleet tier's bridge-cluster setting joins them when the
/// manifests name it).
const PLATFORM_SETTINGS: &[&str] = &["upstream_cluster", "fleet_bridge"];

#[test]
fn plugin_configuration_in_the_manifests_passes_the_filters_validation() {
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(default_plugin_config()).unwrap()).unwrap();
    let configs = plugin_configurations();
    assert_eq!(configs.len(), 2, "one in the WasmPlugin, one in the policy");
    for (name, config) in configs {
        // Istio and Envoy Gateway hand the filter this object as a JSON string.
        let bytes = serde_json::to_vec(&config).unwrap();
        let parsed = Config::parse(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_ne!(
            parsed.upstream_cluster, "origin",
            "{name}: name the platform's cluster for the origin"
        );
        // The rest is envoy/plugin-config.json: the examples do not drift from the demo.
        let mut rest = config.clone();
        for key in PLATFORM_SETTINGS {
            rest.as_object_mut().unwrap().remove(*key);
        }
        assert_eq!(
            rest, shipped,
            "{name}: differs from envoy/plugin-config.json (besides {PLATFORM_SETTINGS:?}); \
             make the same change in the manifests' pluginConfig / config"
        );
        // The same check refuses a broken configuration, naming the field.
        let mut bad = config.clone();
        bad["services"][1]["match"]["path_prefix"] = json!("api/v1/coaching/");
        let err = Config::parse(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert_eq!(err.path, "services[1].match.path_prefix", "{name}: {err}");
    }
}

#[test]
fn the_fleet_tier_is_the_same_on_both_platforms() {
    let of = |platform: &str| -> Vec<Value> {
        manifests()
            .into_iter()
            .filter(|m| {
                m.file
                    == Path::new("envoy/deploy")
                        .join(platform)
                        .join("fleet-tier.yaml")
            })
            .map(|m| m.value)
            .collect()
    };
    let (istio, gateway) = (of("istio"), of("envoy-gateway"));
    assert_eq!(istio.len(), gateway.len());
    for (a, b) in istio.iter().zip(&gateway) {
        assert_eq!(a["kind"], b["kind"]);
        // Only the namespace's labels and who may call the bridge depend on the platform.
        let platform_specific = a["kind"] == "Namespace"
            || (a["kind"] == "NetworkPolicy" && a["metadata"]["name"] == "edge-fleet-bridge");
        if !platform_specific {
            assert_eq!(
                a, b,
                "fleet-tier.yaml differs between istio/ and envoy-gateway/"
            );
        }
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("edge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn edge_oci(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edge-oci"))
        .args(args)
        .output()
        .unwrap()
}

/// sha256 by coreutils, independent of the writer's own hashing.
fn sha256sum(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    format!("sha256:{}", &text[..64])
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The blob a descriptor points to: it exists, its size and sha256 are the descriptor's.
fn blob(layout: &Path, descriptor: &Value) -> PathBuf {
    let digest = descriptor["digest"].as_str().unwrap();
    let path = layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    assert_eq!(sha256sum(&path), digest, "{}", path.display());
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        descriptor["size"].as_u64().unwrap(),
        "{}",
        path.display()
    );
    path
}

/// The manifest `index.json` lists under `tag`.
fn tagged(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no manifest tagged {tag} in {index}"))
        .clone()
}

#[test]
fn the_image_layout_carries_the_wasm_with_consistent_digests() {
    let wasm = default_wasm();
    assert!(
        wasm.exists(),
        "{} is missing: cargo build --release --target wasm32-unknown-unknown -p edge-filter",
        wasm.display()
    );
    let dir = TempDir::new("oci-layout");
    let layout = dir.0.as_path();
    let out = edge_oci(&[
        "--out",
        layout.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
        "--tag",
        "test-1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(
        read_json(&layout.join("oci-layout")),
        json!({"imageLayoutVersion": "1.0.0"})
    );
    assert_eq!(
        read_json(&layout.join("index.json"))["mediaType"],
        IMAGE_INDEX
    );
    let entry = tagged(layout, "test-1");
    assert_eq!(entry["mediaType"], IMAGE_MANIFEST);
    let manifest = read_json(&blob(layout, &entry));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], IMAGE_MANIFEST);

    // The config: the Wasm runtime configuration, and the first of exactly two layers (what
    // Istio's and Envoy Gateway's fetchers require of this variant).
    assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG);
    let config = read_json(&blob(layout, &manifest["config"]));
    assert_eq!(config["type"], "envoy_proxy");
    assert_eq!(config["config"]["root_ids"], json!(["edge"]));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    assert_eq!(layers[0]["mediaType"], WASM_CONFIG);
    assert_eq!(layers[0]["digest"], manifest["config"]["digest"]);
    blob(layout, &layers[0]);

    // The Wasm layer is the .wasm itself.
    assert_eq!(layers[1]["mediaType"], WASM_LAYER);
    assert_eq!(layers[1]["digest"], sha256sum(&wasm).as_str());
    assert_eq!(
        std::fs::read(blob(layout, &layers[1])).unwrap(),
        std::fs::read(&wasm).unwrap()
    );
    // Nothing else in blobs/.
    let blobs = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 3);

    // The printed digest is the manifest's (what WasmPlugin spec.sha256 pins).
    let printed = String::from_utf8(out.stdout).unwrap();
    let hex = entry["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    assert!(printed.contains(hex), "{printed}");

    // Deterministic: the same .wasm under another tag is the same image; both tags stay.
    let again = edge_oci(&[
        "--out",
        layout.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
        "--tag",
        "test-2",
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(tagged(layout, "test-2")["digest"], entry["digest"]);
    assert_eq!(tagged(layout, "test-1")["digest"], entry["digest"]);
}

#[test]
fn edge_oci_refuses_what_is_not_a_wasm_module_and_writes_nothing() {
    let dir = TempDir::new("oci-not-wasm");
    let input = std::env::temp_dir().join(format!("edge-oci-input-{}.wasm", std::process::id()));
    std::fs::write(&input, b"{\"not\": \"wasm\"}").unwrap();
    let layout = dir.0.join("layout");
    let out = edge_oci(&[
        "--out",
        layout.to_str().unwrap(),
        "--wasm",
        input.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&input);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a Wasm module"), "{stderr}");
    assert!(!layout.exists());
}

fn skopeo_copy(from: &Path, to: &Path, tag: &str) -> std::process::Output {
    Command::new("skopeo")
        .arg("copy")
        .arg("--quiet")
        .arg(format!("oci:{}:{tag}", from.display()))
        .arg(format!("oci:{}:{tag}", to.display()))
        .output()
        .expect("no skopeo: envoy/setup.sh --browser installs Debian's skopeo")
}

#[test]
fn skopeo_reads_the_layout_and_checks_every_digest() {
    // containers/image (skopeo) as a reader independent of the writer: copying the image reads
    // index.json and the manifest and verifies each blob's digest.
    let wasm = default_wasm();
    assert!(
        wasm.exists(),
        "{} is missing: cargo build --release --target wasm32-unknown-unknown -p edge-filter",
        wasm.display()
    );
    let dir = TempDir::new("oci-skopeo");
    let source = dir.0.join("source");
    let out = edge_oci(&[
        "--out",
        source.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
        "--tag",
        "0.1.0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let copy = dir.0.join("copy");
    let copied = skopeo_copy(&source, &copy, "0.1.0");
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert_eq!(
        tagged(&copy, "0.1.0")["digest"],
        tagged(&source, "0.1.0")["digest"]
    );

    // One byte changed in the Wasm blob: skopeo refuses it.
    let manifest = read_json(&blob(&source, &tagged(&source, "0.1.0")));
    let wasm_blob = source.join("blobs/sha256").join(
        manifest["layers"][1]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap(),
    );
    let mut bytes = std::fs::read(&wasm_blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&wasm_blob, bytes).unwrap();
    let refused = skopeo_copy(&source, &dir.0.join("copy-of-corrupt"), "0.1.0");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Digest did not match"), "{stderr}");
}
