//! A small HTTP/1.1 origin for tests and figures, simpler than the demo origin: every `GET`
//! waits `get_delay` and answers `200` with the `cache-control` it was given (or the header
//! lines given for its path) and the path in its body (with `vary`: `Vary: <header>`, and the
//! request's value of that header after the path); any other method answers `200` at once with
//! `no-store`. It counts the requests it
//! received, per method and path. Thread per connection, keep-alive; dropping it stops it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How a [`TestOrigin`] answers.
#[derive(Debug, Clone)]
pub struct TestOriginSpec {
    /// How long each `GET` waits before its answer.
    pub get_delay: Duration,
    /// The `cache-control` of `GET` answers.
    pub cache_control: String,
    /// Padding added to each `GET` body (bytes).
    pub body_padding: usize,
    /// `GET` answers for these paths (exact, query included) carry these header lines
    /// (repeated names allowed, in order) instead of the `cache-control` line.
    pub headers_for: Vec<(String, Vec<(String, String)>)>,
    /// A request header `GET` answers vary on (`Vary`), its value written into the body.
    pub vary: Option<String>,
}

impl Default for TestOriginSpec {
    fn default() -> Self {
        Self {
            get_delay: Duration::from_millis(150),
            cache_control: "max-age=60".to_string(),
            body_padding: 200,
            headers_for: Vec::new(),
            vary: None,
        }
    }
}

#[derive(Default)]
struct Counts {
    total: AtomicU64,
    by_path: Mutex<HashMap<String, u64>>,
}

/// A running test origin on a loopback port.
pub struct TestOrigin {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestOrigin {
    /// Listens on a free loopback port.
    pub fn start(spec: TestOriginSpec) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let spec = Arc::new(spec);
        let acceptor = {
            let (counts, stop) = (Arc::clone(&counts), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (counts, stop, spec) =
                        (Arc::clone(&counts), Arc::clone(&stop), Arc::clone(&spec));
                    std::thread::spawn(move || serve(stream, &spec, &counts, &stop));
                }
            })
        };
        Ok(Self {
            addr,
            counts,
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far (any method, any path; counted before the delay).
    pub fn requests(&self) -> u64 {
        self.counts.total.load(Ordering::SeqCst)
    }

    /// Requests with `method` for `path` (as sent, query included) it received so far.
    pub fn requests_for(&self, method: &str, path: &str) -> u64 {
        let key = format!("{method} {path}");
        self.counts
            .by_path
            .lock()
            .map(|m| m.get(&key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the acceptor so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves one connection until the peer closes it or the origin stops.
fn serve(stream: TcpStream, spec: &TestOriginSpec, counts: &Counts, stop: &AtomicBool) {
    // Short reads let an idle keep-alive connection notice that the origin stopped.
    if stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
    {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body_length, lines)) = read_head(&mut reader, stop) {
        let mut body = vec![0u8; body_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        counts.total.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut by_path) = counts.by_path.lock() {
            *by_path.entry(format!("{method} {path}")).or_default() += 1;
        }
        let vary = spec
            .vary
            .as_deref()
            .filter(|_| method == "GET" || method == "HEAD");
        let (cache_control, body) = if method == "GET" || method == "HEAD" {
            std::thread::sleep(spec.get_delay);
            let selected = vary.map_or(String::new(), |name| {
                format!("{name}={} ", header_value(&lines, name).unwrap_or("-"))
            });
            let mut body = format!("{path} {selected}").into_bytes();
            body.resize(body.len() + spec.body_padding, b'x');
            (spec.cache_control.as_str(), body)
        } else {
            ("no-store", format!("{method} {path} done").into_bytes())
        };
        let vary = vary.map_or(String::new(), |name| format!("vary: {name}\r\n"));
        let scripted = spec
            .headers_for
            .iter()
            .find(|(p, _)| method == "GET" && *p == path);
        let lines = match scripted {
            Some((_, headers)) => headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}\r\n"))
                .collect::<String>(),
            None => format!("cache-control: {cache_control}\r\n"),
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n{lines}{vary}content-length: {}\r\n\r\n",
            body.len()
        );
        let sent = writer.write_all(head.as_bytes()).and_then(|()| {
            if method == "HEAD" {
                Ok(())
            } else {
                writer.write_all(&body)
            }
        });
        if sent.is_err() {
            return;
        }
    }
}

/// The value of a header among a request head's lines (after the request line).
fn header_value<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// One request head: method, path, `content-length` and its lines.
type Head = (String, String, usize, Vec<String>);

/// Reads one request head. `None` when the connection closed, broke, or the origin stopped.
fn read_head<R: BufRead>(reader: &mut R, stop: &AtomicBool) -> Option<Head> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {
                if line.ends_with('\n') {
                    let trimmed = line.trim_end().to_string();
                    line.clear();
                    if trimmed.is_empty() {
                        if lines.is_empty() {
                            continue; // Stray CRLF between requests.
                        }
                        break;
                    }
                    lines.push(trimmed);
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    let mut request_line = lines.first()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let body_length = header_value(&lines, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((method, path, body_length, lines))
}
