//! candle tensors to and from safetensors bytes (f32 only, which is all the MLP stores).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// Serializes named f32 tensors with optional metadata. Deterministic: the same tensors give
/// the same bytes.
pub fn encode(
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let values: Vec<f32> = t.flatten_all().and_then(|f| f.to_vec1()).map_err(|e| e.to_string())?;
            Ok((name.clone(), t.dims().to_vec(), values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        })
        .collect::<Result<_, String>>()?;
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.as_str(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    safetensors::serialize(views, metadata).map_err(|e| e.to_string())
}

/// Named tensors and the file's string metadata.
pub type Decoded = (HashMap<String, Tensor>, HashMap<String, String>);

/// Reads every tensor (each must be f32) and the metadata.
pub fn decode(bytes: &[u8], device: &Device) -> Result<Decoded, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            if view.dtype() != Dtype::F32 {
                return Err(format!("tensor {name} is {:?}, expected F32", view.dtype()));
            }
            let values: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let t = Tensor::from_vec(values, view.shape(), device).map_err(|e| e.to_string())?;
            Ok((name, t))
        })
        .collect::<Result<_, String>>()?;
    Ok((tensors, metadata))
}
