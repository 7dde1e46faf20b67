//! `scripts/webhook-receiver`'s verifier (the official Python `standardwebhooks` package), run
//! on a loopback port: an implementation independent of ours checks every delivery's
//! signature. `scripts/test` installs it and names it in `BASALT_TEST_WEBHOOK_PYTHON` and
//! `BASALT_TEST_WEBHOOK_RECEIVER`.

use std::{
    io::BufRead,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

/// The receiver process (killed on drop) and the JSON lines it prints, one per delivery.
pub struct PythonReceiver {
    child: Child,
    lines: mpsc::Receiver<Value>,
    /// `host:port` it listens on.
    pub addr: String,
}

impl PythonReceiver {
    /// Starts it verifying with `secret` (`whsec_…`); answers 204 to a delivery whose
    /// signature verifies, 400 otherwise.
    pub fn start(secret: &str) -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run scripts/test, which installs the receiver")
            })
        };
        let (python, script) = (
            var("BASALT_TEST_WEBHOOK_PYTHON"),
            var("BASALT_TEST_WEBHOOK_RECEIVER"),
        );
        let mut child = Command::new(python)
            .args([&script, "--port", "0", "--secret", secret])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut receiver = Self {
            child,
            lines,
            addr: String::new(),
        };
        receiver.addr = receiver.next()["listening"]
            .as_str()
            .expect("the receiver says where it listens first")
            .to_owned();
        receiver
    }

    /// The next line it printed (a delivery: `verified`, `webhook_id`, `type`, `data`), within
    /// 30 s.
    pub fn next(&self) -> Value {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the webhook receiver printed nothing within 30 s")
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
