//! Declarative HTTP connectors under cde, on the real engine: the published MailChimp
//! Members sourceSpec (`sample-connectors/http`), registered verbatim, pulls from a mock
//! MailChimp API of our own that runs in a container on a network of the test's own, which
//! the runs join (`network`). Everything the test makes carries the label `cde.test=http`
//! and goes when it ends; the Python base image stays, cached.

mod common;

use std::time::Duration;

use cde::model::{Network, Run, RunRequest, RunStatus};
use cde::Cde;
use common::*;
use serde_json::Value;

const MOCK: &str = "mailchimp.cde-test";
const KEY: &str = "key-123-secret";

/// MailChimp's list members API, as much of it as the spec reads, with basic auth: the
/// password `KEY` is accepted, `flaky` gets 503s, anything else 401. Each request is one
/// JSON line on standard output (path, query, user; never the password).
const MOCK_API: &str = r#"
import base64, http.server, json, sys, urllib.parse

key, count, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
members = [
    {"id": f"m{n:03d}", "email_address": f"user{n}@example.com", "status": "subscribed",
     "list_id": "L1", "merge_fields": {"FNAME": f"User {n}"}, "_links": [{"rel": "self"}]}
    for n in range(count)
]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        auth = self.headers.get("Authorization", "")
        user, password = "", ""
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        print(json.dumps({"path": url.path, "query": query, "user": user}), flush=True)
        if password == "flaky":
            return self.answer(503, {"title": "Service Unavailable"})
        if password != key:
            return self.answer(401, {"title": "API Key Invalid"})
        parts = url.path.split("/")
        if len(parts) != 5 or parts[1:3] != ["3.0", "lists"] or parts[4] != "members":
            return self.answer(404, {"title": "Resource Not Found"})
        offset, size = int(query.get("offset", 0)), int(query.get("count", 10))
        self.answer(200, {"members": members[offset:offset + size], "list_id": parts[3],
                          "total_items": len(members), "_links": [{"rel": "parent"}]})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
print(json.dumps({"ready": True}), flush=True)
server.serve_forever()
"#;

/// `docker ARGS`, which must succeed within a minute; its standard output.
fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The mock's request lines so far.
fn requests(mock: &str) -> Vec<Value> {
    docker(&["logs", mock])
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("path").is_some())
        .collect()
}

fn request(network: &str, password: &str) -> RunRequest {
    let mut request = common::request(
        "mailchimp-members",
        &[
            ("listId", "L1"),
            ("base_url", &format!("http://{MOCK}:8080")),
            ("username", "anystring"),
            ("password", password),
        ],
    );
    request.network = Some(Network::Named(network.to_owned()));
    request
}

async fn logs(cde: &Cde, run: &Run) -> String {
    let lines = cde.store.logs(&run.id, 0).await.unwrap();
    lines
        .iter()
        .map(|(_, line)| {
            format!(
                "{} {} {}\n",
                line.level,
                line.message,
                line.context.clone().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_published_mailchimp_spec_pulls_every_member_and_resumes_from_its_window() {
    let made = Labelled::new("http");
    let python = python_image().await;
    let network = made.name("net");
    docker(&["network", "create", "--label", &made.label(), &network]);
    let mock = made.name("mock");
    docker(&[
        "run",
        "-d",
        "--name",
        &mock,
        "--label",
        &made.label(),
        "--network",
        &network,
        "--network-alias",
        MOCK,
        &python,
        "python3",
        "-c",
        MOCK_API,
        KEY,
        "250",
        "8080",
    ]);
    wait_until(
        format!("the mock API {mock} to listen"),
        Duration::from_secs(30),
        || async {
            let out = docker(&["logs", &mock]);
            match out.contains("\"ready\"") {
                true => Ok(()),
                false => Err(out),
            }
        },
    )
    .await;

    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    cde.register_file(&root().join("sample-connectors/http/mailchimp-members.yaml"))
        .await
        .unwrap();
    let manifest = cde
        .store
        .connector("mailchimp-members")
        .await
        .unwrap()
        .manifest;
    assert_eq!(
        manifest.categories,
        ["marketingAutomation"],
        "from uiAttributes"
    );
    let listed: Vec<&str> = manifest.options.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        listed,
        [
            "listId",
            "domain",
            "base_url",
            "schedule_start",
            "username",
            "password"
        ]
    );
    assert_eq!(
        manifest.option("listId").unwrap().description.as_deref(),
        Some("listId for which members need to fetch.")
    );
    // Without base_url the host's {domain} is needed, and that is said before any run.
    let mut no_domain = request(&network, KEY);
    no_domain.options.remove("base_url");
    let refused = cde.run(no_domain).await.unwrap_err().to_string();
    assert!(refused.contains("option domain"), "{refused}");

    // A check makes the first request alone and writes nothing.
    let asked = requests(&mock).len();
    let check = |password: &str| {
        let request = request(&network, password);
        cde::model::CheckRequest {
            options: request.options,
            network: request.network,
        }
        .into_run_request("mailchimp-members")
    };
    let report = cde.check(check(KEY)).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.status, Some(200));
    assert_eq!(report.records, 100);
    assert_eq!(
        report.request,
        format!("GET http://{MOCK}:8080/3.0/lists/L1/members")
    );
    assert!(
        report.columns.contains(&"member-email_address".to_owned()),
        "{report:?}"
    );
    assert!(
        report.columns.iter().all(|c| c.starts_with("member-")),
        "{report:?}"
    );
    let refused = cde.check(check("wrong-key")).await.unwrap();
    assert!(!refused.ok, "{refused:?}");
    assert_eq!(refused.status, Some(401));
    assert_eq!(refused.failure_kind.as_deref(), Some("configuration"));
    assert!(
        !refused.failure.as_deref().unwrap().contains("wrong-key"),
        "{refused:?}"
    );
    // The command line says the same, on the network given, and exits 1 for a failed check.
    let cli = |password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cde"))
            .env("CDE_DATA_DIR", data.path())
            .env("CDE_RUN_NETWORK", TEST_NETWORK)
            .args([
                "connector",
                "check",
                "mailchimp-members",
                "--network",
                &network,
            ])
            .args([
                "--set",
                "listId=L1",
                "--set",
                &format!("base_url=http://{MOCK}:8080"),
            ])
            .args([
                "--set",
                "username=anystring",
                "--set",
                &format!("password={password}"),
            ])
            .output()
            .unwrap()
    };
    let out = cli(KEY);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("records   100 on the first page"),
        "{stdout}"
    );
    let out = cli("wrong-key");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed    configuration:"));
    assert_eq!(requests(&mock).len(), asked + 4, "one request per check");
    assert!(
        cde.store
            .runs(&Default::default())
            .await
            .unwrap()
            .is_empty(),
        "no run recorded"
    );

    // First run: everything since the configured start, in pages of 100.
    let before_first = requests(&mock).len();
    let first = cde.run(request(&network, KEY)).await.unwrap();
    assert_eq!(
        first.status,
        RunStatus::Succeeded,
        "{first:?}\n{}",
        logs(&cde, &first).await
    );
    assert_eq!(first.output_rows, Some(250));
    let records = common::records(&first);
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["member-id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "every member once");
    for record in &records {
        for column in record.as_object().unwrap().keys() {
            assert!(column.starts_with("member-"), "{column} in {record}");
            assert!(
                !["_links", "total_items", "list_id"]
                    .iter()
                    .any(|skipped| column.contains(skipped)),
                "{column} should have been skipped"
            );
        }
    }
    let seen = requests(&mock)[before_first..].to_vec();
    let pages: Vec<(&str, &str)> = seen
        .iter()
        .map(|r| {
            (
                r["query"]["count"].as_str().unwrap(),
                r["query"]["offset"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(pages, [("100", "0"), ("100", "100"), ("100", "200")]);
    assert!(seen
        .iter()
        .all(|r| r["path"] == "/3.0/lists/L1/members" && r["user"] == "anystring"));
    let window = |r: &Value, name: &str| r["query"][name].as_str().unwrap().to_owned();
    assert_eq!(
        window(&seen[0], "since_last_changed"),
        "1970-01-01T00:00:00:0000000Z"
    );
    let first_end = window(&seen[0], "before_last_changed");
    assert!(seen
        .iter()
        .all(|r| window(r, "before_last_changed") == first_end));

    // A transient failure (503) and a configuration failure (401) move nothing.
    let flaky = cde.run(request(&network, "flaky")).await.unwrap();
    assert_eq!(flaky.status, RunStatus::Failed, "{flaky:?}");
    assert_eq!(flaky.exit_code, Some(75), "{flaky:?}");
    let reason = flaky.reason.clone().unwrap();
    assert!(
        reason.starts_with("transient failure (exit code 75): "),
        "{reason}"
    );
    assert!(reason.contains("503"), "{reason}");
    let wrong = cde.run(request(&network, "wrong-key")).await.unwrap();
    assert_eq!(wrong.status, RunStatus::Failed, "{wrong:?}");
    assert_eq!(wrong.exit_code, Some(78), "{wrong:?}");
    let reason = wrong.reason.clone().unwrap();
    assert!(
        reason.starts_with("configuration failure (exit code 78): "),
        "{reason}"
    );
    assert!(
        reason.contains("401") && reason.contains("API Key Invalid"),
        "{reason}"
    );
    assert_eq!(
        flaky.state_key, first.state_key,
        "a changed password keeps the window"
    );

    // The next run asks only for what changed since the first run's window ended.
    let before = requests(&mock).len();
    let third = cde.run(request(&network, KEY)).await.unwrap();
    assert_eq!(third.status, RunStatus::Succeeded, "{third:?}");
    let later = &requests(&mock)[before..];
    assert_eq!(later.len(), 3, "{later:?}");
    assert_eq!(window(&later[0], "since_last_changed"), first_end);
    assert!(window(&later[0], "before_last_changed") > first_end);

    for run in [&first, &flaky, &wrong, &third] {
        let text = logs(&cde, run).await;
        assert!(
            !text.contains(KEY),
            "the key leaked into the logs of {}: {text}",
            run.id
        );
    }
}
