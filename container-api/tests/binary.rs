//! The `container-api` binary: ready line on stdout, SIGTERM → summary, exit 0.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

#[tokio::test]
async fn prints_ready_line_and_shuts_down_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_container-api"))
        .args(["--listen", "127.0.0.1:0", "--run-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    let addr = ready
        .strip_prefix("container-api listening on ")
        .unwrap_or_else(|| panic!("unexpected ready line {ready:?}"))
        .trim_end();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert_ne!(addr.port(), 0);

    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{addr}/output/output"))
        .json(&json!({"data": [{"id": 1}, {"id": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout must carry only the ready line");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["files"]["output"],
        json!({"rows": 2, "columns": ["id"]})
    );
}

#[test]
fn openapi_subcommand_prints_the_committed_spec() {
    let output = Command::new(env!("CARGO_BIN_EXE_container-api"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(output.status.success());
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/container-api.json"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), committed);
}

#[test]
fn refuses_to_start_without_a_run_dir_or_with_broken_classifications() {
    let output = Command::new(env!("CARGO_BIN_EXE_container-api"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--run-dir"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("classifications.json"), "{not json").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_container-api"))
        .args(["--listen", "127.0.0.1:0", "--run-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no ready line");
    assert!(String::from_utf8_lossy(&output.stderr).contains("classifications.json"));
}
