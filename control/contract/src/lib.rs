//! capstan-control-contract: what the API server and the controllers agree
//! on without importing each other — the deletion finalizers and the kinds
//! the garbage collector serves. Plain data: it must never depend on
//! capstan-apiserver or capstan-controllers.

pub mod finalizers;
pub mod owner_kinds;
