//! Why an image layout could not be written.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum OciError {
    /// The input does not start with the Wasm magic and version 1.
    NotWasm { reason: &'static str },
    /// The tag is not an OCI reference tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
    BadTag(String),
    /// The output directory holds something other than an OCI image layout.
    NotALayout(PathBuf),
    /// An existing `index.json` could not be read as an image index.
    BadIndex { path: PathBuf, reason: String },
    /// A file or directory could not be written or read.
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
}

impl OciError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            error,
        }
    }
}

impl fmt::Display for OciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OciError::NotWasm { reason } => write!(f, "the input is not a Wasm module: {reason}"),
            OciError::BadTag(tag) => write!(
                f,
                "tag {tag:?}: must be 1-128 characters of A-Z a-z 0-9 _ . - and not start with . or -"
            ),
            OciError::NotALayout(path) => write!(
                f,
                "{} is not empty and is not an OCI image layout (no oci-layout file); \
                 choose an empty or new directory",
                path.display()
            ),
            OciError::BadIndex { path, reason } => {
                write!(f, "{} is not an OCI image index: {reason}", path.display())
            }
            OciError::Io {
                action,
                path,
                error,
            } => write!(f, "cannot {action} {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for OciError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OciError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}
