//! Packaging the filter as an OCI image layout (a directory, no registry): the Wasm OCI artifact
//! conventions that Istio's `WasmPlugin` and Envoy Gateway's `EnvoyExtensionPolicy` read.

mod descriptor;
mod error;
mod layout;
mod media_types;
mod runtime_config;

pub use descriptor::{sha256_digest, Descriptor};
pub use error::OciError;
pub use layout::{write_wasm_image, WasmImage};
pub use media_types::{
    ANNOTATION_REF_NAME, ANNOTATION_TITLE, IMAGE_INDEX, IMAGE_LAYOUT_VERSION, IMAGE_MANIFEST,
    WASM_CONFIG, WASM_LAYER,
};
pub use runtime_config::runtime_config_json;
