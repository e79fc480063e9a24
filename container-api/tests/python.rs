//! The committed spec, used as published: a Python client generated from it with
//! openapi-python-client writes, reads and logs; schemathesis fuzzes the real
//! binary from it and no request may produce a 5xx.
//!
//! Both tools are installed once into a virtualenv under the target dir (reused by
//! later runs). Every external command runs under a time limit.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const REQUIREMENTS: &[&str] = &["openapi-python-client==0.29.1", "schemathesis==4.32.5"];
const INSTALL_LIMIT: Duration = Duration::from_secs(150);
const FUZZ_LIMIT: Duration = Duration::from_secs(120);
const FUZZ_EXAMPLES: &str = "100";
const FUZZ_SEED: &str = "20251123";

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/container-api.json")
}

/// Runs `command` to completion, killing it after `limit`; panics on timeout.
fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            panic!("{command:?} did not finish within {limit:?}; output so far:\n{stdout}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn check(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The virtualenv's python, created on first use. Built in a private directory and
/// renamed into place, so concurrent test runs never see (or use) a half-made one.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let name: String = REQUIREMENTS
            .join("-")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{name}"));
        let python = venv.join("bin/python");
        if python.exists() {
            return python;
        }
        let building = venv.with_extension(format!("building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        check(
            &run_bounded(
                Command::new("python3").args(["-m", "venv"]).arg(&building),
                Duration::from_secs(120),
            ),
            "python3 -m venv (on Debian/Ubuntu: apt-get install python3-venv)",
        );
        check(
            &run_bounded(
                Command::new(building.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .args(["--timeout", "60", "--retries", "3"])
                    .args(REQUIREMENTS),
                INSTALL_LIMIT,
            ),
            "pip install",
        );
        // Losing the race to another run is fine: its venv is as good as ours.
        if std::fs::rename(&building, &venv).is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        assert!(python.exists(), "no {}", python.display());
        python
    })
}

fn prepare_run_dir(run_dir: &Path) {
    let records: String = (0..40)
        .map(|i| {
            format!(
                "{}\n",
                json!({"id": i.to_string(), "title": format!("product {i}"), "shoe_size": "42", "___score": i})
            )
        })
        .collect();
    for kind in ["input", "new", "modified", "unchanged", "deleted"] {
        write_inputs(run_dir, &[(kind, &records)]);
    }
    std::fs::write(
        run_dir.join("classifications.json"),
        json!([{"classification-id": 12, "classification-path": "Apparel > Shoes", "columns": ["shoe_size"]}])
            .to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(run_dir.join("work")).unwrap();
    std::fs::write(run_dir.join("work/export.csv"), "id;title\n1;shoe\n").unwrap();
}

#[test]
fn generated_python_client_writes_reads_and_logs() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    write_inputs(
        &run_dir,
        &[(
            "input",
            "{\"id\":\"a\",\"___h\":1}\n{\"id\":\"b\",\"___h\":2}\n{\"id\":\"c\",\"___h\":3}\n",
        )],
    );

    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "project_name_override: cde-container-api-client\npackage_name_override: cde_client\npost_hooks: []\n",
    )
    .unwrap();
    check(
        &run_bounded(
            Command::new(python)
                .args([
                    "-m",
                    "openapi_python_client",
                    "generate",
                    "--meta",
                    "none",
                    "--path",
                ])
                .arg(spec_path())
                .arg("--config")
                .arg(&config)
                .arg("--output-path")
                .arg(dir.path().join("cde_client")),
            Duration::from_secs(120),
        ),
        "openapi-python-client generate",
    );

    let sidecar = Sidecar::start(&run_dir, &[]);
    let output = run_bounded(
        Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/roundtrip.py"))
            .env("CONTAINER_API_URL", sidecar.url())
            .env("CDE_WORK_DIR", run_dir.join("work"))
            .env("PYTHONPATH", dir.path())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(60),
    );
    check(&output, "roundtrip.py");
    let mut seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    // The copy may be done already by the time the client asks.
    let process = seen.as_object_mut().unwrap().remove("process").unwrap();
    assert!(
        process == json!([true, "pending"]) || process == json!([true, "success"]),
        "{process}"
    );
    assert_eq!(
        seen,
        json!({
            "ping": "pong",
            "write": [201, "Written successfully."],
            "write_empty": [400, {"data": "This value should be an array of items."}],
            "feedback": "Written successfully.",
            "close": 204,
            "after_close": [400, {"type": "This output file has been closed."}],
            "count": 3,
            "next": {"id": "a"},
            "batch": [{"id": "b", "___h": "2"}, {"id": "c", "___h": "3"}],
            "exhausted_batch": [],
            "exhausted_next": 204,
            "restart": "successful request",
            "after_restart": {"id": "a"},
            "missing_stream": "Requested file not provided.",
            "bad_size": {"size": "This value should be between 1 and 1000."},
            "log": "Written successfully.",
            "log_php_context": "Written successfully.",
            "log_blank": {"message": "This value should not be blank."},
            "classifications": [],
        })
    );

    let (exited, stderr) = sidecar.stop();
    assert!(exited, "{stderr}");
    assert_eq!(
        read_lines(&output_path(&run_dir, "output")),
        vec![
            json!({"id": "1", "taxon_0_id": 11, "taxon_0_name": "t"}),
            json!({"id": "2", "price": 9.5}),
        ]
    );
    let logs: Vec<(Value, Value, Value)> = read_lines(&run_dir.join("logs.jsonl"))
        .into_iter()
        .map(|l| {
            (
                l["level"].clone(),
                l["message"].clone(),
                l["context"].clone(),
            )
        })
        .collect();
    assert_eq!(
        logs,
        vec![
            (json!("notice"), json!("from python"), json!({"records": 2})),
            (json!("report"), json!("empty context"), json!([])),
        ]
    );
    let summary = container_api::Summary::read(&run_dir).unwrap();
    assert_eq!(summary.files["output"].rows, 2);
    assert_eq!(summary.files["feedback"].rows, 1);
    assert_eq!(
        std::fs::read(run_dir.join("storage/internal/kept/export.csv")).unwrap(),
        b"id;title\n1;shoe\n"
    );
}

#[test]
fn schemathesis_finds_no_server_error() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    prepare_run_dir(&run_dir);
    let sidecar = Sidecar::start(&run_dir, &[]);
    let seed = std::env::var("CDE_FUZZ_SEED").unwrap_or_else(|_| FUZZ_SEED.to_string());
    let started = Instant::now();
    // One worker: several share a CPython AST cache that is not thread safe on 3.11.
    let output = run_bounded(
        Command::new(python)
            .args(["-m", "schemathesis.cli", "run"])
            .arg(spec_path())
            .args(["--url", &sidecar.url()])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,negative_data_rejection",
            ])
            .args(["--max-examples", FUZZ_EXAMPLES, "--seed", &seed])
            .args(["--workers", "1", "--request-timeout", "10", "--no-color"])
            .current_dir(dir.path()),
        FUZZ_LIMIT,
    );
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("schemathesis (seed {seed}) took {:?}", started.elapsed());
    check(&output, "schemathesis");
    let generated = report
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no totals in the report:\n{report}"));
    eprintln!("{}", generated.trim());
    assert!(generated.contains("passed"), "{report}");

    // The server survived all of it and shuts down cleanly.
    let (exited, stderr) = sidecar.stop();
    assert!(exited, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    container_api::Summary::read(&run_dir).unwrap();
}
