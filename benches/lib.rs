//! Criterion benches and peer-comparison scripts for trainyard; see `benches/README.md`.
