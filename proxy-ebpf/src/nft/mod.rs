//! nftables as `nft -f` text: expression builders, the table's fixed
//! skeleton, and running nft inside a chosen network namespace. Text, not
//! the `nftables` crate's JSON: the crate has no verdict-map type, and nft
//! parses and commits text batches several times faster.

pub mod exec;
pub mod expr;
pub mod genid;
pub mod skeleton;

pub use exec::{Nft, NftError};
