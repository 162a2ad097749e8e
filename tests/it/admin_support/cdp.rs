//! A small Chrome DevTools Protocol client for the admin page test: starts Debian's
//! headless Chromium on a fresh profile, attaches to its page over WebSocket and drives
//! it with real input events (mouse clicks, typed text) and `Runtime.evaluate`.
//!
//! Why not a CDP crate: `chromiumoxide` works with tokio and a system Chromium, but its
//! generated protocol crate is very large to compile on the shared 2-core machines; the
//! test needs five protocol methods.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The browser binary: `$CHROMIUM`, else Debian's.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}

/// A headless Chromium process, killed when dropped, with its profile removed.
pub struct Browser {
    child: tokio::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn launch() -> Browser {
        let path = chromium_path();
        assert!(
            path.exists(),
            "{} is missing: install Debian's chromium (scripts/test-deps does) or set CHROMIUM",
            path.display()
        );
        let profile = tempfile::tempdir().expect("profile directory");
        let child = tokio::process::Command::new(&path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", path.display()));
        let port = wait_for_port(profile.path()).await;
        Browser {
            child,
            port,
            _profile: profile,
        }
    }

    /// The browser's first tab.
    pub async fn page(&self) -> Page {
        let list_url = format!("http://127.0.0.1:{}/json/list", self.port);
        for _ in 0..100 {
            if let Ok(response) = reqwest::get(&list_url).await
                && let Ok(targets) = response.json::<Vec<Value>>().await
                && let Some(ws) = targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                let (socket, _) = tokio_tungstenite::connect_async(ws)
                    .await
                    .expect("connect to the page");
                let mut page = Page { socket, next_id: 0 };
                page.call("Page.enable", json!({})).await;
                page.call("Runtime.enable", json!({})).await;
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Chromium lists no page at {list_url}");
    }

    pub async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Chromium writes the port it chose to `DevToolsActivePort` in the profile.
async fn wait_for_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some(port) = text
                .lines()
                .next()
                .and_then(|line| line.trim().parse().ok())
        {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Chromium did not open its DevTools port within 30 s");
}

/// One tab, driven over its WebSocket.
pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Sends a command and waits for its answer (events in between are skipped).
    pub async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::text(message))
            .await
            .expect("send a CDP command");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(message) = self.socket.next().await {
                let Ok(Message::Text(text)) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).expect("CDP sends JSON");
                if value["id"] == id {
                    return value;
                }
            }
            panic!("the page's socket closed");
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"));
        match answer.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(answer["result"].clone()),
        }
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    /// Evaluates `expression` in the page; `Err` when it threw (or the page was navigating).
    pub async fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self
            .try_call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await
            .map_err(|error| error.to_string())?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(exception.to_string());
        }
        Ok(result["result"]["value"].clone())
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|error| panic!("{expression} threw: {error}"))
    }

    /// Polls until `expression` is `true`; false after `timeout`.
    pub async fn wait_until(&mut self, expression: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.try_eval(expression).await == Ok(Value::Bool(true)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Loads `url` and waits for the document to be complete.
    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        let loaded = format!(
            "document.readyState === 'complete' && location.href.startsWith({})",
            serde_json::to_string(url).unwrap()
        );
        assert!(
            self.wait_until(&loaded, Duration::from_secs(20)).await,
            "{url} did not load"
        );
    }

    /// Clicks the middle of the element `selector` names, as a mouse would.
    pub async fn click(&mut self, selector: &str) {
        let script = format!(
            "(() => {{ const el = document.querySelector({0}); if (!el) return null; el.scrollIntoView({{block: 'center'}}); \
             const r = el.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
            serde_json::to_string(selector).unwrap()
        );
        let point = self.eval(&script).await;
        let (x, y) = match point.as_array() {
            Some(xy) if xy.len() == 2 => (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap()),
            _ => panic!("nothing to click at {selector}"),
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Focuses `selector`, clears it and types `text` into it.
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        let selector = serde_json::to_string(selector).unwrap();
        let focused = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({selector}); if (!el) return false; el.value = ''; el.focus(); return document.activeElement === el; }})()"
            ))
            .await;
        assert_eq!(focused, Value::Bool(true), "cannot focus {selector}");
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// The text of the first element `selector` names (`None` when there is none).
    pub async fn text(&mut self, selector: &str) -> Option<String> {
        let script = format!(
            "(() => {{ const el = document.querySelector({}); return el ? el.textContent : null; }})()",
            serde_json::to_string(selector).unwrap()
        );
        self.eval(&script).await.as_str().map(str::to_string)
    }

    /// How many elements `selector` names.
    pub async fn count(&mut self, selector: &str) -> i64 {
        let script = format!(
            "document.querySelectorAll({}).length",
            serde_json::to_string(selector).unwrap()
        );
        self.eval(&script).await.as_i64().unwrap()
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}
