//! The node's subnet file, as the plugin reads it: the contract type lives
//! in capstan-subnet-file, shared with the overlay that writes it. The
//! plugin must never write the file.

pub use capstan_subnet_file::{GatewayPrefix, SubnetFile, SubnetFileError};
