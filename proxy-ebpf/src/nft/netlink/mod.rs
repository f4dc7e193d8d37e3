//! nf_tables over netlink for what changes often: element batches (flush,
//! delete, add: one atomic transaction) and the names of a table's chains
//! and sets. No nft process, no cache fetch: a one-service change costs a
//! single sendmsg. It must never touch a table other than the one it is
//! given, nor write rules (structure stays nft text, exec.rs).
//!
//! Hand-written: `rustables` and mullvad's `nftnl` are not in the build
//! (the latter needs libnftnl), and the few messages used here (batch
//! begin/end, NEWSETELEM, DELSETELEM, GETCHAIN/GETSET dumps) are small;
//! constants are from linux/netfilter/nf_tables.h and nfnetlink.h.

mod batch;
pub(crate) mod consts;
mod dump;
mod parse;
mod socket;
mod writer;

pub use batch::Batch;
pub use dump::TableNames;
pub use socket::{NetlinkError, Socket};
