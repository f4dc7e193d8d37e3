//! Lines (or JSON objects) a long-running kubectl prints, read on a thread
//! so a test waits for the next one with a deadline. It only reads: what
//! the output means is the suite's.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

/// Lines (or JSON objects) a long-running kubectl prints, read on a thread
/// so a test waits for the next one with a deadline; the child is killed on
/// drop.
pub struct Stream<T> {
    pub child: std::process::Child,
    rx: std::sync::mpsc::Receiver<T>,
    pub seen: Vec<T>,
}

impl<T: Clone + Send + 'static> Stream<T> {
    pub fn start(
        mut child: std::process::Child,
        read: impl FnOnce(std::process::ChildStdout, std::sync::mpsc::Sender<T>) + Send + 'static,
    ) -> Result<Self, Failed> {
        let out = child.stdout.take().ok_or("kubectl without stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || read(out, tx));
        Ok(Self {
            child,
            rx,
            seen: Vec::new(),
        })
    }

    /// Waits for an item `f` accepts; Err(true) when the stream ended
    /// first, Err(false) at the deadline.
    pub fn until(&mut self, timeout: Duration, f: impl Fn(&T) -> bool) -> Result<T, bool> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    let hit = f(&v);
                    self.seen.push(v.clone());
                    if hit {
                        return Ok(v);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(false),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(true),
            }
        }
    }

    pub fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut text);
        }
        text
    }
}

impl<T> Drop for Stream<T> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn lines(out: std::process::ChildStdout, tx: std::sync::mpsc::Sender<String>) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { return };
        if tx.send(line).is_err() {
            return;
        }
    }
}

pub fn json_objects(out: std::process::ChildStdout, tx: std::sync::mpsc::Sender<Value>) {
    for v in serde_json::Deserializer::from_reader(out).into_iter::<Value>() {
        let Ok(v) = v else { return };
        if tx.send(v).is_err() {
            return;
        }
    }
}
