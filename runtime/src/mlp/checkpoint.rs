//! Training checkpoints: `<output>.checkpoint/checkpoint.safetensors` holds the weights, the
//! AdamW moments, the best-so-far weights and, in its metadata, the loop state (epoch, step,
//! early-stopping bookkeeping, history). One file, replaced by rename, so a checkpoint is
//! always whole. Randomness is counter-based (see `random`), so there is no generator state to
//! save: the step and epoch numbers are the generator state.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::EpochRecord;
use super::tensors;
use crate::error::{Error, Result};
use crate::store::Remote;

const FILE: &str = "checkpoint.safetensors";
const STATE_KEY: &str = "trainyard.state";
/// Metadata key of the checkpoint's content digest, checked on load.
pub const DIGEST_KEY: &str = "trainyard.sha256";

/// Where the loop stood when the checkpoint was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// SHA-256 of the resolved spec; a checkpoint resumes only the same spec.
    pub spec_sha256: String,
    /// Rows the network trains on and validates on; they must match on resume.
    pub train_rows: usize,
    /// Validation rows.
    pub validation_rows: usize,
    /// The epoch in progress (0-based).
    pub epoch: u32,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// Weighted loss summed over the epoch's batches so far, and their weight.
    pub epoch_loss: f64,
    /// Weight of those batches.
    pub epoch_weight: f64,
    /// Best validation loss so far and its epoch (1-based).
    pub best: Option<(u32, f64)>,
    /// Epochs since the best one.
    pub bad_epochs: u32,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
}

/// A checkpoint in memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The loop state.
    pub state: LoopState,
    /// Current weights by parameter name.
    pub params: HashMap<String, Tensor>,
    /// AdamW first moments by parameter name.
    pub m: HashMap<String, Tensor>,
    /// AdamW second moments by parameter name.
    pub v: HashMap<String, Tensor>,
    /// Best-epoch weights, when early stopping has seen an epoch.
    pub best: HashMap<String, Tensor>,
}

/// The checkpoint directory of a run directory: `<output>.checkpoint`.
pub fn dir_for(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

/// Writes the checkpoint atomically: to a temporary file, fsynced, renamed over the old one.
pub fn save(
    dir: &Path,
    state: &LoopState,
    params: &[(String, Tensor)],
    m: &[(String, Tensor)],
    v: &[(String, Tensor)],
    best: &[(String, Tensor)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut all = Vec::with_capacity(params.len() * 4);
    for (prefix, set) in [("param", params), ("adam_m", m), ("adam_v", v), ("best", best)] {
        all.extend(set.iter().map(|(n, t)| (format!("{prefix}/{n}"), t.clone())));
    }
    let state_json = serde_json::to_string(state).map_err(|e| Error::Internal(e.to_string()))?;
    let internal = |e: String| Error::Internal(format!("serializing the checkpoint: {e}"));
    let mut metadata = HashMap::from([(STATE_KEY.to_string(), state_json)]);
    // The digest covers what `load` will use (state and tensors), not the encoding, so it is
    // computed from a first encoding and stored in the second.
    let unsigned = tensors::encode(&all, Some(metadata.clone())).map_err(internal)?;
    metadata.insert(DIGEST_KEY.to_string(), content_digest(&unsigned).map_err(internal)?);
    let bytes = tensors::encode(&all, Some(metadata)).map_err(internal)?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Where a run's checkpoints live: `<run>.checkpoint` on local disk and, for a run bound for an
/// object store, the same name beside the run in the bucket, which every save is uploaded to
/// and a resume downloads from. The checkpoint is one object, replaced whole by each upload and
/// checked against its own digest on load, so a reader sees the previous checkpoint or this
/// one, never a mix, and needs no manifest.
#[derive(Debug, Clone)]
pub struct Place {
    /// The local directory.
    pub dir: PathBuf,
    /// The prefix in the bucket, for a run bound for one.
    pub mirror: Option<Remote>,
}

impl Place {
    /// The checkpoints of the run written locally at `run` (and uploaded to `remote`, if any).
    pub fn for_run(run: &Path, remote: Option<&Remote>) -> Place {
        Place { dir: dir_for(run), mirror: remote.map(|r| r.with_suffix(".checkpoint")) }
    }

    /// [`save`]s the checkpoint, then uploads it to the mirror.
    pub fn save(
        &self,
        state: &LoopState,
        params: &[(String, Tensor)],
        m: &[(String, Tensor)],
        v: &[(String, Tensor)],
        best: &[(String, Tensor)],
    ) -> Result<()> {
        save(&self.dir, state, params, m, v, best)?;
        match &self.mirror {
            Some(mirror) => mirror.child(FILE).upload(&self.dir.join(FILE)),
            None => Ok(()),
        }
    }

    /// [`load`]s the checkpoint, from the mirror when there is one (a preempted pod with no
    /// volume resumes from the bucket).
    pub fn load(&self, device: &Device) -> Result<Option<Checkpoint>> {
        if let Some(mirror) = &self.mirror {
            let Some(bytes) = mirror.child(FILE).get()? else { return Ok(None) };
            std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            let path = self.dir.join(FILE);
            std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
            tracing::info!(checkpoint = %mirror.url(), bytes = bytes.len(), "downloaded the checkpoint");
        }
        load(&self.dir, device)
    }

    /// [`remove`]s the checkpoint, in the bucket too, once the run is committed.
    pub fn remove(&self) -> Result<()> {
        if let Some(mirror) = &self.mirror {
            let keys: Vec<_> = mirror.list()?.into_iter().map(|o| o.location).collect();
            if !keys.is_empty() {
                mirror.delete(keys)?;
            }
        }
        remove(&self.dir)
    }
}

/// The bucket prefix when checkpoints are uploaded, else the local directory: what messages name.
impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mirror {
            Some(m) => f.write_str(&m.url()),
            None => write!(f, "{}", self.dir.display()),
        }
    }
}

/// Reads the checkpoint in `dir`, or `None` when there is none.
pub fn load(dir: &Path, device: &Device) -> Result<Option<Checkpoint>> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let unusable = |why: String| {
        Error::data(format!(
            "{}: not a usable checkpoint ({why}); remove the folder to start over",
            path.display()
        ))
    };
    let recorded = SafeTensors::read_metadata(&bytes)
        .map_err(|e| unusable(e.to_string()))?
        .1
        .metadata()
        .as_ref()
        .and_then(|m| m.get(DIGEST_KEY).cloned())
        .ok_or_else(|| unusable(format!("no {DIGEST_KEY} metadata")))?;
    let actual = content_digest(&bytes).map_err(&unusable)?;
    if actual != recorded {
        return Err(unusable(format!(
            "its sha256 {} does not match the recorded {}: the file is corrupt",
            &actual[..16],
            recorded.chars().take(16).collect::<String>()
        )));
    }
    let (all, metadata) = tensors::decode(&bytes, device).map_err(unusable)?;
    let state: LoopState = metadata
        .get(STATE_KEY)
        .ok_or_else(|| unusable(format!("no {STATE_KEY} metadata")))
        .and_then(|s| serde_json::from_str(s).map_err(|e| unusable(e.to_string())))?;
    let mut ckpt = Checkpoint {
        state,
        params: HashMap::new(),
        m: HashMap::new(),
        v: HashMap::new(),
        best: HashMap::new(),
    };
    for (name, t) in all {
        let (prefix, rest) = name.split_once('/').ok_or_else(|| unusable(format!("tensor {name}")))?;
        let set = match prefix {
            "param" => &mut ckpt.params,
            "adam_m" => &mut ckpt.m,
            "adam_v" => &mut ckpt.v,
            "best" => &mut ckpt.best,
            _ => return Err(unusable(format!("tensor {name}"))),
        };
        set.insert(rest.to_string(), t);
    }
    Ok(Some(ckpt))
}

/// SHA-256 (hex) over the loop state and every tensor (name, dtype, shape, bytes, in name
/// order) of an encoded checkpoint: everything a resume uses. [`load`] compares it with the
/// [`DIGEST_KEY`] metadata that [`save`] wrote.
pub fn content_digest(bytes: &[u8]) -> Result<String, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let state = header.metadata().as_ref().and_then(|m| m.get(STATE_KEY)).cloned().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut views = st.tensors();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    hasher.update((state.len() as u64).to_le_bytes());
    hasher.update(state.as_bytes());
    for (name, view) in views {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(format!("{:?}", view.dtype()).as_bytes());
        hasher.update((view.shape().len() as u64).to_le_bytes());
        for &d in view.shape() {
            hasher.update((d as u64).to_le_bytes());
        }
        hasher.update((view.data().len() as u64).to_le_bytes());
        hasher.update(view.data());
    }
    Ok(crate::runfiles::hex(&hasher.finalize()))
}

/// Removes the checkpoint directory (after the run directory is committed).
pub fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LoopState {
        LoopState {
            spec_sha256: "ab".repeat(32),
            train_rows: 10,
            validation_rows: 2,
            epoch: 1,
            batch: 3,
            step: 7,
            epoch_loss: 0.5,
            epoch_weight: 3.0,
            best: Some((1, 0.4)),
            bad_epochs: 0,
            history: Vec::new(),
        }
    }

    #[test]
    fn a_corrupt_checkpoint_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let w = Tensor::from_vec((0..64).map(|i| i as f32).collect::<Vec<_>>(), (8, 8), &dev).unwrap();
        let params = vec![("hidden.0.weight".to_string(), w)];
        save(dir.path(), &state(), &params, &params, &params, &params).unwrap();
        let loaded = load(dir.path(), &dev).unwrap().unwrap();
        assert_eq!(loaded.state, state());

        let path = dir.path().join(FILE);
        let good = std::fs::read(&path).unwrap();
        // 64 flipped bytes in the tensor data, as in the issue: parseable, but not the weights.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 200..n - 136].iter_mut().for_each(|b| *b ^= 0xff);
        std::fs::write(&path, &bad).unwrap();
        let err = load(dir.path(), &dev).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("checkpoint.safetensors: not a usable checkpoint"), "{text}");
        assert!(text.contains("does not match the recorded"), "{text}");

        // An edited loop state (epoch 1 -> 9) is caught too.
        let needle = b"\\\"epoch\\\":1";
        let at = good.windows(needle.len()).position(|w| w == needle).expect("the state's epoch");
        let mut edited = good.clone();
        edited[at + needle.len() - 1] = b'9';
        std::fs::write(&path, &edited).unwrap();
        assert!(load(dir.path(), &dev).unwrap_err().to_string().contains("does not match"));
    }
}
