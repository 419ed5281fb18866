//! A real S3-compatible server on loopback for the object-store tests (moto's server, from
//! PyPI), a client to put and read objects directly, and a fault-injecting proxy in front of
//! the server that the tests control.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The moto server binary: `TRAINYARD_MOTO_SERVER`, else `moto_server` on the PATH. `None`
/// (with a message) when there is none, unless `TRAINYARD_REQUIRE_S3` is set (CI), where a
/// skip would hide tests that must run.
fn moto_binary() -> Option<PathBuf> {
    let found = std::env::var_os("TRAINYARD_MOTO_SERVER").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join("moto_server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("TRAINYARD_REQUIRE_S3").is_none(),
            "no moto_server (set TRAINYARD_MOTO_SERVER) but TRAINYARD_REQUIRE_S3 is set"
        );
        eprintln!("skipping: no S3 server (pip install 'moto[server]', or set TRAINYARD_MOTO_SERVER)");
    }
    found
}

/// A port no other server of this process was given: tests start servers in parallel, and two
/// asking the kernel for a free port at once can be handed the same one (the second server then
/// fails to bind while its test talks to the first).
fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (std::process::id() % 2_000) as u16 * 16 + offset % 16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A moto server on loopback, killed when dropped. Each test makes its own buckets.
pub struct S3 {
    child: Child,
    pub port: u16,
    runtime: tokio::runtime::Runtime,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const ACCESS_KEY: &str = "trainyard-test";
pub const SECRET_KEY: &str = "trainyard-test-secret-value";

impl S3 {
    /// Starts a server, or `None` when there is none to start (see [`moto_binary`]).
    pub fn start() -> Option<S3> {
        let binary = moto_binary()?;
        // A server that exits before it listens (its port taken meanwhile by another process)
        // is started again on another port; its log says why when it keeps failing.
        let mut why = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let mut child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            let listening = loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                assert!(Instant::now() < deadline, "the S3 server did not start on port {port}");
                std::thread::sleep(Duration::from_millis(50));
            };
            if listening {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                return Some(S3 { child, port, runtime });
            }
            why = std::fs::read_to_string(log.path()).unwrap_or_default();
        }
        panic!("the S3 server exited before listening, three times; its log:\n{why}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a trainyard process needs to reach the server at `endpoint`.
    pub fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            // Fail fast when a test takes the store away.
            ("TRAINYARD_STORE_RETRY_SECONDS", "6".into()),
            ("HOME", "/nonexistent".into()),
        ]
    }

    /// The trainyard binary with the environment for this server.
    pub fn trainyard(&self) -> Command {
        Self::trainyard_via(&self.endpoint())
    }

    /// The trainyard binary talking to the store through `endpoint` (a proxy, say).
    pub fn trainyard_via(endpoint: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainyard"));
        c.arg("--log-format").arg("json");
        for (k, v) in Self::env_for(endpoint) {
            c.env(k, v);
        }
        c
    }

    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_bucket_name(bucket)
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .with_region("us-east-1")
                .build()
                .unwrap(),
        )
    }

    /// Creates `bucket` (moto accepts an unsigned create).
    pub fn bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {response}");
    }

    /// Uploads the local file `from` as `s3://bucket/key`.
    pub fn put_file(&self, bucket: &str, key: &str, from: &Path) {
        self.put(bucket, key, std::fs::read(from).unwrap());
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let store = self.store(bucket);
        self.runtime.block_on(store.put(&Key::from(key), PutPayload::from(bytes))).unwrap();
    }

    /// The bytes of `s3://bucket/key`, or `None` when there is no such object.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let store = self.store(bucket);
        self.runtime.block_on(async {
            match store.get(&Key::from(key)).await {
                Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get s3://{bucket}/{key}: {e}"),
            }
        })
    }

    /// The keys under `prefix` in `bucket`, sorted.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let store = self.store(bucket);
        let prefix = Key::from(prefix);
        let mut keys: Vec<String> = self
            .runtime
            .block_on(store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        keys.sort();
        keys
    }
}

/// What the proxy does to the requests it forwards.
#[derive(Debug, Default)]
pub struct Faults {
    /// Reset the connection (no response) on every n-th request.
    pub reset_every: Option<u64>,
    /// Answer 503 Slow Down on every n-th request (counted after resets).
    pub unavailable_every: Option<u64>,
    /// After this many PUT requests, refuse every connection: the store went away.
    pub down_after_puts: Option<u64>,
}

/// A loopback HTTP proxy in front of the S3 server, one request per connection, that injects
/// [`Faults`] and counts what it forwarded.
pub struct Proxy {
    pub port: u16,
    pub requests: Arc<AtomicU64>,
    pub puts: Arc<AtomicU64>,
    pub injected: Arc<AtomicU64>,
    pub down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Proxy {
    pub fn start(upstream: u16, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            requests: Arc::new(AtomicU64::new(0)),
            puts: Arc::new(AtomicU64::new(0)),
            injected: Arc::new(AtomicU64::new(0)),
            down: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let faults = Arc::new(Mutex::new(faults));
        let (requests, puts, injected, down, stop) = (
            proxy.requests.clone(),
            proxy.puts.clone(),
            proxy.injected.clone(),
            proxy.down.clone(),
            proxy.stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let (faults, requests, puts, injected, down) =
                    (faults.clone(), requests.clone(), puts.clone(), injected.clone(), down.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &faults, &requests, &puts, &injected, &down);
                });
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Reads an HTTP head (through the blank line) from `s`.
fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// `head` with its `Connection` header replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> =
        head.trim_end().lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    faults: &Mutex<Faults>,
    requests: &AtomicU64,
    puts: &AtomicU64,
    injected: &AtomicU64,
    down: &AtomicBool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = String::from_utf8_lossy(&read_head(&mut client)?).into_owned();
    let mut body = vec![0u8; content_length(&head)];
    client.read_exact(&mut body)?;
    let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
    let is_put = head.starts_with("PUT ") || head.starts_with("POST ");
    {
        let f = faults.lock().unwrap();
        if let Some(limit) = f.down_after_puts
            && is_put
            && puts.load(Ordering::SeqCst) >= limit
        {
            down.store(true, Ordering::SeqCst);
        }
        if down.load(Ordering::SeqCst) {
            return client.shutdown(Shutdown::Both);
        }
        if f.reset_every.is_some_and(|k| n.is_multiple_of(k)) {
            injected.fetch_add(1, Ordering::SeqCst);
            // SO_LINGER 0: the close sends a reset, not a clean end of stream.
            let _ = reset_on_close(&client);
            return Ok(());
        }
        if f.unavailable_every.is_some_and(|k| n.is_multiple_of(k)) {
            injected.fetch_add(1, Ordering::SeqCst);
            let xml =
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            )?;
            return Ok(());
        }
    }
    if is_put {
        puts.fetch_add(1, Ordering::SeqCst);
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(closing(&head).as_bytes())?;
    up.write_all(&body)?;
    let response_head = String::from_utf8_lossy(&read_head(&mut up)?).into_owned();
    client.write_all(closing(&response_head).as_bytes())?;
    std::io::copy(&mut up, &mut client)?;
    client.shutdown(Shutdown::Write)
}

/// SO_LINGER with a zero timeout, so that closing `s` sends a reset.
fn reset_on_close(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket and a properly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
