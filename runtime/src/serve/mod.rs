//! `trainyard serve`: the JSON API in front of the trainer (work in progress for issue 19: the
//! state store so far).

pub mod policy;
pub mod state;
pub mod local;
