//! The independent WebSocket server for the CLI tests: feeds/tests/py/ws_server.py (Python
//! `websockets`, installed by .ci/run) playing a script; killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Python server with `script` (see ws_server.py for the steps), optionally over TLS
/// with `(certfile, keyfile)`; returns it and its port.
pub fn python_server(script: &serde_json::Value, tls: Option<(&Path, &Path)>) -> (Proc, u16) {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../feeds/tests/py/ws_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&py).arg("--script").arg(script.to_string());
    if let Some((cert, key)) = tls {
        cmd.arg("--certfile").arg(cert).arg("--keyfile").arg(key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    reader.read_line(&mut line).expect("server prints its port");
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let port = match line.trim().parse() {
        Ok(p) => p,
        Err(_) => {
            let out = child.wait_with_output().expect("server output");
            panic!(
                "the Python websockets server did not start (pip install websockets): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    (Proc(child), port)
}
