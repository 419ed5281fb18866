//! Building a store for a URL the way each cloud's users configure it: the standard
//! environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), web-identity tokens (EKS IRSA, GKE
//! and Azure workload identity), instance metadata, and for S3 the shared `~/.aws` credentials
//! and config files of `AWS_PROFILE`; every request retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use crate::error::{Error, Result};

/// Retries with exponential backoff on throttling (429, 503 SlowDown), other 5xx, connection
/// resets and timeouts; a request that keeps failing gives up after about two minutes.
/// `TRAINYARD_STORE_RETRY_SECONDS` shortens or lengthens that limit.
pub(super) fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: retry_timeout(),
    }
}

/// How long a failing request is retried: two minutes, or `TRAINYARD_STORE_RETRY_SECONDS`.
fn retry_timeout() -> Duration {
    let seconds = std::env::var("TRAINYARD_STORE_RETRY_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
        .unwrap_or(120.0);
    Duration::from_secs_f64(seconds)
}

/// Per-request limits: a stalled connection is abandoned (and retried) instead of hanging the
/// run. Environment settings of the same names win.
const CONNECT_TIMEOUT: &str = "10s";
const REQUEST_TIMEOUT: &str = "120s";

/// The store for `url`, its `scheme://bucket` base, and whether it may be written.
pub(super) fn store_for(url: &url::Url) -> Result<(Arc<dyn ObjectStore>, String, bool)> {
    let scheme = url.scheme();
    let host = url.host_str().unwrap_or_default();
    let shown = redact(url.as_str());
    if host.is_empty() {
        return Err(Error::Usage(format!("{shown}: the URL names no bucket (write {scheme}://BUCKET/KEY)")));
    }
    // `abfss://container@account.dfs.core.windows.net/…` carries the container as a user name.
    let user = if url.username().is_empty() { String::new() } else { format!("{}@", url.username()) };
    let authority = match url.port() {
        Some(port) => format!("{user}{host}:{port}"),
        None => format!("{user}{host}"),
    };
    let base = format!("{scheme}://{authority}");
    let bad = |e: object_store::Error| Error::Usage(format!("{shown}: {}", redact(&e.to_string())));
    // https:// stores can read objects but not write them.
    let writable = !matches!(scheme, "https" | "http");
    let (store, writable) = super::cached(&base, || {
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                let builder = with_profile(AmazonS3Builder::from_env())
                    .with_url(format!("s3://{authority}"))
                    .with_retry(retry());
                Arc::new(
                    client_defaults(builder, |b, k, v| b.with_config(AmazonS3ConfigKey::Client(k), v))
                        .build()
                        .map_err(bad)?,
                )
            }
            "gs" => {
                let builder =
                    GoogleCloudStorageBuilder::from_env().with_url(base.as_str()).with_retry(retry());
                Arc::new(
                    client_defaults(builder, |b, k, v| {
                        b.with_config(object_store::gcp::GoogleConfigKey::Client(k), v)
                    })
                    .build()
                    .map_err(bad)?,
                )
            }
            "az" | "azure" | "abfs" | "abfss" | "adl" => {
                let builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str()).with_retry(retry());
                Arc::new(
                    client_defaults(builder, |b, k, v| {
                        b.with_config(object_store::azure::AzureConfigKey::Client(k), v)
                    })
                    .build()
                    .map_err(bad)?,
                )
            }
            "https" | "http" => {
                let builder = HttpBuilder::new()
                    .with_url(base.as_str())
                    .with_retry(retry())
                    .with_config(ClientConfigKey::AllowHttp, (scheme == "http").to_string());
                Arc::new(client_defaults(builder, |b, k, v| b.with_config(k, v)).build().map_err(bad)?)
            }
            other => {
                return Err(Error::Usage(format!(
                    "{shown}: unsupported URL scheme {other}:// (use s3://, gs://, az://, abfs://, \
                     https:// or a local path)"
                )));
            }
        };
        Ok((store, writable))
    })?;
    Ok((store, base, writable))
}

/// Sets the timeouts unless the environment set them.
fn client_defaults<B>(builder: B, set: impl Fn(B, ClientConfigKey, String) -> B) -> B {
    let mut builder = builder;
    let env_has = |names: &[&str]| names.iter().any(|n| std::env::var_os(n).is_some());
    if !env_has(&["AWS_CONNECT_TIMEOUT", "GOOGLE_CONNECT_TIMEOUT", "AZURE_CONNECT_TIMEOUT"]) {
        builder = set(builder, ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT.into());
    }
    if !env_has(&["AWS_TIMEOUT", "GOOGLE_TIMEOUT", "AZURE_TIMEOUT"]) {
        builder = set(builder, ClientConfigKey::Timeout, REQUEST_TIMEOUT.into());
    }
    builder
}

/// Fills in what `AWS_PROFILE` (or `default`) says in the shared credentials and config files,
/// where the environment does not say it already: keys, session token, region, endpoint. The
/// environment, web identity and instance metadata keep their precedence, as in the AWS CLI.
fn with_profile(builder: AmazonS3Builder) -> AmazonS3Builder {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").unwrap_or_default();
    let credentials =
        env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| format!("{home}/.aws/credentials"));
    let config = env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config"));
    let from_credentials = ini_section(&credentials, &profile);
    // The config file names sections `profile NAME`, except `default`.
    let from_config = ini_section(
        &config,
        &if profile == "default" { profile.clone() } else { format!("profile {profile}") },
    );
    let lookup = |key: &str| {
        from_credentials.iter().chain(&from_config).find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let mut builder = builder;
    let keys_in_env = env("AWS_ACCESS_KEY_ID").is_some() || env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some();
    if !keys_in_env
        && let (Some(id), Some(secret)) = (lookup("aws_access_key_id"), lookup("aws_secret_access_key"))
    {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(token) = lookup("aws_session_token") {
            builder = builder.with_token(token);
        }
    }
    if env("AWS_REGION").is_none()
        && env("AWS_DEFAULT_REGION").is_none()
        && let Some(region) = lookup("region")
    {
        builder = builder.with_region(region);
    }
    if env("AWS_ENDPOINT_URL").is_none()
        && env("AWS_ENDPOINT").is_none()
        && let Some(endpoint) = lookup("endpoint_url")
    {
        builder = builder.with_endpoint(endpoint);
    }
    builder
}

/// The `key = value` lines of section `[name]` of an INI file (empty when it has none).
fn ini_section(path: &str, name: &str) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            inside = line[1..line.len() - 1].trim() == name;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// `text` with the secrets this process knows of replaced by `***`, and the query of every URL
/// in it (where SAS tokens and signatures travel) removed: what goes into logs, errors, the
/// manifest and the termination log.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Query strings of URLs.
    while let Some(i) = rest.find("://") {
        let start =
            rest[..i].rfind(|c: char| c.is_whitespace() || c == '"' || c == '\'').map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        let url = &rest[start..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?<redacted>");
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    for secret in secrets() {
        out = out.replace(&secret, "***");
    }
    out
}

/// Secret values from the environment and the shared AWS credentials file.
fn secrets() -> Vec<String> {
    const NAMES: [&str; 7] = [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
    ];
    let mut out: Vec<String> = NAMES.iter().filter_map(|n| std::env::var(n).ok()).collect();
    let home = std::env::var("HOME").unwrap_or_default();
    let credentials =
        std::env::var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|_| format!("{home}/.aws/credentials"));
    if let Ok(text) = std::fs::read_to_string(credentials) {
        out.extend(text.lines().filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            (k == "aws_secret_access_key" || k == "aws_session_token").then(|| v.trim().to_string())
        }));
    }
    // Short values would blank out ordinary words.
    out.retain(|s| s.len() >= 8);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_redacted() {
        assert_eq!(
            redact("GET https://acct.blob.core.windows.net/c/k?sv=1&sig=abc failed"),
            "GET https://acct.blob.core.windows.net/c/k?<redacted> failed"
        );
        assert_eq!(redact("s3://bucket/key: not found"), "s3://bucket/key: not found");
    }

    #[test]
    fn profile_sections_are_read() {
        let dir = std::env::temp_dir().join(format!("trainyard-ini-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(&path, "[default]\nregion = eu-west-1\n[profile ci]\nregion=us-east-2\nendpoint_url = http://127.0.0.1:9000\n").unwrap();
        let p = path.to_string_lossy();
        assert_eq!(ini_section(&p, "default"), [("region".to_string(), "eu-west-1".to_string())]);
        assert_eq!(ini_section(&p, "profile ci").len(), 2);
        assert!(ini_section(&p, "profile none").is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
