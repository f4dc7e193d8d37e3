//! Pod status: computed from container states (`compute`) and written to
//! the API for pods that came from it (`api`, with the final delete and
//! the reads of referenced ConfigMaps and Secrets). Index only.

pub mod api;
pub mod compute;
