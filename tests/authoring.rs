//! For connector authors: the manifest's JSON Schema, the conformance kit (`cde test`) on
//! every sample and on a connector that breaks each rule, and the dev loop (`cde dev`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cde::conformance::{Kit, Settings};
use cde::model::{Check, ConformanceReport, Manifest, Verdict};
use common::{config, image, root};

#[test]
fn the_committed_manifest_schema_is_fresh() {
    let path = root().join("openapi/manifest.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == cde::manifest::json_schema_text(),
        "{} is stale; regenerate it with `cargo run -- openapi --manifest-schema > openapi/manifest.schema.json`",
        path.display()
    );
}

/// Every manifest in the repository: the samples', the test connectors', the demo's.
fn manifests() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in [
        "sample-connectors",
        "tests/connectors",
        "orchestrator/src/demo",
    ] {
        let mut stack = vec![root().join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if path.is_dir() && !name.starts_with('.') && name != "wheelhouse" {
                    stack.push(path);
                } else if name.ends_with(".yaml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.lines().any(|l| l.starts_with("code:")) {
                        found.push(path);
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_manifest_in_the_repository_keeps_the_schema_and_a_broken_one_does_not() {
    let schema = cde::manifest::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let manifests = manifests();
    assert!(manifests.len() >= 10, "found only {manifests:?}");
    for path in &manifests {
        let text = std::fs::read_to_string(path).unwrap();
        let document: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        // And cde takes it.
        Manifest::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let good: serde_json::Value = serde_yaml_ng::from_str(
        "{code: x, label: X, type: data-source, image: i, command: c, options: [{name: N, field_type: checkbox, default: 0}]}",
    )
    .unwrap();
    assert!(validator.is_valid(&good));
    for broken in [
        "{code: x, label: X, type: data-source, image: i, command: c, colour: red}",
        "{code: x, label: X, type: source, image: i, command: c}",
        "{label: X, type: data-source, image: i, command: c}",
        "{code: x, label: X, type: data-source, image: i, command: c, options: [{name: N, field_type: knob}]}",
    ] {
        let document: serde_json::Value = serde_yaml_ng::from_str(broken).unwrap();
        assert!(!validator.is_valid(&document), "the schema takes {broken}");
    }
}

async fn kit(manifest: &Path, settings: Settings) -> ConformanceReport {
    let data = tempfile::tempdir().unwrap();
    let manifest = Manifest::load(manifest).unwrap();
    Kit::new(&config(data.path()), manifest, settings)
        .run(|result| eprintln!("{} {} {}", result.verdict, result.check, result.reason))
        .await
        .unwrap()
}

/// Every check that applies to a connector of its type passed; none was skipped but `allowed`.
fn passes(report: &ConformanceReport, skipped: &[Check]) {
    for result in &report.results {
        match result.verdict {
            Verdict::Pass => {}
            Verdict::Skip if skipped.contains(&result.check) => {}
            _ => panic!("{}: {:?}", report.connector, report.results),
        }
    }
    assert!(report.passed());
}

fn sample(dir: &str, manifest: &str) -> PathBuf {
    image(&format!("sample-connectors/{dir}"));
    root().join("sample-connectors").join(dir).join(manifest)
}

#[tokio::test]
async fn the_python_samples_pass_the_kit() {
    let source = kit(&sample("python", "manifest.yaml"), Settings::default()).await;
    // A source that is done in a blink cannot be stopped, and reads nothing.
    passes(&source, &[Check::Sigterm, Check::Exhaustion]);
    assert_eq!(source.results.len(), 8, "{:?}", source.results);
    let service = Settings {
        invalid: [("TARGET_COLUMN".to_owned(), "no_prefix".to_owned())].into(),
        ..Default::default()
    };
    let report = kit(&sample("python", "manifest-data-service.yaml"), service).await;
    passes(&report, &[]);
    assert_eq!(report.results.len(), 10, "{:?}", report.results);
    for manifest in ["manifest-export.yaml", "manifest-export-delta.yaml"] {
        let report = kit(&sample("python", manifest), Settings::default()).await;
        // They declare no option, and write no feedback for good products: nothing to
        // make invalid, nothing to refuse.
        passes(&report, &[Check::BadRequest, Check::InvalidOptions]);
        assert_eq!(report.results.len(), 9, "{manifest}: {:?}", report.results);
    }
}

#[tokio::test]
async fn the_rust_sample_passes_the_kit() {
    let report = kit(&sample("rust", "manifest.yaml"), Settings::default()).await;
    passes(&report, &[]);
    assert_eq!(report.results.len(), 10);
}

#[tokio::test]
async fn the_shell_sample_passes_the_kit() {
    // Slow enough to be stopped mid-run.
    let settings = Settings {
        options: [("COUNT", "3000"), ("DELAY_SECS", "1")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        invalid: [("COUNT".to_owned(), "abc".to_owned())].into(),
        ..Default::default()
    };
    let report = kit(&sample("shell", "manifest.yaml"), settings).await;
    passes(&report, &[Check::Exhaustion]);
    assert_eq!(report.results.len(), 8);
}

#[tokio::test]
async fn the_node_sample_passes_the_kit() {
    // Some of the 50 generated products (5.99 to 54.99) cost more than 30: the valid run
    // writes feedback, which the bad-request check then refuses.
    let settings = Settings {
        options: [("MAX_PRICE".to_owned(), "30".to_owned())].into(),
        invalid: [("MAX_PRICE".to_owned(), "-3".to_owned())].into(),
        ..Default::default()
    };
    let report = kit(&sample("node", "manifest.yaml"), settings).await;
    passes(&report, &[]);
    let valid = report.verdict(Check::ValidRun).unwrap();
    assert!(
        valid.reason.contains("rows of feedback"),
        "{}",
        valid.reason
    );
    let refused = report.verdict(Check::BadRequest).unwrap();
    assert!(
        refused.reason.contains("POST /output/feedback failed"),
        "{}",
        refused.reason
    );
    assert_eq!(report.results.len(), 9);
}

/// The misfit connector with FAULT=`fault`, judged by `check` alone.
async fn misfit(fault: &str, check: Check) -> (Verdict, String) {
    image("tests/connectors/misfit");
    let settings = Settings {
        options: [("FAULT".to_owned(), fault.to_owned())].into(),
        only: vec![check],
        ..Default::default()
    };
    let report = kit(
        &root().join("tests/connectors/misfit/manifest.yaml"),
        settings,
    )
    .await;
    let result = report.verdict(check).expect("the check was made").clone();
    (result.verdict, result.reason)
}

#[tokio::test]
async fn the_kit_fails_a_connector_for_each_rule_it_breaks() {
    for (fault, check, says) in [
        (
            "drop-rows",
            Check::KeepsRows,
            "25 of 50 input rows did not come back",
        ),
        (
            "stray-column",
            Check::ColumnPrefix,
            "without its prefix ___misfit: stray",
        ),
        ("empty-column", Check::Columns, "a column has an empty name"),
        ("reread", Check::Exhaustion, "`input` 5 more time(s)"),
        ("ignore-term", Check::Sigterm, "it was killed"),
        ("loop-on-400", Check::BadRequest, "kept writing"),
        (
            "ignore-400",
            Check::BadRequest,
            "exited 0 although 1 write(s)",
        ),
        ("hog", Check::Memory, "out of memory"),
    ] {
        let (verdict, reason) = misfit(fault, check).await;
        assert_eq!(verdict, Verdict::Fail, "{fault}: {reason}");
        assert!(reason.contains(says), "{fault}: {reason}");
        // The same check passes when the connector keeps the rule.
        let (verdict, reason) = misfit("none", check).await;
        assert_eq!(verdict, Verdict::Pass, "none/{check}: {reason}");
    }
    // A run that plants its own summary.json (a link to a host file) leaves the kit
    // nothing to read: the check is skipped, nothing is followed.
    let (verdict, reason) = misfit("forge-summary", Check::Exhaustion).await;
    assert_eq!(verdict, Verdict::Skip, "{reason}");
    assert!(reason.contains("no diagnostics"), "{reason}");
    // An unknown FAULT is an invalid option: it crashes with a traceback.
    let data = tempfile::tempdir().unwrap();
    let manifest = Manifest::load(&root().join("tests/connectors/misfit/manifest.yaml")).unwrap();
    let settings = Settings {
        invalid: [("FAULT".to_owned(), "nonsense".to_owned())].into(),
        only: vec![Check::InvalidOptions],
        ..Default::default()
    };
    let report = Kit::new(&config(data.path()), manifest, settings)
        .run(|_| {})
        .await
        .unwrap();
    let result = report.verdict(Check::InvalidOptions).unwrap();
    assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
    assert!(
        result.reason.contains("crashed with a trace"),
        "{}",
        result.reason
    );
    assert!(!report.passed());
}

/// The local stand-in of the shell sample's base image (`busybox:1.36` cannot be pulled here).
fn shell_base() -> String {
    // Made, if need be, by the sample's build, one build at a time.
    image("sample-connectors/shell");
    let out = Command::new("bash")
        .arg(root().join("scripts/make-base-image.sh"))
        .env("FLAVOUR", "shell")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// A copy of the shell sample under its own code `name` and image, removed when dropped.
struct DevFolder {
    dir: tempfile::TempDir,
    image: String,
}

impl DevFolder {
    fn new(name: &str) -> Self {
        let image = format!("cde-test/{name}:latest");
        let dir = tempfile::tempdir().unwrap();
        let sample = root().join("sample-connectors/shell");
        for file in ["Dockerfile", "connector.sh"] {
            std::fs::copy(sample.join(file), dir.path().join(file)).unwrap();
        }
        let manifest = std::fs::read_to_string(sample.join("manifest.yaml"))
            .unwrap()
            .replace("code: sample-shell-source", &format!("code: {name}"))
            .replace("image: cde-sample/shell:latest", &format!("image: {image}"));
        std::fs::write(dir.path().join("manifest.yaml"), manifest).unwrap();
        Self { dir, image }
    }

    fn set_default_count(&self, count: u32) {
        let path = self.dir.path().join("manifest.yaml");
        let manifest = std::fs::read_to_string(&path)
            .unwrap()
            .replace("default: \"5\"", &format!("default: \"{count}\""));
        std::fs::write(path, manifest).unwrap();
    }
}

impl Drop for DevFolder {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

fn cde_command(data: &Path) -> Command {
    let mut command = Command::new(common::executable());
    command
        .env("CDE_DATA_DIR", data)
        .env("CDE_RUN_NETWORK", common::TEST_NETWORK)
        .env("CDE_STOP_GRACE_SECS", "2");
    command
}

#[test]
fn cde_dev_builds_runs_and_shows_the_output_as_a_table() {
    let folder = DevFolder::new("dev-shell");
    let data = tempfile::tempdir().unwrap();
    let out = cde_command(data.path())
        .args([
            "dev",
            folder.dir.path().to_str().unwrap(),
            "--set",
            "COUNT=12",
        ])
        .args(["--build-arg", &format!("BASE_IMAGE={}", shell_base())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("output of dev-shell: 12 rows, 3 columns; the first 10"),
        "{stdout}"
    );
    for shown in ["id", "title", "price", "item-1", "item-10"] {
        assert!(stdout.contains(shown), "{shown}: {stdout}");
    }
    assert!(!stdout.contains("item-11"), "{stdout}");
    // The logs were streamed; the run went to the dev store, not the operator's.
    assert!(stdout.contains("info"), "{stdout}");
    assert!(data.path().join("dev/cde.db").is_file());
    let runs = cde_command(data.path()).args(["runs"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&runs.stdout).contains("dev-shell"),
        "the operator's runs list a dev run"
    );
}

#[test]
fn cde_dev_watch_runs_again_after_an_edit() {
    use std::io::BufRead;
    let folder = DevFolder::new("dev-watch");
    let data = tempfile::tempdir().unwrap();
    let mut child = cde_command(data.path())
        .args(["dev", folder.dir.path().to_str().unwrap(), "--watch"])
        .args(["--build-arg", &format!("BASE_IMAGE={}", shell_base())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |wanted: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(wanted) => return,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no line with {wanted:?} in {seen:#?}");
    };
    wait_for("output of dev-watch: 5 rows");
    folder.set_default_count(7);
    wait_for("output of dev-watch: 7 rows");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cde_test_prints_a_line_per_check_and_fails_when_one_fails() {
    image("tests/connectors/misfit");
    let manifest = root().join("tests/connectors/misfit/manifest.yaml");
    let data = tempfile::tempdir().unwrap();
    let out = cde_command(data.path())
        .args([
            "test",
            manifest.to_str().unwrap(),
            "--set",
            "FAULT=drop-rows",
        ])
        .args(["--only", "valid-run", "--only", "keeps-rows"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("PASS  valid-run"), "{stdout}");
    assert!(
        lines[1].starts_with("FAIL  keeps-rows") && lines[1].contains("25 of 50"),
        "{stdout}"
    );
    let out = cde_command(data.path())
        .args(["test", manifest.to_str().unwrap(), "--only", "keeps-rows"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The kit leaves nothing in the operator's data directory but its empty folder.
    let kit = data.path().join("conformance");
    let left: Vec<_> = std::fs::read_dir(&kit)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert_eq!(left, [0], "the kit left {}", kit.display());
    // A registered connector, by its code.
    let registered = cde_command(data.path())
        .args(["connector", "register", manifest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(registered.status.success(), "{registered:?}");
    let out = cde_command(data.path())
        .args([
            "test",
            "misfit",
            "--only",
            "health-check",
            "--only",
            "valid-run",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS")).count(),
        2,
        "{stdout}"
    );
    let unknown = cde_command(data.path())
        .args(["test", manifest.to_str().unwrap(), "--only", "speed"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("speed"));
}

#[test]
fn cde_test_interrupted_removes_its_runs() {
    use std::io::Write;
    image("tests/connectors/misfit");
    let dir = tempfile::tempdir().unwrap();
    // Its own code, so that no other test's runs are counted.
    let manifest = std::fs::read_to_string(root().join("tests/connectors/misfit/manifest.yaml"))
        .unwrap()
        .replace("code: misfit", "code: misfit-interrupted");
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, manifest).unwrap();
    // 20 batches of 1000 rows, half a second each: the valid run takes 10 s.
    let feed = dir.path().join("feed.jsonl");
    let mut file = std::fs::File::create(&feed).unwrap();
    for i in 0..20_000 {
        writeln!(file, "{{\"id\": \"{i}\"}}").unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let mut child = cde_command(data.path())
        .args(["test", path.to_str().unwrap(), "--only", "valid-run"])
        .args([
            "--set",
            "FAULT=ignore-term",
            "--input",
            feed.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = || {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                "label=cde.connector=misfit-interrupted",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while running().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no run started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(
        running(),
        "",
        "the interrupted kit left its run's container"
    );
    let kit = data.path().join("conformance");
    assert_eq!(
        std::fs::read_dir(&kit).unwrap().count(),
        0,
        "the kit left its folder"
    );
}
