//! cde as one static executable: copied anywhere, it runs connectors with nothing beside
//! it; it refuses what cannot work (a dynamically linked executable, a data directory
//! the engine cannot mount) with one line and status 2; and the build scripts' long steps
//! are never silent.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TEST_NETWORK;

/// `cde ARGS` with its own data directory, out of the source tree, and nothing of cargo's
/// in its environment.
fn cde(executable: &Path, data_dir: &Path, args: &[&str]) -> Output {
    Command::new(executable)
        .args(args)
        .current_dir(data_dir.parent().unwrap())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CDE_DATA_DIR", data_dir)
        .env("CDE_RUN_NETWORK", TEST_NETWORK)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The one line of standard error of a command that failed with status 2.
fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{}", text(out));
    stderr
}

/// A copy of the cde executable in a folder of its own, as a user would install it.
fn installed_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("cde");
    std::fs::copy(common::executable(), &copy).unwrap();
    copy
}

#[test]
fn a_copied_cde_runs_the_demo_with_nothing_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let copy = installed_copy(dir.path());
    let data = dir.path().join("data");

    let out = cde(&copy, &data, &["demo", "--connector", "builtin"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cde demo: registered cde-demo-source version 1"),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("cde demo: "), "{}", text(&out));
    assert!(stderr.contains(" in total: image "), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("succeeded (exit code 0)"), "{}", text(&out));
    assert!(
        stdout.contains("demo connector wrote 3 records for demo"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("(3 rows)"), "{}", text(&out));

    // The executable the run mounted is the copy's bytes, under their hash.
    let installed: Vec<PathBuf> = std::fs::read_dir(data.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(installed.len(), 1, "{installed:?}");
    let name = installed[0].file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("cde-") && name.len() == 20, "{name}");
    assert!(std::fs::read(&installed[0]).unwrap() == std::fs::read(&copy).unwrap());

    // The same copy registers and runs any image; here the built-in connector's again,
    // through `cde connector register` and `cde run`.
    let manifest = dir.path().join("demo.yaml");
    std::fs::write(
        &manifest,
        "code: copied-demo\nlabel: Copied\ntype: data-source\nimage: cde-empty:1\n\
         command: /cde/bin/cde\narguments: [demo-connector]\nhealth_check: --health-check\n",
    )
    .unwrap();
    let out = cde(
        &copy,
        &data,
        &["connector", "register", manifest.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cde(&copy, &data, &["run", "copied-demo", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "succeeded", "{}", text(&out));
}

#[test]
fn a_dynamically_linked_executable_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(common::executable())
        .args(["demo", "--connector", "builtin"])
        .env("CDE_DATA_DIR", &data)
        .env("CDE_EXECUTABLE", "/bin/sh")
        .env("CDE_RUN_NETWORK", TEST_NETWORK)
        .output()
        .unwrap();
    let error = one_line_error(&out);
    assert!(
        error.contains("/bin/sh is not a statically linked executable"),
        "{error}"
    );
    assert!(error.contains("CDE_EXECUTABLE"), "{error}");
    let installed = std::fs::read_dir(data.join("bin"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(installed, 0, "nothing was installed");
}

/// The engine (a daemon outside this process's mount namespace) cannot see a data
/// directory on a file system mounted only inside it, as with a data directory at a
/// different path inside a container than outside.
#[test]
fn a_data_directory_the_engine_cannot_mount_is_refused_in_one_line() {
    let can_unshare = Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can_unshare {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to run `unshare --mount` (as root)"
        );
        eprintln!("skipped: `unshare --mount` needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs cde-test "$CDE_DATA_DIR" && exec "$0" demo --connector builtin"#)
        .arg(common::executable())
        .env("CDE_DATA_DIR", &data)
        .env("CDE_RUN_NETWORK", TEST_NETWORK)
        .output()
        .unwrap();
    let error = one_line_error(&out);
    assert!(
        error.contains(&format!(
            "the Docker engine cannot mount cde's data directory {}",
            data.display()
        )),
        "{error}"
    );
    assert!(
        error.contains("put CDE_DATA_DIR on the engine's host"),
        "{error}"
    );
    // The engine created nothing where it looked (a bind mount of a missing path is
    // refused, so no container either).
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}

/// `scripts/progress.sh`'s `run_step`: on a terminal, one line that counts the seconds
/// and shows the step's latest output; elsewhere the time it took; on failure the output.
#[test]
fn long_build_steps_show_progress() {
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("step.log");
    let step = format!(
        r#". '{}/scripts/progress.sh'; run_step "making things" '{}' sh -c 'echo first; sleep 2.5; echo second'"#,
        root.display(),
        log.display()
    );
    // `script` gives the step a terminal.
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("bash -c \"{}\"", step.replace('"', "\\\"")),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    for seconds in ["[1s] first", "[2s] first"] {
        assert!(
            screen.contains(&format!("\r\x1b[Kmaking things {seconds}")),
            "no {seconds:?} in {screen:?}"
        );
    }
    assert!(screen.contains("making things: done in "), "{screen:?}");

    let failing = Command::new("bash")
        .arg("-c")
        .arg(format!(
            r#". '{}/scripts/progress.sh'; run_step "breaking things" '{}' sh -c 'echo what went wrong; exit 3'"#,
            root.display(),
            log.display()
        ))
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert!(stderr.contains("what went wrong"), "{stderr}");
    assert!(
        stderr.contains("breaking things: failed after 0s (status 3"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r'),
        "no terminal, no status line: {stderr:?}"
    );
}
