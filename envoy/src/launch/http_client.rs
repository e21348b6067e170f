use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response read by [`http_request`]; header names are lower-case.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
/// Enough for readiness checks and tests; it understands `Content-Length`, chunked and
/// read-to-close bodies.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    http_request_bytes(addr, method, path, &headers, body)
}

/// [`http_request`] with header values as bytes, for values that are not UTF-8 (a repeated
/// name is sent once per value).
pub fn http_request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    exchange(addr, (method, path, headers, body), None)
}

/// [`http_request`] within `deadline` for the whole exchange (a server trickling bytes cannot
/// hold it longer) and with an answer of at most `max_bytes` (head and body).
pub fn http_request_bounded(
    addr: SocketAddr,
    (method, path, headers, body): (&str, &str, &[(&str, &str)], &[u8]),
    deadline: Duration,
    max_bytes: usize,
) -> std::io::Result<HttpResponse> {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    exchange(
        addr,
        (method, path, &headers, body),
        Some((deadline, max_bytes)),
    )
}

type RequestParts<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [u8])], &'a [u8]);

fn exchange(
    addr: SocketAddr,
    (method, path, headers, body): RequestParts<'_>,
    bounds: Option<(Duration, usize)>,
) -> std::io::Result<HttpResponse> {
    let started = std::time::Instant::now();
    let (deadline, max_bytes) = bounds.unwrap_or((Duration::MAX, usize::MAX));
    let timed_out = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no complete answer within {} s", deadline.as_secs_f64()),
        )
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5).min(deadline.max(MIN_WAIT)))?;
    stream.set_read_timeout(Some(Duration::from_secs(30).min(deadline.max(MIN_WAIT))))?;
    stream.set_write_timeout(Some(Duration::from_secs(30).min(deadline.max(MIN_WAIT))))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n").into_bytes();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.extend_from_slice(format!("host: {addr}\r\n").as_bytes());
    }
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: ").as_bytes());
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        request.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request)?;
    stream.write_all(body)?;
    // Read until the response is complete by its own framing (Content-Length or chunked), not
    // until the server closes: Envoy may hold a closing connection open for a grace period.
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if response_complete(&raw, method == "HEAD") {
            break;
        }
        if bounds.is_some() {
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(timed_out());
            }
            stream.set_read_timeout(Some(left.max(MIN_WAIT)))?;
        }
        let read = match stream.read(&mut buffer) {
            Ok(read) => read,
            Err(err)
                if bounds.is_some()
                    && matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
            {
                return Err(timed_out())
            }
            Err(err) => return Err(err),
        };
        if read == 0 {
            break;
        }
        raw.extend_from_slice(buffer.get(..read).unwrap_or_default());
        if raw.len() > max_bytes || declared_length(&raw).is_some_and(|n| n > max_bytes) {
            return Err(std::io::Error::other(format!(
                "answer larger than {max_bytes} bytes"
            )));
        }
    }
    parse_response(&raw)
}

/// The shortest read timeout set (a zero timeout is refused by the socket).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// One keep-alive HTTP/1.1 connection: requests go one after the other on it, each answer read
/// by its framing. An error (including the read timeout) drops the connection; the next
/// request opens a new one.
pub struct KeepAliveClient {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
}

impl KeepAliveClient {
    /// A client of `addr` whose requests fail after `timeout` without a complete answer.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            stream: None,
        }
    }

    /// Opens the connection now (a request opens it otherwise).
    pub fn connect(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Sends one request and reads its answer; on any error the connection is dropped.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let result = self.exchange(method, path, headers, body);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        self.connect()?;
        let addr = self.addr;
        let timeout = self.timeout;
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| invalid("not connected"))?;
        let mut request = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            request.extend_from_slice(format!("host: {addr}\r\n").as_bytes());
        }
        for (name, value) in headers {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            request.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        stream.write_all(&request)?;
        let started = std::time::Instant::now();
        let mut raw = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        while !response_complete(&raw, method == "HEAD") {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no complete answer in time",
                ));
            }
            stream.set_read_timeout(Some(left))?;
            let read = stream.read(&mut buffer).map_err(|err| match err.kind() {
                // What a socket read timeout looks like on Linux.
                std::io::ErrorKind::WouldBlock => {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "no complete answer in time")
                }
                _ => err,
            })?;
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a complete answer",
                ));
            }
            raw.extend_from_slice(buffer.get(..read).unwrap_or_default());
        }
        let response = parse_response(&raw)?;
        if response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.stream = None;
        }
        Ok(response)
    }
}

/// Whether `raw` holds a whole response (headers plus the body its framing announces).
/// The `content-length` of a response whose head has arrived.
fn declared_length(raw: &[u8]) -> Option<usize> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(raw.get(..head_end)?).to_ascii_lowercase();
    head.split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())
}

fn response_complete(raw: &[u8], head: bool) -> bool {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head_text = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let body = &raw[head_end + 4..];
    let status_has_no_body = head_text
        .split(' ')
        .nth(1)
        .is_some_and(|code| code.starts_with('1') || code == "204" || code == "304");
    if head || status_has_no_body {
        return true;
    }
    for line in head_text.split("\r\n") {
        if let Some(length) = line.strip_prefix("content-length:") {
            return length
                .trim()
                .parse::<usize>()
                .is_ok_and(|length| body.len() >= length);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
    }
    false
}

fn invalid(reason: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_string())
}

fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no complete response head (connection closed early?)"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn decode_chunked(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("bad chunk header"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(data.get(..size).ok_or_else(|| invalid("short chunk"))?);
        data = data.get(size + 2..).unwrap_or_default();
    }
}
