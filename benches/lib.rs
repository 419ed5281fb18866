//! Criterion benches, helper binaries and peer-comparison scripts for trainyard; the README's
//! "Performance" section says what each measures.

/// A seeded logistic problem: `rows × cols` f32 values in [-0.5, 0.5), ~55% positive labels,
/// and a smooth coefficient vector. The same data for every bench that measures the objective.
pub fn objective_data(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let x = (0..rows * cols).map(|_| next()).collect();
    let y = (0..rows).map(|_| if next() > 0.45 { 1.0 } else { 0.0 }).collect();
    let beta = (0..cols).map(|j| (j as f64 * 0.37).sin() * 0.1).collect();
    (x, y, beta)
}
