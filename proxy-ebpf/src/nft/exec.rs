//! Runs `nft -f -` in the proxy's namespace: one text batch is one atomic
//! transaction. It must never run nft in any other namespace.

use std::io::Write;
use std::process::Stdio;

use capstan_nodenet::Place;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("run nft: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("nft {what} failed: {stderr}")]
    Failed { what: String, stderr: String },
}

/// The nft binary, bound to a namespace.
#[derive(Debug, Clone)]
pub struct Nft {
    place: Place,
}

impl Nft {
    pub fn new(place: Place) -> Nft {
        Nft { place }
    }

    pub fn place(&self) -> &Place {
        &self.place
    }

    /// Applies `commands` (each one nft command line) as one transaction
    /// (all or nothing).
    pub fn apply(&self, commands: Vec<String>) -> Result<(), NftError> {
        let n = commands.len();
        let mut payload = String::with_capacity(commands.iter().map(|c| c.len() + 1).sum());
        for c in commands {
            payload.push_str(&c);
            payload.push('\n');
        }
        self.apply_text(&payload, n)
    }

    /// Applies `payload` (`n` nft command lines) as one transaction.
    pub fn apply_text(&self, payload: &str, n: usize) -> Result<(), NftError> {
        if n == 0 {
            return Ok(());
        }
        let mut child = self
            .place
            .command("nft")
            .map_err(NftError::Spawn)?
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(NftError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(payload.as_bytes())
                .map_err(NftError::Spawn)?;
        }
        let out = child.wait_with_output().map_err(NftError::Spawn)?;
        if !out.status.success() {
            // Debugging aid: the rejected transaction, to replay with `nft -f`.
            if let Ok(path) = std::env::var("CAPSTAN_PROXY_NFT_DUMP") {
                let _ = std::fs::write(path, payload);
            }
            let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            stderr.truncate(2000);
            return Err(NftError::Failed {
                what: format!("transaction of {n} commands"),
                stderr,
            });
        }
        Ok(())
    }

    /// `nft list <args>` as text. Even listing one chain makes nft 1.0.6
    /// fetch the whole table first (~1 s at 10,000 services): callers
    /// check the generation id (genid.rs) before listing.
    pub fn list(&self, args: &[&str]) -> Result<String, NftError> {
        let what = format!("list {}", args.join(" "));
        let out = self
            .place
            .command("nft")
            .map_err(NftError::Spawn)?
            .arg("list")
            .args(args)
            .output()
            .map_err(NftError::Spawn)?;
        if !out.status.success() {
            return Err(NftError::Failed {
                what,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
