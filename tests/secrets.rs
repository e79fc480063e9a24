//! Secrets off the disk: password values are sealed in the store and gone from a run's
//! record once it ends, and the data directory is private to cde's user.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cde::model::RunStatus;
use cde::model::{Pipeline, PipelineStatus, Step};
use cde::Cde;
use common::*;
use sqlx::Connection;

/// Every file below `dir`, symbolic links not followed.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(files(&path));
        } else if meta.is_file() {
            found.push(path);
        }
    }
    found
}

/// The value as it would appear raw, JSON-escaped, in the halves the `behave` connector
/// prints on two lines, or base64-encoded at any alignment in a longer text.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let escaped = serde_json::to_string(value).unwrap();
    let half = value.len() / 2;
    let mut forms = vec![
        value.as_bytes().to_vec(),
        escaped.as_bytes()[1..escaped.len() - 1].to_vec(),
        value.as_bytes()[..half].to_vec(),
        value.as_bytes()[half..].to_vec(),
    ];
    for shift in 0..3 {
        let mut bytes = vec![b'x'; shift];
        bytes.extend_from_slice(value.as_bytes());
        let encoded = BASE64.encode(&bytes);
        // Drop the quanta that also depend on the bytes around the value.
        let start = if shift == 0 { 0 } else { 4 };
        forms.push(encoded.as_bytes()[start..encoded.len() - 4].to_vec());
    }
    forms
}

/// Files among `paths` holding any of `secrets` in any form.
fn holders(paths: &[PathBuf], secrets: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).unwrap();
        for secret in secrets {
            for form in forms(secret) {
                if bytes.windows(form.len()).any(|w| w == form.as_slice()) {
                    found.push(format!(
                        "{} holds {}",
                        path.display(),
                        String::from_utf8_lossy(&form)
                    ));
                }
            }
        }
    }
    found
}

/// A value whose JSON-escaped form differs from it.
fn secret(label: &str) -> String {
    format!("{label}-{}-\"q\\", uuid::Uuid::new_v4().simple())
}

async fn raw(data_dir: &Path, query: &str, id: &str) -> String {
    let url = format!("sqlite://{}", data_dir.join("cde.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar(query)
        .bind(id)
        .fetch_one(&mut db)
        .await
        .unwrap()
}

/// A queued run (cancelled), a finished run of `behave` leaking its token, and a pipeline
/// with a password option that ran: the secrets they were given.
async fn leak(cde: &Cde, data_dir: &Path) -> Vec<String> {
    behave_image();
    cde.register_file(&behave_manifest()).await.unwrap();
    let (queued_token, run_token, pipeline_token) =
        (secret("queued"), secret("run"), secret("pipeline"));

    let queued = cde
        .submit(request(
            BEHAVE,
            &[("MODE", "leak-secret"), ("TOKEN", &queued_token)],
        ))
        .await
        .unwrap();
    let config = raw(
        data_dir,
        "SELECT config FROM runs WHERE id = $1",
        &queued.id,
    )
    .await;
    assert!(config.starts_with("enc:v1:"), "sealed: {config}");
    assert_eq!(
        cde.store.run(&queued.id).await.unwrap().unmasked_options["TOKEN"],
        queued_token,
        "opened for the run's executor"
    );
    assert_eq!(
        cde.cancel(&queued.id).await.unwrap().status,
        RunStatus::Cancelled
    );
    let config = raw(
        data_dir,
        "SELECT config FROM runs WHERE id = $1",
        &queued.id,
    )
    .await;
    assert_eq!(
        config,
        serde_json::to_string(&queued.options).unwrap(),
        "a cancelled run keeps its masked values only"
    );

    let run = cde
        .run(request(
            BEHAVE,
            &[("MODE", "leak-secret"), ("TOKEN", &run_token)],
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    // The connector did leak it every way; each line arrived, masked.
    let logs = cde.store.logs(&run.id, 0).await.unwrap();
    let messages: Vec<&str> = logs.iter().map(|(_, l)| l.message.as_str()).collect();
    for expected in [
        "the token is ********",
        "stdout token ********",
        "stderr token ********",
        "split token ********",
        "******** was split",
        r#"{"token": "********"}"#,
    ] {
        assert!(messages.contains(&expected), "{expected}: {messages:?}");
    }
    let config = raw(data_dir, "SELECT config FROM runs WHERE id = $1", &run.id).await;
    assert!(
        config.contains(r#""TOKEN":"********""#),
        "an ended run keeps no secret: {config}"
    );
    assert_eq!(
        cde.store.run(&run.id).await.unwrap().unmasked_options["TOKEN"],
        "********"
    );

    let pipeline = Pipeline {
        name: "leaky".into(),
        schedule: None,
        listeners: vec![],
        trigger: None,
        sources: vec![Step {
            connector: BEHAVE.into(),
            options: [
                ("MODE".to_owned(), "leak-secret".to_owned()),
                ("TOKEN".to_owned(), pipeline_token.clone()),
            ]
            .into(),
            limits: Default::default(),
            columns: None,
            connection: None,
        }
        .into()],
        services: vec![],
        exports: vec![],
    };
    cde.save_pipeline(&pipeline).await.unwrap();
    let definition = raw(
        data_dir,
        "SELECT definition FROM pipelines WHERE name = $1",
        "leaky",
    )
    .await;
    assert!(definition.starts_with("enc:v1:"), "sealed: {definition}");
    assert_eq!(cde.store.pipeline("leaky").await.unwrap(), pipeline);
    let pipeline_run = cde.run_pipeline("leaky", "manual").await.unwrap();
    assert_eq!(
        pipeline_run.status,
        PipelineStatus::Succeeded,
        "{pipeline_run:?}"
    );
    vec![queued_token, run_token, pipeline_token]
}

#[tokio::test]
async fn secrets_are_sealed_in_the_store_and_removed_when_a_run_ends() {
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    let secrets = leak(&cde, data.path()).await;

    // The database and its WAL (read while the store is open), and the key file.
    let store_files: Vec<PathBuf> = ["cde.db", "cde.db-wal", "cde.db-shm", "secret.key"]
        .iter()
        .map(|name| data.path().join(name))
        .filter(|path| path.exists())
        .collect();
    assert!(store_files.iter().any(|p| p.ends_with("cde.db-wal")));
    assert_eq!(holders(&store_files, &secrets), Vec::<String>::new());
    // Every other file but the connector-written log files, which the Container API masks.
    let others: Vec<PathBuf> = files(data.path())
        .into_iter()
        .filter(|path| !path.ends_with(container_api::LOG_FILE))
        .collect();
    assert_eq!(holders(&others, &secrets), Vec::<String>::new());

    // Another key opens nothing.
    drop(cde);
    let other = open(cde::Config {
        secret_key: Some("ab".repeat(32)),
        ..config(data.path())
    })
    .await;
    let err = other.store.pipeline("leaky").await.unwrap_err().to_string();
    assert!(
        err.contains("cannot decrypt a pipeline definition"),
        "{err}"
    );
}

/// The whole property: no file of the data directory holds a password value. It needs
/// the Container API to mask secrets before they reach `logs.jsonl`.
#[tokio::test]
async fn secrets_never_reach_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    let secrets = leak(&cde, data.path()).await;
    assert_eq!(holders(&files(data.path()), &secrets), Vec::<String>::new());
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// What is wrong with the modes below `dir` (`data_dir` is the data directory).
fn loose_modes(data_dir: &Path, dir: &Path, wrong: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(data_dir).unwrap();
        let parts: Vec<_> = relative.iter().collect();
        // A run directory stays open to the container's user: runs/ above it guards it.
        if parts.len() >= 2 && parts[0] == "runs" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = mode(&path);
        if meta.is_dir() {
            if mode != 0o700 {
                wrong.push(format!("{} is {mode:o}", relative.display()));
            }
            loose_modes(data_dir, &path, wrong);
        } else if parts[0] == "bin" {
            // Executed by the container's user through a bind mount; bin/ guards it.
            if mode != 0o755 {
                wrong.push(format!("{} is {mode:o}", relative.display()));
            }
        } else if mode != 0o600 && mode != 0o400 {
            wrong.push(format!("{} is {mode:o}", relative.display()));
        }
    }
}

fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_data_dir_is_private_to_cdes_user() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = parent.path().join("data");
    // As an older cde left it: open to everyone.
    std::fs::create_dir_all(data_dir.join("datasets")).unwrap();
    for dir in [&data_dir, &data_dir.join("datasets")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let cde = open(config(&data_dir)).await;
    let secrets = leak(&cde, &data_dir).await;

    let mut wrong = Vec::new();
    loose_modes(&data_dir, &data_dir, &mut wrong);
    assert_eq!(wrong, Vec::<String>::new());
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("runs")), 0o700);
    for file in ["cde.db", "cde.db-wal", "cde.db-shm", "secret.key"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    assert!(data_dir.join("pipeline-runs").read_dir().unwrap().count() > 0);
    assert!(files(&data_dir.join("datasets")).len() >= 2);

    if !nix_is_root() {
        eprintln!("the other-user part is skipped: it needs root to switch to `nobody`");
        return;
    }
    assert!(as_nobody(&["ls", parent.path().to_str().unwrap()])
        .status
        .success());
    let run = cde
        .store
        .runs(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|run| run.status.is_finished())
        .unwrap();
    let log = Path::new(&run.run_dir).join(container_api::LOG_FILE);
    assert_eq!(mode(&log), 0o666, "the container's user may be any uid");
    for args in [
        vec!["ls", data_dir.to_str().unwrap()],
        vec!["cat", data_dir.join("cde.db").to_str().unwrap()],
        vec!["cat", data_dir.join("secret.key").to_str().unwrap()],
        vec!["cat", log.to_str().unwrap()],
        vec!["sh", "-c", &format!("echo forged >> {}", log.display())],
    ] {
        let output = as_nobody(&args);
        assert!(
            !output.status.success(),
            "nobody ran {args:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(secrets.iter().all(|s| !stdout.contains(s.as_str())));
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
