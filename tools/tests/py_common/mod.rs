//! The independent Python implementations the tests compare with: the WebSocket server
//! (feeds/tests/py/ws_server.py, Python `websockets`) playing a script, killed when dropped; and
//! the one-shot reference helpers of tools/tests/py/ (eth-account, msgpack), JSON in, JSON out.
//! .ci/run installs the packages; a missing one fails the test saying how to install it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
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

/// Runs tools/tests/py/`script` with `request` as JSON on standard input (keys travel there,
/// never in argv) and returns the JSON it prints. `packages` names what the helper imports, for
/// the failure message.
pub fn python_json(script: &str, request: &serde_json::Value, packages: &str) -> serde_json::Value {
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 runs {path} (needs {packages}): {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("the helper reads its request");
    let out = child.wait_with_output().expect("the helper ends");
    assert!(
        out.status.success(),
        "{script} failed (python3 -m pip install {packages}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the helper prints JSON")
}
