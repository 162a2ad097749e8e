//! A `catalog-mirror serve` process for tests that need the real binary (signals,
//! crashes, several daemons on one database), with its output captured line by line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A daemon process with its stdout and stderr captured line by line.
pub struct Daemon {
    pub child: Child,
    output: Arc<Mutex<Vec<String>>>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

impl Daemon {
    /// Runs `catalog-mirror [--config FILE] serve` with only `env` (and PATH) in its
    /// environment, logging JSON, and waits until both listeners are ready.
    pub fn spawn(config: Option<&Path>, env: &[(&str, String)]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_catalog-mirror"));
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CATALOG_MIRROR_LOG__FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the daemon starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (output, tx) = (output.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line.clone());
                    output.lock().unwrap().push(line);
                }
            });
        }
        let (mut public, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while public.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "the daemon did not become ready:\n{}",
                    output.lock().unwrap().join("\n")
                );
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let addr = || event["addr"].as_str().and_then(|addr| addr.parse().ok());
            match event["message"].as_str() {
                Some("public listener ready") => public = addr(),
                Some("admin listener ready") => admin = addr(),
                _ => {}
            }
        }
        Daemon {
            child,
            output,
            public: public.unwrap(),
            admin: admin.unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The exit status, or `None` when it is still running after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
