//! The media types and annotation keys of a Wasm OCI image.
//!
//! Istio (`pkg/wasm/imagefetcher.go`) and Envoy Gateway (`internal/wasm/imagefetcher.go`) accept
//! three shapes of Wasm image: a Docker image or an OCI image whose last layer is a tar+gzip
//! holding `plugin.wasm` (the spec's *compat* variant), or the spec's *oci* variant: exactly two
//! layers, a runtime configuration (`application/vnd.module.wasm.config.v1+json`) and the raw
//! module (`application/vnd.module.wasm.content.layer.v1+wasm`). We write the *oci* variant: its
//! Wasm layer is the `.wasm` itself, so the layer digest is the module's sha256. (A manifest with
//! only the raw Wasm layer is refused by both fetchers: "number of layers must be 2".)

/// `oci-layout` → `imageLayoutVersion` (OCI image-spec v1.1, image-layout.md).
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";
/// `index.json` (OCI image-spec, image-index.md).
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The image manifest (OCI image-spec, manifest.md).
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The runtime configuration, as the manifest's config and as the first layer.
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// The raw Wasm module.
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// A blob's file name (what `oras pull` writes it as).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The tag of a manifest in `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
