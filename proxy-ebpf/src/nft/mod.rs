//! nftables as JSON: expression builders, the table's fixed skeleton, and
//! running `nft -j` inside a chosen network namespace. Written as raw JSON
//! (the `nftables` crate has no verdict-map type and cannot read them back).

pub mod exec;
pub mod expr;
pub mod skeleton;

pub use exec::{Nft, NftError};
