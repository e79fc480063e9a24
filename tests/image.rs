//! The cde image and compose.yaml, on the real engine.
//!
//! No image can be pulled here, so the image is the Dockerfile's `from-host` stage, made from
//! the `cde` this test was built with. Run as a server with the engine's socket and a data
//! directory mounted at the same path inside and out, it registers a connector and runs it
//! to success through the management API. compose.yaml starts that image alone on SQLite, and
//! with PostgreSQL from a stand-in image made from Debian's packages (`postgres:16` cannot be
//! pulled either).
//!
//! Everything a test makes on the engine carries its own id (in a label, a name or a compose
//! project) and is removed when the test ends, passed or failed. The stand-in PostgreSQL image
//! is kept, like the local Python base image, as a build cache (`cde.base=true`).

mod common;

use std::borrow::BorrowMut;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "image-test-token";
/// Where the image's server listens (its `CDE_LISTEN`).
const PORT: &str = "8780";
/// Records the behave connector writes in these tests.
const RECORDS: usize = 4;

// ---------------------------------------------------------------------------------------
// Commands

/// Runs `command` to success and gives its standard output; otherwise fails the test with
/// everything it printed.
fn ok(mut command: impl BorrowMut<Command>) -> String {
    let command = command.borrow_mut();
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `command` for its standard output, whatever its outcome (cleanup and diagnostics).
fn quietly(mut command: impl BorrowMut<Command>) -> String {
    command
        .borrow_mut()
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        })
        .unwrap_or_default()
}

/// `docker` with the words of `args`; more arguments, those with spaces, with `.arg`.
fn docker(args: &str) -> Command {
    let mut command = Command::new("docker");
    command.args(args.split_whitespace());
    command
}

/// The engine's socket on this machine, as it is mounted into the server's container.
fn socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

// ---------------------------------------------------------------------------------------
// What a test makes on the engine

/// One test's things on the engine, all carrying its id; removed on drop, whether the test
/// passed or not: containers (its own, its compose project's and its runs'), the run network,
/// the compose project's networks and volumes, and its images.
struct Made {
    id: String,
}

impl Made {
    fn new() -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        }
    }

    /// The label every container and image this test makes itself carries.
    fn label(&self) -> String {
        format!("cde.test.id={}", self.id)
    }

    fn image(&self) -> String {
        format!("cde-test/cde:{}", self.id)
    }

    /// The network the test's servers give their runs (`CDE_RUN_NETWORK`).
    fn run_network(&self) -> String {
        format!("cde-image-test-{}", self.id)
    }

    fn project(&self) -> String {
        format!("cdeimagetest{}", self.id)
    }

    /// `docker build` of the Dockerfile's `from-host` stage in `context`, labelled.
    fn build_from_host(&self, context: &Path, tag: &str) {
        ok(
            docker("build --target from-host --label cde.test=image --label")
                .args([&self.label(), "-t", tag])
                .arg(context),
        );
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let project = format!("label=com.docker.compose.project={}", self.project());
        let filters = [
            format!("label={}", self.label()),
            project.clone(),
            format!("network={}", self.run_network()),
        ];
        for filter in &filters {
            let ids = quietly(docker("ps -aq --filter").arg(filter));
            for id in ids.split_whitespace() {
                quietly(docker("rm -f -v").arg(id));
            }
        }
        quietly(docker("network rm").arg(self.run_network()));
        for id in quietly(docker("network ls -q --filter").arg(&project)).split_whitespace() {
            quietly(docker("network rm").arg(id));
        }
        for name in quietly(docker("volume ls -q --filter").arg(&project)).split_whitespace() {
            quietly(docker("volume rm -f").arg(name));
        }
        let images = quietly(docker("images -q --filter").arg(format!("label={}", self.label())));
        for id in images.split_whitespace() {
            quietly(docker("rmi -f").arg(id));
        }
    }
}

/// A build context for the `from-host` stage: the Dockerfile and .dockerignore of this tree,
/// the `.ci/` directory (emptied by .dockerignore) and, when given, `binary` as dist/cde.
fn from_host_context(binary: Option<&Path>) -> tempfile::TempDir {
    let context = tempfile::tempdir().unwrap();
    for file in ["Dockerfile", ".dockerignore"] {
        std::fs::copy(root().join(file), context.path().join(file)).unwrap();
    }
    std::fs::create_dir(context.path().join(".ci")).unwrap();
    std::fs::write(context.path().join(".ci/run"), "ignored").unwrap();
    if let Some(binary) = binary {
        let dist = context.path().join("dist");
        std::fs::create_dir(&dist).unwrap();
        if std::fs::hard_link(binary, dist.join("cde")).is_err() {
            std::fs::copy(binary, dist.join("cde")).unwrap();
        }
    }
    context
}

/// The image made from the `cde` this test was built with, tagged [`Made::image`].
fn image_from_this_binary(made: &Made) -> String {
    let context = from_host_context(Some(Path::new(env!("CARGO_BIN_EXE_cde"))));
    made.build_from_host(context.path(), &made.image());
    made.image()
}

/// The regular files and links of `image`'s file system, apart from those the engine adds
/// to every container.
fn files_of(image: &str) -> Vec<String> {
    let container = ok(docker("create").arg(image));
    let container = container.trim();
    let mut export = docker("export")
        .arg(container)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tar = Vec::new();
    export.stdout.take().unwrap().read_to_end(&mut tar).unwrap();
    assert!(
        export.wait().unwrap().success(),
        "docker export {container}"
    );
    quietly(docker("rm -f").arg(container));
    let mut list = Command::new("tar")
        .args(["-tv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = list.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &tar));
    let listing = list.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let added_by_the_engine = [
        ".dockerenv",
        "dev/console",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
    ];
    String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('d'))
        .map(|line| {
            let name = line.split_whitespace().nth(5).unwrap();
            name.trim_start_matches("./").to_owned()
        })
        .filter(|name| !added_by_the_engine.contains(&name.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The management API of a server in a container

struct Api {
    url: String,
    client: reqwest::Client,
}

impl Api {
    /// The API published at `address` (`127.0.0.1:port`), once `/health` answers; `logs`
    /// gives what the server printed, for the failure message.
    async fn when_healthy(address: &str, logs: impl Fn() -> String) -> Self {
        let api = Self {
            url: format!("http://{}", address.trim()),
            client: reqwest::Client::new(),
        };
        let health = format!("{}/health", api.url);
        let answered = answers_health(&api.client, &api.url, Duration::from_secs(60)).await;
        if let Err(last) = answered {
            panic!(
                "the server did not answer on {health} within 60 s ({last}); it printed:\n{}",
                logs()
            );
        }
        api
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let answer = request.send().await.unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let request = self.client.get(format!("{}{path}", self.url));
        self.send(request.bearer_auth(TOKEN)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let request = self.client.post(format!("{}{path}", self.url)).json(&body);
        self.send(request.bearer_auth(TOKEN)).await
    }
}

/// Through `api`: the token is required, the behave connector registers and a run of it
/// succeeds, its records readable through the API and, at the same path, on this machine
/// under `data_dir`. `logs` gives what the server printed, for failure messages.
async fn register_and_run(api: &Api, data_dir: &Path, logs: impl Fn() -> String) {
    let anonymous = api
        .client
        .get(format!("{}/connectors", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let manifest: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(behave_manifest()).unwrap()).unwrap();
    let (status, body) = api.post("/connectors", manifest).await;
    assert!(
        status.is_success(),
        "registering behave: {status} {body}\n{}",
        logs()
    );

    let options = json!({"RECORDS": RECORDS.to_string(), "TAG": "image"});
    let (status, run) = api
        .post("/runs", json!({"connector": BEHAVE, "options": options}))
        .await;
    assert!(status.is_success(), "starting a run: {status} {run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let finished = poll_until(Duration::from_secs(120), || async {
        let (_, run) = api.get(&format!("/runs/{id}")).await;
        match run["status"].as_str() {
            Some("succeeded" | "failed" | "timed_out" | "cancelled") => Ok(run),
            _ => Err(run),
        }
    })
    .await;
    let run = match finished {
        Ok(run) => run,
        Err(last) => panic!(
            "run {id} did not finish within 120 s (last seen {last}); the server printed:\n{}",
            logs()
        ),
    };
    let (_, log) = api.get(&format!("/runs/{id}/logs")).await;
    assert_eq!(
        run["status"],
        "succeeded",
        "{run}\nrun log: {log}\nserver:\n{}",
        logs()
    );
    assert_eq!(run["reason"], "exit code 0", "{run}");
    assert_eq!(run["output_rows"], RECORDS, "{run}");

    let (status, output) = api.get(&format!("/runs/{id}/output?limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{output}");
    let records = output["records"].as_array().unwrap();
    assert_eq!(records.len(), RECORDS, "{output}");
    assert!(records.iter().all(|r| r["tag"] == "image"), "{output}");

    let on_the_host = data_dir.join(format!("runs/{id}/output/output.jsonl"));
    let written = std::fs::read_to_string(&on_the_host)
        .unwrap_or_else(|e| panic!("{} on this machine: {e}", on_the_host.display()));
    assert_eq!(written.lines().count(), RECORDS, "{written}");
}

/// What a container printed.
fn container_logs(container: &str) -> String {
    quietly(docker("logs").arg(container))
}

// ---------------------------------------------------------------------------------------
// The image

#[tokio::test]
async fn the_image_from_the_host_binary_serves_the_api_and_runs_a_connector() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let made = Made::new();
    let image = image_from_this_binary(&made);

    // The image is the binary and its configuration: nothing else.
    assert_eq!(files_of(&image), ["usr/local/bin/cde"]);
    let config = ok(docker("image inspect --format").args(["{{json .Config}}", &image]));
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["Entrypoint"], json!(["/usr/local/bin/cde"]));
    assert_eq!(config["Cmd"], json!(["server"]));
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"CDE_DATA_DIR=/var/lib/cde"), "{env:?}");
    assert!(env.contains(&"CDE_LISTEN=0.0.0.0:8780"), "{env:?}");
    assert!(
        config["Labels"].get("cde.managed-by").is_none(),
        "the server's container must not look like one cde made: {config}"
    );

    let name = format!("cde-image-test-{}", made.id);
    let socket = socket();
    ok(docker("run -d --name")
        .arg(&name)
        .args(["--label", "cde.test=image", "--label", &made.label()])
        .args(["-v", &format!("{socket}:/var/run/docker.sock")])
        .args(["-v", &format!("{data_dir}:{data_dir}")])
        .args(["-e", &format!("CDE_DATA_DIR={data_dir}")])
        .args(["-e", &format!("CDE_API_TOKEN={TOKEN}")])
        .args(["-e", &format!("CDE_RUN_NETWORK={}", made.run_network())])
        .args(["-e", "CDE_STOP_GRACE_SECS=2"])
        .args(["-p", &format!("127.0.0.1::{PORT}")])
        .arg(&image));
    let address = ok(docker("port").args([&name, &format!("{PORT}/tcp")]));
    let address = address.lines().next().unwrap();
    assert!(address.starts_with("127.0.0.1:"), "published on {address}");
    let api = Api::when_healthy(address, || container_logs(&name)).await;
    register_and_run(&api, data.path(), || container_logs(&name)).await;

    // cde is the container's first process: SIGTERM stops it cleanly, not the SIGKILL after.
    ok(docker("stop -t 30").arg(&name));
    let exit = ok(docker("inspect --format {{.State.ExitCode}}").arg(&name));
    assert_eq!(exit.trim(), "0", "{}", container_logs(&name));
}

/// The legacy builder passes through every stage before its target, so `docker build .`
/// there builds `from-host` too: it must build without a binary in dist/.
#[test]
fn the_from_host_stage_builds_without_a_binary() {
    let made = Made::new();
    let context = from_host_context(None);
    made.build_from_host(context.path(), &made.image());
    assert_eq!(files_of(&made.image()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// compose.yaml

/// `docker compose` (v2) or else `docker-compose` (v1), or `None` (with a note) when
/// neither is installed; under `CI` that fails the test.
fn compose_command() -> Option<Vec<&'static str>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works("docker", &["compose", "version"]) {
        return Some(vec!["docker", "compose"]);
    }
    if works("docker-compose", &["version"]) {
        return Some(vec!["docker-compose"]);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have docker-compose (or the docker compose plugin) to test compose.yaml"
    );
    eprintln!(
        "compose.yaml NOT tested: neither `docker compose` nor `docker-compose` is installed"
    );
    None
}

/// A compose project of compose.yaml (plus an override file of the test's) with the
/// variables compose.yaml reads; a `.env` in the tree is ignored.
struct Compose {
    command: Vec<&'static str>,
    project: String,
    files: Vec<PathBuf>,
    env_file: PathBuf,
    vars: Vec<(&'static str, String)>,
}

impl Compose {
    fn new(made: &Made, scratch: &Path, override_yaml: &str) -> Option<Self> {
        let command = compose_command()?;
        let override_file = scratch.join("compose.override.yaml");
        std::fs::write(&override_file, override_yaml).unwrap();
        let env_file = scratch.join("empty.env");
        std::fs::write(&env_file, "").unwrap();
        Some(Self {
            command,
            project: made.project(),
            files: vec![root().join("compose.yaml"), override_file],
            env_file,
            vars: vec![
                ("CDE_API_TOKEN", TOKEN.into()),
                ("CDE_IMAGE", made.image()),
                // A port of the engine's choosing, on loopback.
                ("CDE_PUBLISH", "127.0.0.1:".into()),
            ],
        })
    }

    fn var(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((name, value.into()));
        self
    }

    fn cmd<const N: usize>(&self, args: [&str; N]) -> Command {
        let mut command = Command::new(self.command[0]);
        command.args(&self.command[1..]);
        command.args(["-p", &self.project]);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command.arg("--env-file").arg(&self.env_file);
        command.args(args);
        command.envs(self.vars.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Where the cde service's API is published on this machine.
    fn address(&self) -> String {
        let address = ok(self.cmd(["port", "cde", PORT]));
        address.lines().next().unwrap_or_default().to_owned()
    }

    fn logs(&self, service: &str) -> String {
        quietly(self.cmd(["logs", "--no-color", service]))
    }
}

/// The settings of the test's cde service, beside those compose.yaml gives.
fn cde_override(made: &Made, database_url: Option<&str>) -> String {
    let database = database_url
        .map(|url| format!("      CDE_DATABASE_URL: \"{url}\"\n"))
        .unwrap_or_default();
    format!(
        "services:\n  cde:\n    environment:\n{database}      CDE_RUN_NETWORK: {}\n      CDE_STOP_GRACE_SECS: \"2\"\n",
        made.run_network()
    )
}

#[tokio::test]
async fn compose_starts_cde_alone_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let made = Made::new();
    let sqlite = format!("sqlite://{data_dir}/cde.db?mode=rwc");
    let Some(compose) = Compose::new(&made, scratch.path(), &cde_override(&made, Some(&sqlite)))
    else {
        return;
    };
    let compose = compose.var("CDE_DATA_DIR", &data_dir);
    behave_image();
    image_from_this_binary(&made);

    // Without PostgreSQL: only the cde service, its dependency left out.
    ok(compose.cmd(["up", "-d", "--no-build", "--no-deps", "cde"]));
    let api = Api::when_healthy(&compose.address(), || compose.logs("cde")).await;
    register_and_run(&api, data.path(), || compose.logs("cde")).await;
    assert!(
        compose
            .logs("cde")
            .contains(&format!("CDE_DATABASE_URL={sqlite}")),
        "{}",
        compose.logs("cde")
    );
    assert!(data.path().join("cde.db").exists(), "the store is SQLite");

    ok(compose.cmd(["down", "-v", "--remove-orphans"]));
}

// ---------------------------------------------------------------------------------------
// A stand-in for the official postgres image

/// The entrypoint of the stand-in: what the official image does with `POSTGRES_USER`,
/// `POSTGRES_PASSWORD`, `POSTGRES_DB` and `PGDATA`, and no more.
const POSTGRES_ENTRYPOINT: &str = r#"#!/bin/sh
set -eu
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # Initialised on the socket only, as the official image does.
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$db" != postgres ]; then
        as_postgres psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
    fi
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*'
"#;

const POSTGRES_DOCKERFILE: &str = r#"ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)" /usr/local/lib/postgresql-bin
ENV PATH=/usr/local/lib/postgresql-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
LABEL cde.base=true
"#;

const POSTGRES_STAND_IN: &str = "cde-local/postgres:stand-in";

/// Builds the stand-in PostgreSQL image from Debian's packages on the local Python base
/// image (the engine's layer cache makes a rebuild take a second).
fn postgres_stand_in() -> &'static str {
    let made = Command::new(root().join("scripts/make-base-image.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(made.status.success(), "scripts/make-base-image.sh failed");
    let stdout = String::from_utf8(made.stdout).unwrap();
    let base = stdout.lines().last().unwrap().trim().to_owned();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), POSTGRES_DOCKERFILE).unwrap();
    let entrypoint = context.path().join("entrypoint.sh");
    std::fs::write(&entrypoint, POSTGRES_ENTRYPOINT).unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&entrypoint, executable).unwrap();
    ok(docker("build -q -t")
        .arg(POSTGRES_STAND_IN)
        .args(["--build-arg", &format!("BASE_IMAGE={base}")])
        .arg(context.path()));
    POSTGRES_STAND_IN
}

#[tokio::test]
async fn compose_starts_cde_with_postgresql() {
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let made = Made::new();
    let Some(compose) = Compose::new(&made, scratch.path(), &cde_override(&made, None)) else {
        return;
    };
    // The connector's image first: it makes the base image the stand-in is built on, and
    // the other tests wait for it rather than make the base image beside it.
    behave_image();
    let password = uuid::Uuid::new_v4().simple().to_string();
    let compose = compose
        .var("CDE_DATA_DIR", &data_dir)
        .var("CDE_POSTGRES_IMAGE", postgres_stand_in())
        .var("CDE_POSTGRES_PASSWORD", &password);
    image_from_this_binary(&made);

    // `up` starts cde once PostgreSQL is healthy.
    ok(compose.cmd(["up", "-d", "--no-build"]));
    let logs = || compose.logs("cde") + &compose.logs("postgres");
    let api = Api::when_healthy(&compose.address(), logs).await;
    register_and_run(&api, data.path(), logs).await;
    let printed = compose.logs("cde");
    assert!(
        printed.contains("CDE_DATABASE_URL=postgres://cde:********@postgres:5432/cde"),
        "{printed}"
    );
    assert!(!printed.contains(&password), "{printed}");
    assert!(!data.path().join("cde.db").exists(), "no SQLite store");
    let statuses = ok(compose.cmd([
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "cde",
        "-d",
        "cde",
        "-tAc",
        "SELECT status FROM runs",
    ]));
    assert_eq!(statuses.trim(), "succeeded", "the run is in PostgreSQL");

    ok(compose.cmd(["down", "-v", "--remove-orphans"]));
    let project = format!("label=com.docker.compose.project={}", made.project());
    let volumes = ok(docker("volume ls -q --filter").arg(project));
    assert_eq!(volumes.trim(), "", "`down -v` removes PostgreSQL's volume");
}
