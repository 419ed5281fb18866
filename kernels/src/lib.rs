//! trainyard's numeric kernels: plain functions over slices, the hot loops of training.
//!
//! | job | function |
//! | --- | --- |
//! | logistic loss and gradient in one pass over a design (dense f32 block plus categorical codes) | [`logistic::loss_grad`] |
//! | the same, computed the obvious way, as the reference in tests | [`logistic::loss_grad_reference`] |
//! | probabilities for rows of the design | [`logistic::predict_proba`] |
//! | the diagonal of the one-hot Gram matrix, for the solver's preconditioner | [`logistic::second_moments`] |
//! | numerically stable log(1 + e^z) and sigmoid | [`logistic::softplus`], [`logistic::sigmoid`] |
//! | vectorizable exp, log1p, softplus and sigmoid over eight lanes | [`lanes`] |
//! | the objective behind one interface, on the CPU or a GPU | [`logistic::LossGrad`], [`logistic::Cpu`], [`cuda::logistic::Objective`] |
//! | whether a GPU is usable, and NVRTC compilation of the CUDA sources | [`cuda::probe`], [`cuda::compile`] |
//! | multinomial (softmax) cross-entropy and its gradient in one pass, its reference, class probabilities | [`softmax::loss_grad`], [`softmax::loss_grad_reference`], [`softmax::predict_proba`] |
//! | MLP hidden layer: bias + ReLU + dropout, and its gradient, each in one pass | [`mlp::bias_relu_dropout`], [`mlp::bias_relu_dropout_grad`] |
//!
//! Every kernel splits rows into fixed-size blocks processed in parallel (rayon) and combines the
//! per-block results in block order, so results are bitwise identical whatever the thread count.

#![warn(missing_docs)]

pub mod cuda;
pub mod lanes;
pub mod logistic;
pub mod mlp;
pub mod softmax;
