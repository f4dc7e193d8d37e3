//! The cluster's certificates and credentials on disk: `capstan-control
//! init` makes a CA, the API server's serving certificate, client
//! certificates for the admin and each node, a token file and kubeconfigs.
//! It never replaces a file that exists: re-running adds what is missing and
//! keeps the CA, so issued credentials stay valid.
//! An index: each concern has its file.

mod error;
mod init;
mod issue;
mod layout;
mod report;

pub use error::Error;
pub use init::{first_service_ip, init, InitOptions};
pub use issue::{Ca, IssuedPair};
pub use layout::Layout;
pub use report::InitReport;
