//! Azurite (Microsoft's Azure Storage emulator, from npm) on loopback for the `az://` tests, and
//! the Azure SDK for Python (from PyPI) to make containers and put and read blobs directly.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account (the same in every emulator; not a secret).
const CONNECTION: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";

/// The blob operations the tests need, through the Azure SDK.
const SDK: &str = r#"
import sys
from azure.storage.blob import BlobServiceClient
service = BlobServiceClient.from_connection_string(sys.argv[1])
op = sys.argv[2]
if op == "container":
    service.create_container(sys.argv[3])
elif op == "put":
    with open(sys.argv[5], "rb") as f:
        service.get_blob_client(sys.argv[3], sys.argv[4]).upload_blob(f, overwrite=True)
elif op == "get":
    blob = service.get_blob_client(sys.argv[3], sys.argv[4])
    if not blob.exists():
        sys.exit(3)
    with open(sys.argv[5], "wb") as f:
        f.write(blob.download_blob().readall())
elif op == "list":
    for b in service.get_container_client(sys.argv[3]).list_blobs(name_starts_with=sys.argv[4]):
        print(b.name)
"#;

/// `TRAINYARD_<name>` as a path, else `program` on the PATH.
fn tool(env: &str, program: &str) -> Option<PathBuf> {
    std::env::var_os(env).map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
    })
}

/// A blob server on loopback, killed when dropped.
pub struct Azurite {
    child: Child,
    pub port: u16,
    python: PathBuf,
    scratch: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    /// Starts Azurite, or `None` (with a message) when it or the SDK's Python is missing, unless
    /// `TRAINYARD_REQUIRE_AZURITE` is set (CI), where a skip would hide tests that must run.
    pub fn start() -> Option<Azurite> {
        let (server, python) =
            match (tool("TRAINYARD_AZURITE", "azurite-blob"), tool("TRAINYARD_AZURE_PYTHON", "python3")) {
                (Some(s), Some(p))
                    if Command::new(&p)
                        .args(["-c", "import azure.storage.blob"])
                        .output()
                        .is_ok_and(|o| o.status.success()) =>
                {
                    (s, p)
                }
                _ => {
                    assert!(
                        std::env::var_os("TRAINYARD_REQUIRE_AZURITE").is_none(),
                        "Azurite or the Azure SDK is missing (TRAINYARD_AZURITE, TRAINYARD_AZURE_PYTHON) but \
                     TRAINYARD_REQUIRE_AZURITE is set"
                    );
                    eprintln!(
                        "skipping: no Azurite (npm install azurite; TRAINYARD_AZURITE) or no Python with \
                     azure-storage-blob (TRAINYARD_AZURE_PYTHON)"
                    );
                    return None;
                }
            };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(server)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "Azurite exited before listening on {port}");
            assert!(Instant::now() < deadline, "Azurite did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Azurite { child, port, python, scratch: tempfile::tempdir().unwrap() })
    }

    fn sdk(&self, args: &[&str]) -> std::process::Output {
        let connection = CONNECTION.replace("{port}", &self.port.to_string());
        Command::new(&self.python).args(["-c", SDK, &connection]).args(args).output().unwrap()
    }

    pub fn container(&self, name: &str) {
        let o = self.sdk(&["container", name]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    pub fn put_file(&self, container: &str, blob: &str, from: &Path) {
        let o = self.sdk(&["put", container, blob, from.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    pub fn put(&self, container: &str, blob: &str, bytes: &[u8]) {
        let path = self.scratch.path().join("put.bin");
        std::fs::write(&path, bytes).unwrap();
        self.put_file(container, blob, &path);
    }

    /// The blob's bytes, or `None` when there is none.
    pub fn get(&self, container: &str, blob: &str) -> Option<Vec<u8>> {
        let path = self.scratch.path().join("get.bin");
        let o = self.sdk(&["get", container, blob, path.to_str().unwrap()]);
        match o.status.code() {
            Some(0) => Some(std::fs::read(&path).unwrap()),
            Some(3) => None,
            _ => panic!("get {container}/{blob}: {}", String::from_utf8_lossy(&o.stderr)),
        }
    }

    /// Blob names under `prefix`, sorted.
    pub fn list(&self, container: &str, prefix: &str) -> Vec<String> {
        let o = self.sdk(&["list", container, prefix]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut names: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
        names.sort();
        names
    }

    /// The trainyard binary with the environment for this emulator.
    pub fn trainyard(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainyard"));
        c.arg("--log-format").arg("json");
        c.env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURITE_BLOB_STORAGE_URL", format!("http://127.0.0.1:{}", self.port))
            .env("TRAINYARD_STORE_RETRY_SECONDS", "6")
            .env("HOME", "/nonexistent");
        c
    }
}
