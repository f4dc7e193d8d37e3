//! A Unix socket that forwards to another one, so a test can take
//! containerd away from one agent (and only from it). It knows nothing of
//! what passes through.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Unix socket that forwards every connection to `target`; `close`
/// drops the listener and every open connection.
pub struct SocketProxy {
    path: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<std::os::unix::net::UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketProxy {
    pub fn start(path: &Path, target: &Path) -> std::io::Result<Self> {
        use std::os::unix::net::{UnixListener, UnixStream};
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (stop2, conns2, target) = (stop.clone(), conns.clone(), target.to_path_buf());
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((down, _)) = listener.accept() else {
                    // Non-blocking accept: poll for new clients and the stop flag.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let Ok(up) = UnixStream::connect(&target) else {
                    continue;
                };
                let _ = down.set_nonblocking(false);
                let pairs = [
                    (down.try_clone(), up.try_clone()),
                    (up.try_clone(), down.try_clone()),
                ];
                for (mut from, mut to) in pairs
                    .into_iter()
                    .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                if let Ok(mut c) = conns2.lock() {
                    c.push(down);
                    c.push(up);
                }
            }
        });
        Ok(SocketProxy {
            path: path.to_path_buf(),
            stop,
            conns,
            thread: Some(thread),
        })
    }

    pub fn close(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(mut c) = self.conns.lock() {
            for s in c.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.close();
    }
}
