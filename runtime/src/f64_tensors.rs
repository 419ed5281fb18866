//! Safetensors files of f64 tensors, the format of logistic coefficients (`model.safetensors`
//! of logistic runs, `groups.safetensors`): writing them deterministically, and reading one tensor
//! back with errors that name the file.

use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};

/// A safetensors file of f64 tensors `(name, shape, values)`, little-endian as the format says.
pub(crate) fn to_bytes(tensors: &[(&str, Vec<usize>, &[f64])]) -> Result<Vec<u8>> {
    let internal = |e: safetensors::SafeTensorError| Error::Internal(format!("serializing weights: {e}"));
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            Ok((*name, TensorView::new(Dtype::F64, shape.clone(), b).map_err(internal)?))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(internal)
}

/// Tensor `name` of `st` as f64 values; anything else is a data error naming `path`.
pub(crate) fn read(st: &SafeTensors<'_>, name: &str, path: &Path) -> Result<Vec<f64>> {
    let bad = |what: String| Error::data(format!("{}: {what}", path.display()));
    let t = st.tensor(name).map_err(|e| bad(format!("tensor {name}: {e}")))?;
    if t.dtype() != Dtype::F64 {
        return Err(bad(format!("tensor {name} is {:?}, expected F64", t.dtype())));
    }
    Ok(t.data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}
