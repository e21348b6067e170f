//! Writing the filter as an OCI image layout: `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>` (OCI image-spec v1.1, image-layout.md), holding one manifest of the Wasm
//! image's *oci* variant (see `media_types`). Nothing is pushed: `oras cp --from-oci-layout` or
//! `crane push` takes the directory to a registry.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::descriptor::Descriptor;
use super::error::OciError;
use super::media_types::{
    ANNOTATION_REF_NAME, ANNOTATION_TITLE, IMAGE_INDEX, IMAGE_LAYOUT_VERSION, IMAGE_MANIFEST,
    WASM_CONFIG, WASM_LAYER,
};
use super::runtime_config::runtime_config_json;

/// The root id the filter is configured with (`root_id` in `envoy/envoy.yaml`).
const ROOT_ID: &str = "edge";
/// The file names the blobs carry (`org.opencontainers.image.title`).
const CONFIG_TITLE: &str = "runtime-config.json";
const WASM_TITLE: &str = "plugin.wasm";

/// What was written: the descriptors a deployment refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmImage {
    pub dir: PathBuf,
    pub tag: String,
    /// The manifest as `index.json` lists it; its digest is the image digest (`image@sha256:…`,
    /// and what `WasmPlugin.spec.sha256` / `EnvoyExtensionPolicy` `image.sha256` compare with).
    pub manifest: Descriptor,
    /// The runtime configuration: the manifest's config and its first layer.
    pub config: Descriptor,
    /// The module itself: its digest is the sha256 of the `.wasm`.
    pub wasm_layer: Descriptor,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 2],
}

#[derive(Serialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Value>,
}

/// Writes `wasm` as the image tagged `tag` into the layout at `dir` (created if missing; an
/// existing layout keeps its other tags, an entry with the same tag is replaced). The same
/// `.wasm` always gives the same digests: nothing time- or machine-dependent goes in.
pub fn write_wasm_image(dir: &Path, wasm: &[u8], tag: &str) -> Result<WasmImage, OciError> {
    check_wasm(wasm)?;
    check_tag(tag)?;
    prepare_dir(dir)?;

    let config_bytes = runtime_config_json(ROOT_ID);
    let config = Descriptor::of(WASM_CONFIG, &config_bytes);
    let config_layer = config.clone().annotated(ANNOTATION_TITLE, CONFIG_TITLE);
    let wasm_layer = Descriptor::of(WASM_LAYER, wasm).annotated(ANNOTATION_TITLE, WASM_TITLE);
    let manifest_bytes = to_json(&Manifest {
        schema_version: 2,
        media_type: IMAGE_MANIFEST,
        config: &config,
        layers: [&config_layer, &wasm_layer],
    });
    let manifest =
        Descriptor::of(IMAGE_MANIFEST, &manifest_bytes).annotated(ANNOTATION_REF_NAME, tag);

    write_blob(dir, &config, &config_bytes)?;
    write_blob(dir, &wasm_layer, wasm)?;
    write_blob(dir, &manifest, &manifest_bytes)?;
    write_index(dir, &manifest, tag)?;

    Ok(WasmImage {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        manifest,
        config,
        wasm_layer,
    })
}

/// The Wasm binary format's magic and version 1.
fn check_wasm(wasm: &[u8]) -> Result<(), OciError> {
    match wasm.get(..8) {
        None => Err(OciError::NotWasm {
            reason: "shorter than the 8-byte header",
        }),
        Some(header) if header[..4] != *b"\0asm" => Err(OciError::NotWasm {
            reason: "no \\0asm magic",
        }),
        Some(header) if header[4..] != [1, 0, 0, 0] => Err(OciError::NotWasm {
            reason: "not Wasm binary format version 1",
        }),
        Some(_) => Ok(()),
    }
}

/// An OCI distribution-spec tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), OciError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let first_ok = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && tag.len() <= 128 && tag.chars().all(allowed) {
        Ok(())
    } else {
        Err(OciError::BadTag(tag.to_string()))
    }
}

/// A new or empty directory becomes a layout; an existing layout is written into; anything else
/// is refused (so a wrong `--out` never scatters blobs into a source tree).
fn prepare_dir(dir: &Path) -> Result<(), OciError> {
    if dir.exists() {
        let is_layout = dir.join("oci-layout").is_file();
        let mut entries = fs::read_dir(dir).map_err(|e| OciError::io("read", dir, e))?;
        if !is_layout && entries.next().is_some() {
            return Err(OciError::NotALayout(dir.to_path_buf()));
        }
    }
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| OciError::io("create", &blobs, e))?;
    let layout = format!("{{\"imageLayoutVersion\":\"{IMAGE_LAYOUT_VERSION}\"}}");
    write_file(&dir.join("oci-layout"), layout.as_bytes())
}

fn write_blob(dir: &Path, descriptor: &Descriptor, bytes: &[u8]) -> Result<(), OciError> {
    write_file(&dir.join("blobs/sha256").join(descriptor.hex()), bytes)
}

/// `index.json` with this tag's manifest, keeping the entries of other tags.
fn write_index(dir: &Path, manifest: &Descriptor, tag: &str) -> Result<(), OciError> {
    let path = dir.join("index.json");
    let mut manifests = existing_manifests(&path)?;
    manifests.retain(|entry| {
        entry
            .pointer("/annotations/org.opencontainers.image.ref.name")
            .and_then(Value::as_str)
            != Some(tag)
    });
    manifests.push(serde_json::to_value(manifest).unwrap_or(Value::Null));
    let index = Index {
        schema_version: 2,
        media_type: IMAGE_INDEX,
        manifests,
    };
    let mut bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
    bytes.push(b'\n');
    write_file(&path, &bytes)
}

fn existing_manifests(path: &Path) -> Result<Vec<Value>, OciError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read(path).map_err(|e| OciError::io("read", path, e))?;
    let bad = |reason: String| OciError::BadIndex {
        path: path.to_path_buf(),
        reason,
    };
    let index: Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    match index.get("manifests") {
        Some(Value::Array(manifests)) => Ok(manifests.clone()),
        _ => Err(bad("no \"manifests\" array".to_string())),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    fs::write(path, bytes).map_err(|e| OciError::io("write", path, e))
}

/// Compact JSON of a value made of strings, numbers and descriptors (cannot fail).
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_wasm_version_1() {
        assert!(matches!(
            check_wasm(b"\0asm"),
            Err(OciError::NotWasm { .. })
        ));
        assert!(matches!(
            check_wasm(b"\x7fELF\x02\x01\x01\x00"),
            Err(OciError::NotWasm { .. })
        ));
        assert!(matches!(
            check_wasm(b"\0asm\x0d\0\x01\0"),
            Err(OciError::NotWasm { .. })
        ));
        assert!(check_wasm(b"\0asm\x01\0\0\0").is_ok());
    }

    /// A fresh directory under the system's temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("edge-oci-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const MODULE_A: &[u8] = b"\0asm\x01\0\0\0";
    const MODULE_B: &[u8] = b"\0asm\x01\0\0\0\x00\x01\x00";

    fn tags(dir: &Path) -> Vec<(String, String)> {
        let index: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let tag = m["annotations"][ANNOTATION_REF_NAME].as_str().unwrap();
                (tag.to_string(), m["digest"].as_str().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn a_tag_written_again_is_replaced_and_other_tags_stay() {
        let dir = TempDir::new("retag");
        let a = write_wasm_image(&dir.0, MODULE_A, "a").unwrap();
        let b = write_wasm_image(&dir.0, MODULE_B, "b").unwrap();
        assert_ne!(a.manifest.digest, b.manifest.digest);
        let a2 = write_wasm_image(&dir.0, MODULE_B, "a").unwrap();
        assert_eq!(
            a2.manifest.digest, b.manifest.digest,
            "same module, same image"
        );
        assert_eq!(
            tags(&dir.0),
            vec![
                ("b".to_string(), b.manifest.digest.clone()),
                ("a".to_string(), b.manifest.digest.clone()),
            ]
        );
        assert_eq!(a.wasm_layer.digest, super::super::sha256_digest(MODULE_A));
    }

    #[test]
    fn a_directory_that_is_not_a_layout_is_refused_untouched() {
        let dir = TempDir::new("not-layout");
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.0.join("Cargo.toml"), "[package]\n").unwrap();
        let err = write_wasm_image(&dir.0, MODULE_A, "a").unwrap_err();
        assert!(matches!(err, OciError::NotALayout(_)), "{err}");
        assert!(!dir.0.join("blobs").exists());
        assert!(!dir.0.join("oci-layout").exists());
    }

    #[test]
    fn tags_follow_the_distribution_spec() {
        for good in ["0.1.0", "latest", "_x", "v1-rc.2"] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(129);
        for bad in ["", ".x", "-x", "a/b", "a:b", too_long.as_str()] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
