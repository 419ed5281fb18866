//! Object storage: what an `s3://`, `gs://`, `az://` (`abfs[s]://`) or `https://` URL names, the
//! store behind it, and the few operations trainyard needs on it (head, list, get, put,
//! conditional create, delete), each failure an [`Error`] that names the URL and never a secret.
//!
//! Everything else in the crate is synchronous; the requests run on one shared Tokio runtime
//! ([`block_on`]), so a caller on any thread (a rayon worker included) can wait on them.

mod config;
pub mod run;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

pub use config::redact;

/// Files at least this large are uploaded in parts; smaller ones in one request.
const MULTIPART_BYTES: u64 = 16 << 20;
/// Size of each part of a multipart upload (S3's minimum is 5 MiB).
const PART_BYTES: usize = 16 << 20;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Whether `s` is an object-store URL (rather than a local path or a `file://` URL).
pub fn is_url(s: &str) -> bool {
    scheme(s).is_some_and(|scheme| scheme != "file")
}

/// The scheme of `s` when it reads as `scheme://…`.
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then_some(scheme)
}

/// `file:///x` as the local path `/x`; anything else unchanged.
pub fn local_path(s: &str) -> &str {
    s.strip_prefix("file://").unwrap_or(s)
}

/// An object or prefix in an object store: the store (shared by every URL of one bucket) and
/// the key inside it.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// `scheme://bucket`, as the user wrote it, without credentials or query.
    base: String,
    key: Key,
    /// Whether the store may be written (`https://` is read-only).
    writable: bool,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

impl Remote {
    /// The object or prefix `url` names; `None` for a local path or `file://` URL. A URL with an
    /// unknown scheme, no bucket, or a key object stores cannot hold is exit 2.
    pub fn parse(url: &str) -> Result<Option<Remote>> {
        if !is_url(url) {
            return Ok(None);
        }
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::Usage(format!("{}: not a valid URL: {e}", redact(url))))?;
        // Credentials come from the environment, never from the URL: a query (a SAS token, a
        // presigned signature) or a password would be copied into the manifest's spec and logs.
        if parsed.query().is_some() || parsed.password().is_some() {
            return Err(Error::Usage(format!(
                "{}: URLs with a query string or a password are not supported; give credentials \
                 through the environment (AWS_*, GOOGLE_*, AZURE_*) or the pod's identity",
                redact(url)
            )));
        }
        let (store, base, writable) = config::store_for(&parsed)?;
        let path = parsed.path().trim_matches('/');
        let key = Key::from_url_path(path)
            .map_err(|e| Error::Usage(format!("{}: not a valid object key: {e}", redact(url))))?;
        Ok(Some(Remote { store, base, key, writable }))
    }

    /// [`Remote::parse`] of a command-line or spec path.
    pub fn parse_path(path: &Path) -> Result<Option<Remote>> {
        match path.to_str() {
            Some(s) => Remote::parse(s),
            None => Ok(None),
        }
    }

    /// The URL, for messages and manifests.
    pub fn url(&self) -> String {
        if self.key.as_ref().is_empty() { self.base.clone() } else { format!("{}/{}", self.base, self.key) }
    }

    /// The key inside the bucket.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The last segment of the key (the run directory's name for a run).
    pub fn name(&self) -> Option<String> {
        self.key.filename().map(str::to_string)
    }

    /// The object `name` under this prefix.
    pub fn child(&self, name: &str) -> Remote {
        Remote { key: self.key.clone().join(name), ..self.clone() }
    }

    /// The object at `key` in the same store.
    pub fn at(&self, key: Key) -> Remote {
        Remote { key, ..self.clone() }
    }

    /// This key with `suffix` appended to its last segment (`runs/a` → `runs/a.checkpoint`).
    pub fn with_suffix(&self, suffix: &str) -> Remote {
        Remote { key: Key::from(format!("{}{suffix}", self.key)), ..self.clone() }
    }

    /// Whether `other` is this prefix or below it.
    pub fn contains(&self, other: &Remote) -> bool {
        self.base == other.base && other.key.prefix_matches(&self.key)
    }

    /// The object's metadata, or `None` when there is no object at this key.
    pub fn head(&self) -> Result<Option<ObjectMeta>> {
        match block_on(self.store.head(&self.key)) {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed(&self.url(), "reading its metadata", e)),
        }
    }

    /// The object's bytes, or `None` when there is no object at this key.
    pub fn get(&self) -> Result<Option<Bytes>> {
        block_on(self.fetch())
    }

    /// The bytes of each of `objects` (`None` where there is none), in order, many requests in
    /// flight: what reading thousands of small manifests needs to stay interactive.
    pub fn get_all(objects: &[Remote]) -> Vec<Result<Option<Bytes>>> {
        block_on(futures::stream::iter(objects.iter().map(Remote::fetch)).buffered(64).collect())
    }

    async fn fetch(&self) -> Result<Option<Bytes>> {
        let got = async { self.store.get(&self.key).await?.bytes().await }.await;
        match got {
            Ok(bytes) => {
                TRAFFIC.read(1, bytes.len() as u64);
                Ok(Some(bytes))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed(&self.url(), "downloading it", e)),
        }
    }

    /// Every object under this prefix (recursively), sorted by key.
    pub fn list(&self) -> Result<Vec<ObjectMeta>> {
        let prefix = (!self.key.as_ref().is_empty()).then_some(&self.key);
        let mut objects: Vec<ObjectMeta> = block_on(self.store.list(prefix).try_collect())
            .map_err(|e| failed(&self.url(), "listing it", e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Writes `bytes` as the object, replacing any.
    pub fn put(&self, bytes: Bytes) -> Result<()> {
        self.check_writable()?;
        let n = bytes.len() as u64;
        block_on(self.store.put(&self.key, PutPayload::from(bytes)))
            .map_err(|e| failed(&self.url(), "uploading it", e))?;
        TRAFFIC.wrote(1, n);
        Ok(())
    }

    /// Writes `bytes` as the object only if there is none yet (`If-None-Match: *`): `false`
    /// when one exists already.
    ///
    /// A conditional create is not idempotent, so the store client does not retry it once sent;
    /// this does, with backoff, and when a retry finds the object already there it compares
    /// contents: the earlier attempt may have landed before its response was lost.
    pub fn create(&self, bytes: Bytes) -> Result<bool> {
        self.check_writable()?;
        let n = bytes.len() as u64;
        let policy = config::retry();
        let deadline = std::time::Instant::now() + policy.retry_timeout;
        let mut backoff = policy.backoff.init_backoff;
        let mut retried = false;
        loop {
            let options = PutOptions { mode: PutMode::Create, ..Default::default() };
            match block_on(self.store.put_opts(&self.key, PutPayload::from(bytes.clone()), options)) {
                Ok(_) => {
                    TRAFFIC.wrote(1, n);
                    return Ok(true);
                }
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    return Ok(retried && self.get()?.is_some_and(|existing| existing == bytes));
                }
                Err(e)
                    if failure(&e) == Failure::Transient
                        && std::time::Instant::now() + backoff < deadline =>
                {
                    tracing::info!(url = %self.url(), error = %redact(&e.to_string()), "retrying the conditional create");
                    std::thread::sleep(backoff);
                    backoff = backoff.mul_f64(policy.backoff.base).min(policy.backoff.max_backoff);
                    retried = true;
                }
                Err(e) => return Err(failed(&self.url(), "creating it", e)),
            }
        }
    }

    /// Uploads the local file `path` as the object: in one request when small, else in
    /// [`PART_BYTES`] parts, a few in flight, read from disk as they go (memory stays bounded).
    pub fn upload(&self, path: &Path) -> Result<()> {
        self.upload_reporting(path, &|| {})
    }

    /// The requests [`upload`](Self::upload) makes for a file of `size` bytes (one per part).
    pub fn upload_units(size: u64) -> usize {
        if size < MULTIPART_BYTES { 1 } else { size.div_ceil(PART_BYTES as u64) as usize }
    }

    /// [`upload`](Self::upload), calling `sent` as each of its [`upload_units`](Self::upload_units)
    /// is handed to the store.
    pub fn upload_reporting(&self, path: &Path, sent: &(dyn Fn() + Sync)) -> Result<()> {
        self.check_writable()?;
        let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        if size < MULTIPART_BYTES {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            self.put(Bytes::from(bytes))?;
            sent();
            return Ok(());
        }
        let url = self.url();
        let uploaded: std::result::Result<(), UploadError> = block_on(async {
            use std::io::Read as _;
            let upload = self.store.put_multipart(&self.key).await?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut file = std::fs::File::open(path).map_err(UploadError::Local)?;
            let mut buf = vec![0u8; PART_BYTES];
            loop {
                let n = file.read(&mut buf).map_err(UploadError::Local)?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.write(&buf[..n]);
                sent();
            }
            writer.finish().await?;
            Ok(())
        });
        match uploaded {
            Ok(()) => {
                TRAFFIC.wrote(Self::upload_units(size) as u64, size);
                Ok(())
            }
            Err(UploadError::Local(e)) => Err(Error::io(path, e)),
            Err(UploadError::Store(e)) => Err(failed(&url, "uploading it in parts", e)),
        }
    }

    /// Deletes the objects at `keys` (missing ones are no error).
    pub fn delete(&self, keys: Vec<Key>) -> Result<()> {
        self.check_writable()?;
        let stream = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
        let deleted: std::result::Result<Vec<_>, _> = block_on(
            self.store
                .delete_stream(stream)
                .or_else(|e| async move {
                    match e {
                        object_store::Error::NotFound { path, .. } => Ok(Key::from(path)),
                        e => Err(e),
                    }
                })
                .try_collect(),
        );
        deleted.map(|_| ()).map_err(|e| failed(&self.url(), "deleting objects under it", e))
    }

    /// The store, for the Parquet async reader's requests.
    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "{}: https:// URLs are read-only; write to s3://, gs:// or az://",
                self.url()
            )))
        }
    }
}

enum UploadError {
    Local(std::io::Error),
    Store(object_store::Error),
}

impl From<object_store::Error> for UploadError {
    fn from(e: object_store::Error) -> Self {
        UploadError::Store(e)
    }
}

/// What a failed request says, whichever way object_store reported it: some requests (listing,
/// multipart) report S3's 404 and 403 as generic errors with the status in the text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    NotFound,
    Denied,
    /// The URL or the configuration is not one the store accepts.
    Refused,
    /// An `If-Match` failed: the object changed since it was listed.
    Changed,
    /// Anything else: throttling, 5xx, timeouts, an unreachable endpoint.
    Transient,
}

fn failure(e: &object_store::Error) -> Failure {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Failure::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Failure::Denied,
        E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => Failure::Refused,
        E::Precondition { .. } => Failure::Changed,
        E::Generic { .. } => {
            let text = e.to_string();
            let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
            if says(&["NoSuchBucket", "NoSuchKey", "404 Not Found"]) {
                Failure::NotFound
            } else if says(&["AccessDenied", "403 Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"])
            {
                Failure::Denied
            } else {
                Failure::Transient
            }
        }
        _ => Failure::Transient,
    }
}

/// The error for a failed operation `what` on `url`: exit 2 where asking again cannot help (no
/// such bucket or key, access denied, a URL or configuration the store rejects), exit 1 for
/// what survived the retries (throttling, 5xx, timeouts, an unreachable endpoint).
pub(crate) fn failed(url: &str, what: &str, e: object_store::Error) -> Error {
    let url = redact(url);
    let detail = redact(&e.to_string());
    match failure(&e) {
        Failure::NotFound => {
            Error::data(format!("{url}: not found ({what}); check the bucket and the key: {detail}"))
        }
        Failure::Denied => Error::data(format!(
            "{url}: access denied ({what}); check the credentials and the bucket policy: {detail}"
        )),
        Failure::Refused => Error::Usage(format!("{url}: {what}: {detail}")),
        Failure::Changed => Error::Store(format!(
            "{url}: the object changed while it was being read ({what}); run again to read the new \
             version: {detail}"
        )),
        Failure::Transient => Error::Store(format!("{url}: {what} failed, also after retries: {detail}")),
    }
}

/// The runtime every store request runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // Requests mostly wait on the network; two workers keep many in flight without taking
        // cores from the decoders.
        #[allow(clippy::expect_used)]
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("trainyard-store")
            .enable_all()
            .build()
            .expect("the object-store runtime starts")
    })
}

/// Runs `future` on the store runtime and waits for it. Must not be called from inside it.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Spawns `future` on the store runtime.
pub(crate) fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime().spawn(future)
}

/// What this process moved to and from object stores, for `metrics.json`.
#[derive(Debug, Default)]
pub struct Traffic {
    read_requests: AtomicU64,
    read_bytes: AtomicU64,
    write_requests: AtomicU64,
    write_bytes: AtomicU64,
}

/// The process's traffic counters.
pub static TRAFFIC: Traffic = Traffic {
    read_requests: AtomicU64::new(0),
    read_bytes: AtomicU64::new(0),
    write_requests: AtomicU64::new(0),
    write_bytes: AtomicU64::new(0),
};

/// A snapshot of [`Traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrafficCounts {
    /// GET requests (each coalesced byte range is one).
    pub read_requests: u64,
    /// Bytes downloaded.
    pub read_bytes: u64,
    /// PUT requests (each part of a multipart upload is one).
    pub write_requests: u64,
    /// Bytes uploaded.
    pub write_bytes: u64,
}

impl Traffic {
    pub(crate) fn read(&self, requests: u64, bytes: u64) {
        self.read_requests.fetch_add(requests, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn wrote(&self, requests: u64, bytes: u64) {
        self.write_requests.fetch_add(requests, Ordering::Relaxed);
        self.write_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            read_requests: self.read_requests.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
            write_requests: self.write_requests.load(Ordering::Relaxed),
            write_bytes: self.write_bytes.load(Ordering::Relaxed),
        }
    }
}

/// A local scratch directory (under the system temporary directory), removed when dropped:
/// where a run bound for an object store is staged, and where a remote run's files are read.
#[derive(Debug)]
pub struct Scratch {
    dir: std::path::PathBuf,
}

impl Scratch {
    /// A new, empty scratch directory whose name starts with `purpose`.
    pub fn new(purpose: &str) -> Result<Scratch> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("trainyard-{purpose}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Scratch { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stores already built, by `scheme://bucket`, so that every URL of one bucket shares its
/// connections and credentials.
static STORES: Mutex<Vec<(String, Built)>> = Mutex::new(Vec::new());

/// A store and whether it may be written.
type Built = (Arc<dyn ObjectStore>, bool);

fn cached(base: &str, build: impl FnOnce() -> Result<Built>) -> Result<Built> {
    let mut stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, built)) = stores.iter().find(|(b, _)| b == base) {
        return Ok(built.clone());
    }
    let built = build()?;
    stores.push((base.to_string(), built.clone()));
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_local_paths_are_told_apart() {
        assert!(is_url("s3://bucket/key") && is_url("gs://b/k") && is_url("https://host/x.parquet"));
        assert!(!is_url("data/x.parquet") && !is_url("/abs/x") && !is_url("file:///abs/x"));
        assert_eq!(local_path("file:///abs/x.parquet"), "/abs/x.parquet");
        assert_eq!(local_path("rel/x.parquet"), "rel/x.parquet");
    }

    #[test]
    fn urls_that_cannot_work_are_exit_2_naming_them() {
        let refused = |url: &str| {
            let err = Remote::parse(url).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{url}: {err}");
            err.to_string()
        };
        assert!(refused("s4://bucket/key").contains("unsupported URL scheme s4://"));
        assert!(refused("s3:///key").contains("names no bucket"));
        let query = refused("s3://bucket/key.parquet?X-Amz-Signature=secret");
        assert!(query.contains("query string") && !query.contains("secret"), "{query}");
        assert!(refused("https://user:pw@host/x").contains("password"));
    }

    #[test]
    fn keys_join_and_prefixes_contain_what_is_below_them() {
        let run = Remote::parse("s3://bucket/runs/a").unwrap().unwrap();
        assert_eq!(run.url(), "s3://bucket/runs/a");
        assert_eq!(run.name().as_deref(), Some("a"));
        assert_eq!(run.child("manifest.json").url(), "s3://bucket/runs/a/manifest.json");
        assert_eq!(run.with_suffix(".checkpoint").url(), "s3://bucket/runs/a.checkpoint");
        assert!(run.contains(&run.child("x")));
        assert!(!run.contains(&run.with_suffix(".checkpoint")));
        let https = Remote::parse("https://example.com/data/x.parquet").unwrap().unwrap();
        let err = https.put(Bytes::from_static(b"x")).unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
    }
}
