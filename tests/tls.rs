//! cde is one static executable: in an empty (`FROM scratch`) image it still resolves a
//! server's name and verifies its certificate, against a CA named by `SSL_CERT_FILE`.
//!
//! The test makes a throw-away CA and a certificate for `tls-peer.cde-test`, serves what
//! `cde connector list` reads over TLS from a Python container known on a network of its
//! own by that name, and runs `/cde connector list` in an image holding nothing but the
//! cde binary: with the CA it lists the connector, without it the handshake is refused.
//! Everything it makes (containers, network, image) carries the label `cde.test=tls` and is
//! removed when the test ends, failed or not; the Python base image stays, cached.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

const PEER: &str = "tls-peer.cde-test";
const PORT: u16 = 8443;
const TOKEN: &str = "tls-test-token";
const CONNECTOR: &str = "tls-checked-source";
const IMAGE_OF_CONNECTOR: &str = "example/tls-checked:1";

/// The management API's `GET /connectors`, as little of it as the client reads, and the
/// request log: one JSON line per request on standard output.
const SERVER: &str = r#"
import http.server, json, ssl, sys

token, answer = sys.argv[1], open("/tls/connectors.json", "rb").read()

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        print(json.dumps({"path": self.path, "authorization": auth}), flush=True)
        if self.path == "/health":
            self.answer(200, b'{"status": "ok"}')
        elif auth != "Bearer " + token:
            self.answer(401, b'{"error": {"code": "unauthorized", "message": "wrong token"}}')
        elif self.path == "/connectors":
            self.answer(200, answer)
        else:
            self.answer(404, b'{"error": {"code": "not_found", "message": "no such route"}}')

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/tls/server.pem", "/tls/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// Removes what one run of the test made, whatever happens to the test.
struct Made {
    run: String,
}

impl Made {
    fn label(&self) -> String {
        format!("cde.test.run={}", self.run)
    }
    fn network(&self) -> String {
        format!("cde-test-tls-{}", self.run)
    }
    fn image(&self) -> String {
        format!("cde-test/tls-scratch:{}", self.run)
    }
    fn peer(&self) -> String {
        format!("cde-test-tls-peer-{}", self.run)
    }
    fn client(&self, case: &str) -> String {
        format!("cde-test-tls-client-{case}-{}", self.run)
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default()
        };
        let filter = format!("label={}", self.label());
        let containers = docker(&["ps", "-aq", "--filter", &filter]);
        for id in containers.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        for id in docker(&["network", "ls", "-q", "--filter", &filter]).split_whitespace() {
            docker(&["network", "rm", id]);
        }
        docker(&["rmi", "-f", &self.image()]);
    }
}

/// `docker ARGS` (legacy builder), for at most `limit`.
async fn docker(limit: Duration, args: &[&str]) -> Output {
    let running = tokio::process::Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(limit, running)
        .await
        .unwrap_or_else(|_| panic!("docker {} took more than {limit:?}", args.join(" ")))
        .expect("the docker CLI runs")
}

/// What a docker command that must succeed printed.
async fn docker_ok(limit: Duration, args: &[&str]) -> String {
    let out = docker(limit, args).await;
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A CA and a certificate it signed for [`PEER`]: (CA, server certificate, server key), PEM.
fn certificates() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "cde test CA (throw-away)");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec![PEER.to_owned()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, PEER);
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_scratch_image_resolves_the_server_and_verifies_it_against_ssl_cert_file() {
    let made = Made {
        run: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
    };
    let python = common::python_image().await;
    let limit = Duration::from_secs(60);
    let run_label = made.label();
    let labels = ["--label", "cde.test=tls", "--label", &run_label];

    // The image: the cde binary and nothing else.
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_cde"), context.path().join("cde")).unwrap();
    write(
        context.path(),
        "Dockerfile",
        "FROM scratch\nCOPY cde /cde\n",
    );
    let context_dir = context.path().display().to_string();
    let image = made.image();
    let mut build = vec!["build", "-q", "-t", &image];
    build.extend(labels);
    build.push(&context_dir);
    docker_ok(Duration::from_secs(300), &build).await;

    // The peer: a TLS server known as PEER on a network of the test's own.
    let tls = tempfile::tempdir().unwrap();
    let (ca_pem, server_pem, server_key) = certificates();
    let ca_file = write(tls.path(), "ca.pem", &ca_pem);
    write(tls.path(), "server.pem", &server_pem);
    write(tls.path(), "server.key", &server_key);
    let answer = serde_json::json!([{
        "code": CONNECTOR,
        "version": 3,
        "created_at": "2026-01-01T00:00:00Z",
        "manifest": {
            "code": CONNECTOR,
            "label": "Checked over TLS",
            "type": "data-source",
            "image": IMAGE_OF_CONNECTOR,
            "command": "true",
        },
    }]);
    write(tls.path(), "connectors.json", &answer.to_string());
    // glibc's own resolver, told to look only at /etc/hosts (where PEER is not), cannot
    // find the peer: the client that does resolves by itself, from /etc/resolv.conf.
    let nsswitch = write(tls.path(), "nsswitch.conf", "hosts: files\n");

    let network = made.network();
    let mut create = vec!["network", "create"];
    create.extend(labels);
    create.push(&network);
    docker_ok(limit, &create).await;

    let peer = made.peer();
    let mount = format!("{}:/tls:ro", tls.path().display());
    let port = PORT.to_string();
    let mut serve = vec!["run", "-d", "--name", &peer, "--network", &network];
    serve.extend(["--network-alias", PEER, "-v", &mount]);
    serve.extend(labels);
    serve.extend([python.as_str(), "python3", "-c", SERVER, TOKEN, &port]);
    docker_ok(limit, &serve).await;

    // Wait until the peer answers, over TLS verified against the CA, at its address.
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let ip: IpAddr = docker_ok(limit, &["inspect", "-f", &format, &peer])
        .await
        .parse()
        .expect("the peer has an address on the network");
    let probe = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve(PEER, SocketAddr::new(ip, PORT))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let health = format!("https://{PEER}:{PORT}/health");
    common::wait_until(
        format!("the TLS peer to answer at {health} ({ip})"),
        Duration::from_secs(30),
        || async {
            match probe.get(&health).send().await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(format!("{}", answer.status())),
                Err(e) => Err(format!("{e:?}")),
            }
        },
    )
    .await;

    let server_url = format!("CDE_SERVER=https://{PEER}:{PORT}");
    let token = format!("CDE_API_TOKEN={TOKEN}");
    let ca_mount = format!("{ca_file}:/ca.pem:ro");
    let nsswitch_mount = format!("{nsswitch}:/etc/nsswitch.conf:ro");
    let list = |name: String, with_ca: bool| {
        let mut args: Vec<String> = ["run", "--rm", "--name", &name, "--network", &network]
            .map(String::from)
            .to_vec();
        args.extend(labels.map(String::from));
        args.extend(["-e", &server_url, "-e", &token, "-v", &nsswitch_mount].map(String::from));
        if with_ca {
            args.extend(["-e", "SSL_CERT_FILE=/ca.pem", "-v", &ca_mount].map(String::from));
        }
        args.extend([&image, "/cde", "connector", "list"].map(String::from));
        args
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    // With the CA: the name resolves, the handshake verifies, the connector is listed.
    let args = list(made.client("with-ca"), true);
    let out = docker(limit, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!("with SSL_CERT_FILE: {}\n{stdout}{stderr}", out.status);
    assert_eq!(
        out.status.code(),
        Some(0),
        "cde connector list with SSL_CERT_FILE: stdout {stdout:?}, stderr {stderr:?}"
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with(CONNECTOR))
        .unwrap_or_else(|| panic!("{CONNECTOR} is not listed: {stdout:?}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns,
        [CONNECTOR, "3", "data-source", IMAGE_OF_CONNECTOR],
        "{stdout}"
    );

    // The peer saw the client's request, with its token.
    let requests = |log: &str| -> Vec<serde_json::Value> {
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|request| request["path"] == "/connectors")
            .collect()
    };
    let log = docker_ok(limit, &["logs", &peer]).await;
    let seen = requests(&log);
    assert_eq!(seen.len(), 1, "requests to /connectors: {log}");
    assert_eq!(seen[0]["authorization"], format!("Bearer {TOKEN}"));

    // Without it: the built-in roots do not know the CA, so the handshake fails, cde says
    // why and exits 2, and no request reaches the peer.
    let args = list(made.client("without-ca"), false);
    let out = docker(limit, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!("without SSL_CERT_FILE: {}\n{stdout}{stderr}", out.status);
    assert_eq!(
        out.status.code(),
        Some(2),
        "cde connector list without SSL_CERT_FILE: stdout {stdout:?}, stderr {stderr:?}"
    );
    assert!(
        stderr.contains("invalid peer certificate") && stderr.contains("UnknownIssuer"),
        "the error names the certificate problem: {stderr}"
    );
    let log = docker_ok(limit, &["logs", &peer]).await;
    assert_eq!(requests(&log).len(), 1, "requests to /connectors: {log}");
}
