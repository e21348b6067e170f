//! Redis commands in webdis's form: `POST /` with `COMMAND/arg/…/arg.raw` as the body, each
//! argument percent-encoded (so `/` and `.` inside an argument and any byte at all survive),
//! answered in raw RESP (`.raw`), which is binary-safe where webdis's JSON is not.

/// One Redis command and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    parts: Vec<Vec<u8>>,
}

impl Command {
    pub fn new(name: &str) -> Self {
        Self {
            parts: vec![name.as_bytes().to_vec()],
        }
    }

    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Self {
        self.parts.push(arg.as_ref().to_vec());
        self
    }

    /// The command's name (as counted in stats and logs).
    pub fn name(&self) -> &[u8] {
        self.parts.first().map_or(&[], Vec::as_slice)
    }

    /// The webdis request body: the parts percent-encoded, joined by `/`, then `.raw`.
    pub fn body(&self) -> Vec<u8> {
        let size: usize = self.parts.iter().map(|p| p.len() * 3 + 1).sum();
        let mut out = Vec::with_capacity(size + 4);
        for (index, part) in self.parts.iter().enumerate() {
            if index > 0 {
                out.push(b'/');
            }
            encode_into(part, &mut out);
        }
        out.extend_from_slice(b".raw");
        out
    }

    /// The request headers of the call (HTTP/1.1 to webdis; the host adds content-length).
    pub fn headers(cluster: &str) -> Vec<(String, String)> {
        vec![
            (":method".into(), "POST".into()),
            (":path".into(), "/".into()),
            (":authority".into(), cluster.into()),
            ("content-type".into(), "text/plain".into()),
        ]
    }
}

/// Percent-encodes everything but ASCII letters, digits, `-`, `_` and `~`.
fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_percent_encoded_and_raw_output_asked() {
        let command = Command::new("SET")
            .arg("edge:d/1.x")
            .arg([0u8, 255, b'+', b' '])
            .arg("PX")
            .arg("500")
            .arg("");
        assert_eq!(
            String::from_utf8(command.body()).unwrap(),
            "SET/edge%3Ad%2F1%2Ex/%00%FF%2B%20/PX/500/.raw"
        );
        assert_eq!(command.name(), b"SET");
    }

    #[test]
    fn headers_name_the_cluster() {
        let headers = Command::headers("fleet_bridge");
        assert!(headers.contains(&(":authority".into(), "fleet_bridge".into())));
        assert!(headers.contains(&(":method".into(), "POST".into())));
    }
}
