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

/// `container-api … -- COMMAND`: the connector runs as a child against the API.
fn supervise(dir: &std::path::Path, grace: &str, script: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_container-api"));
    command
        .args(["--listen", "127.0.0.1:0", "--grace", grace, "--run-dir"])
        .arg(dir)
        .args(["--", "sh", "-c", script])
        .env_remove("CONTAINER_API_URL")
        .env_remove("CDE_WORK_DIR");
    command
}

fn summary(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn supervises_a_connector_and_exits_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    // The connector finds the API listening and its variables set, and owns stdout.
    let script = r#"echo "work=$CDE_WORK_DIR"
        curl -sf -H 'content-type: application/json' -d '{"data":[{"id":1},{"id":2}]}' "$CONTAINER_API_URL/output/output" >/dev/null || exit 9
        exit 3"#;
    let output = supervise(dir.path(), "10", script).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("work={}/work\n", dir.path().display())
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(
        summary(dir.path())["files"]["output"],
        json!({"rows": 2, "columns": ["id"]})
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output/output.jsonl")).unwrap(),
        "{\"id\":1}\n{\"id\":2}\n"
    );
}

#[test]
fn a_command_that_cannot_start_exits_127_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_container-api"))
        .args(["--listen", "127.0.0.1:0", "--run-dir"])
        .arg(dir.path())
        .args(["--", "/no/such/connector"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot start the connector command `/no/such/connector`"),
        "{stderr}"
    );
    assert!(dir.path().join("summary.json").exists());
}

#[test]
fn sigterm_reaches_the_connector_and_one_ignoring_it_is_killed_after_the_grace() {
    for (script, grace, expected) in [
        // Handles SIGTERM: ends on its own with its status.
        (
            "trap 'echo bye; exit 5' TERM; echo ready; while :; do sleep 0.1; done",
            "10",
            5,
        ),
        // Ignores it: killed after one second, 128 + SIGKILL.
        (
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
            "1",
            137,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = supervise(dir.path(), grace, script)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        let started = std::time::Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(child.wait().unwrap().code(), Some(expected), "{script}");
        if expected == 137 {
            let waited = started.elapsed();
            assert!(
                waited >= std::time::Duration::from_millis(900)
                    && waited < std::time::Duration::from_secs(8),
                "killed after {waited:?}"
            );
        }
        // The summary tells the conformance kit how it ended.
        let signal = &summary(dir.path())["diagnostics"]["signal"];
        assert_eq!(
            signal["killed"],
            json!(expected == 137),
            "{script}: {signal}"
        );
        assert!(signal["after_ms"].as_u64().is_some(), "{signal}");
    }
}

#[test]
fn secret_values_are_masked_in_stdout_stderr_and_logs_and_hidden_from_the_connector() {
    let secret = "S3cr\"et\\Väl-42";
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import json, os, sys, urllib.request
s = os.environ["THE_SECRET"]
print("mask-env:", "CDE_MASK" in os.environ, flush=True)
for out in (sys.stdout, sys.stderr):
    out.write("raw " + s + " end\n")
    out.write("json " + json.dumps({"p": s}) + "\n")
    out.write("compact " + json.dumps(s, ensure_ascii=False) + "\n")
    out.write("split " + s[:5] + "\n" + s[5:] + " after\n")
    out.flush()
def log(body):
    request = urllib.request.Request(
        os.environ["CONTAINER_API_URL"] + "/logs/info",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).read()
log({"message": "raw " + s, "context": {"p": s, "list": [s, "x"], s: 1}})
log({"message": "json " + json.dumps({"p": s})})
log({"message": "split " + s[:4]})
log({"message": s[4:] + " rest"})
sys.stdout.write("no newline " + s)
"#;
    let mut command = Command::new(env!("CARGO_BIN_EXE_container-api"));
    command
        .args(["--listen", "127.0.0.1:0", "--run-dir"])
        .arg(dir.path())
        .args(["--", "python3", "-c", script])
        .env_remove("CONTAINER_API_URL")
        .env_remove("CDE_WORK_DIR")
        .env("THE_SECRET", secret)
        .env("CDE_MASK", json!([secret, "", "ab1"]).to_string());
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines = "raw ******** end\njson {\"p\": \"********\"}\ncompact \"********\"\nsplit ********\n******** after\n";
    assert_eq!(
        stdout,
        format!("mask-env: False\n{lines}no newline ********")
    );
    assert_eq!(stderr, lines);
    let logs = std::fs::read_to_string(dir.path().join("logs.jsonl")).unwrap();
    let logged: Vec<(Value, Value)> = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|l| (l["message"].clone(), l["context"].clone()))
        .collect();
    assert_eq!(
        logged,
        vec![
            (
                json!("raw ********"),
                json!({"p": "********", "list": ["********", "x"], "********": 1})
            ),
            (json!("json {\"p\": \"********\"}"), Value::Null),
            (json!("split ********"), Value::Null),
            (json!("******** rest"), Value::Null),
        ]
    );
    // No piece of the value that could identify it, in any of its forms.
    let forms = [
        secret.to_string(),
        serde_json::to_string(secret).unwrap(),
        r#""S3cr\"et\\V\u00e4l-42""#.to_string(),
    ];
    for text in [&stdout, &stderr, &logs] {
        for form in &forms {
            let chars: Vec<char> = form.trim_matches('"').chars().collect();
            for piece in chars.windows(4) {
                let piece: String = piece.iter().collect();
                assert!(!text.contains(&piece), "{piece:?} in {text}");
            }
        }
    }
}
