//! Criterion bench of the fused logistic objective (filled in with the kernel).

fn main() {}
