//! nftables for the proxy: the table's structure (skeleton, chains, rules)
//! as `nft -f` text, its elements as netlink batches, the generation id,
//! and the element types. Text for structure, not the `nftables` crate's
//! JSON: the crate has no verdict-map type, and nft parses text several
//! times faster; netlink for elements, which change on every endpoint
//! change and number ~110,000 at 10,000 services (README, proxy section).

pub mod element;
pub mod exec;
pub mod expr;
pub mod genid;
pub mod netlink;
pub mod skeleton;

pub use exec::{Nft, NftError};
