//! The web console: sessions and CSRF over plain HTTP, then the operator's flow in a real
//! headless Chromium driven over WebDriver (chromium and chromium-driver from Debian's
//! packages): sign in, find a connector, a refused form with its error next to its field,
//! a run with its log arriving live and its output table, the pipelines with their next
//! scheduled runs, sign out. Screenshots of each step go to `target/console-screenshots/`;
//! an error in the page's console fails the test.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::server::{Server, TOKEN};
use common::*;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// A data source for the catalog, on the test image.
fn shop_manifest() -> Value {
    json!({
        "code": "shop-products",
        "label": "Shop products",
        "type": "data-source",
        "image": "cde-test/feed:latest",
        "command": "python3",
        "arguments": ["main.py", "source"],
        "health_check": "--health-check",
        "categories": ["Commerce"],
        "summary": "Products from the shop, as rows",
        "options": [{"name": "ROWS", "field_type": "textarea", "label": "Rows (JSON)", "required": true,
                     "description": "A JSON array of the rows to write"},
                    {"name": "LOG", "field_type": "input", "label": "A line to log"}],
    })
}

fn other_manifest() -> Value {
    json!({
        "code": "ads-export",
        "label": "Ads export",
        "type": "export",
        "image": "cde-test/feed:latest",
        "command": "python3",
        "arguments": ["main.py", "export"],
        "health_check": "--health-check",
        "categories": ["Marketing"],
    })
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in over plain HTTP; returns the cookie and the CSRF token of a page.
async fn signed_in(server: &Server) -> (String, String) {
    let http = no_redirects();
    let answer = http
        .post(format!("{}/console/sign-in", server.url))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{}/console/connectors", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn sessions_sign_in_guard_reads_and_refuse_posts_without_their_csrf_token() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    let http = no_redirects();
    let url = |path: &str| format!("{}{path}", server.url);

    // Not signed in: pages send to the sign-in page, the API refuses.
    let page = http.get(url("/console/connectors")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/console/sign-in");
    let wrong = http
        .post(url("/console/sign-in"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let refused = wrong.text().await.unwrap();
    assert!(refused.contains("not this server's API token"), "{refused}");

    let (cookie, csrf) = signed_in(&server).await;
    // A session reads the API (the console's live logs) but never writes through it.
    let read = http
        .get(url("/connectors"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = http
        .post(url("/pipelines/none/runs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 401);
    // Form posts need the session's CSRF token.
    for form in [vec![], vec![("csrf", "forged")]] {
        let post = http
            .post(url("/console/sign-out"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 403, "{form:?}");
    }
    let out = http
        .post(url("/console/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The ended session opens nothing.
    let after = http
        .get(url("/console/connectors"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    let api = http
        .get(url("/connectors"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
}

/// `cde user add NAME` on the server's data directory, the password on standard input.
fn add_user(data: &std::path::Path, name: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cde"))
        .args(["user", "add", name])
        .env("CDE_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn users_of_cde_user_add_sign_in_with_their_password() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    let password = "correct horse battery staple";
    let short = add_user(data.path(), "ada", "short");
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let added = add_user(data.path(), "ada", password);
    assert!(added.status.success(), "{added:?}");
    let again = add_user(data.path(), "ada", password);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{again:?}"
    );

    let http = no_redirects();
    let sign_in = |user: &'static str, token: &'static str| {
        http.post(format!("{}/console/sign-in", server.url))
            .form(&[("user", user), ("token", token)])
            .send()
    };
    for (user, token) in [
        ("ada", "not her password"),
        ("bob", password),
        ("ada", TOKEN),
    ] {
        let refused = sign_in(user, token).await.unwrap();
        assert_eq!(refused.status(), 401, "{user}");
        assert!(refused.headers().get("set-cookie").is_none());
        let page = refused.text().await.unwrap();
        assert!(
            page.contains("No such user, or not their password."),
            "{page}"
        );
    }
    let signed_in = sign_in("ada", "correct horse battery staple")
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{}/console/connectors", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<span class="user">ada</span>"#), "{page}");
    // Only a hash is kept.
    for file in std::fs::read_dir(data.path()).unwrap().flatten() {
        if let Ok(bytes) = std::fs::read(file.path()) {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "{} holds the password",
                file.path().display()
            );
        }
    }
}

#[tokio::test]
async fn the_catalog_api_filters_by_category_role_and_words() {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    server.post("/connectors", shop_manifest()).await;
    server.post("/connectors", other_manifest()).await;
    let codes = |listed: Value| -> Vec<String> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(codes(server.get("/connectors").await).len(), 2);
    assert_eq!(
        codes(server.get("/connectors?role=source").await),
        ["shop-products"]
    );
    assert_eq!(
        codes(server.get("/connectors?category=marketing").await),
        ["ads-export"]
    );
    assert_eq!(
        codes(server.get("/connectors?q=SHOP%20rows").await),
        ["shop-products"]
    );
    assert!(codes(server.get("/connectors?q=shop&role=export").await).is_empty());
    let bad = reqwest::Client::new()
        .get(format!("{}/connectors?role=sink", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver) is installed");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        wait_until(
            "chromedriver to answer",
            Duration::from_secs(20),
            || async {
                match http.get(format!("{}/status", driver.url)).send().await {
                    Ok(answer) if answer.status().is_success() => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page's console messages since the last call (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, url_error::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

mod url_error {
    pub use reqwest::Url;
    pub type ParseError = <Url as std::str::FromStr>::Err;
}

struct Browser {
    client: Client,
    shots: PathBuf,
    step: usize,
}

impl Browser {
    async fn open(driver: &Driver) -> Self {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                            "--disable-gpu", "--window-size=1280,900"]}),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        // chromedriver is on loopback: plain HTTP.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        let shots = root().join("target/console-screenshots");
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            shots,
            step: 0,
        }
    }

    /// A screenshot of this step, and no error in the page's console so far.
    async fn step(&mut self, name: &str) {
        self.step += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.step)), png).unwrap();
        let log = self.client.issue_cmd(BrowserLog).await.unwrap();
        let errors: Vec<&Value> = log
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE" && !is_expected(e))
                    .collect()
            })
            .unwrap_or_default();
        assert!(errors.is_empty(), "console errors at {name}: {errors:#?}");
    }

    /// The text of the first element at `css` once `ready` says it is what the step
    /// waits for (pages load after a click: earlier ones' elements go stale).
    async fn until(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        wait_until(
            format!("{css} in the page"),
            Duration::from_secs(60),
            || async {
                let found = match self.client.find(Locator::Css(css)).await {
                    Ok(element) => element.text().await,
                    Err(e) => Err(e),
                };
                match found {
                    Ok(text) if ready(&text) => Ok(text),
                    Ok(text) => Err(text),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
    }

    async fn text(&self, css: &str) -> String {
        self.until(css, |_| true).await
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }
}

/// A refused sign-in and a refused form are answered 401 and 400 on purpose: the browser
/// logs the status of such a page load, which is not an error of the page.
fn is_expected(entry: &Value) -> bool {
    let message = entry["message"].as_str().unwrap_or_default();
    message.contains("status of 401") || message.contains("status of 400")
}

#[tokio::test]
async fn an_operator_goes_from_the_catalog_to_a_run_and_its_output_in_a_browser() {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    server.post("/connectors", shop_manifest()).await;
    server.post("/connectors", other_manifest()).await;
    server
        .post(
            "/connectors",
            json!({
                "code": "tagger", "label": "Tagger", "type": "data-service",
                "image": "cde-test/feed:latest", "command": "python3",
                "arguments": ["main.py", "service"], "health_check": "--health-check",
                "stage": "intermediate", "column_prefix": "___feed",
                "options": [{"name": "KEY_COLUMN", "field_type": "stage_columns_dropdown",
                             "label": "Key column"}],
            }),
        )
        .await;
    server
        .post(
            "/pipelines",
            json!({
                "name": "nightly",
                "schedule": "0 3 * * *",
                "sources": [{"connector": "shop-products", "options": {"ROWS": "[{\"id\": \"1\"}]"}}],
            }),
        )
        .await;
    let driver = Driver::start().await;
    let mut browser = Browser::open(&driver).await;
    let b = &browser.client;

    // Sign in: a wrong token first.
    b.goto(&format!("{}/console", server.url)).await.unwrap();
    assert!(b
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));
    browser.fill("#token", "wrong").await;
    browser.click("button[type=submit]").await;
    browser
        .until("#token-error", |t| {
            t.contains("not this server's API token")
        })
        .await;
    browser.step("sign-in-refused").await;
    browser.fill("#token", TOKEN).await;
    browser.click("main button[type=submit]").await;
    browser.until("h1", |t| t == "Catalog").await;
    browser.step("catalog").await;

    // Find the connector: by role, then by words.
    let b = &browser.client;
    b.find(Locator::Css("#role"))
        .await
        .unwrap()
        .select_by_value("source")
        .await
        .unwrap();
    browser.fill("#q", "shop").await;
    browser.click("form.filters button").await;
    browser
        .until("ul.catalog", |t| {
            t.contains("Shop products") && !t.contains("Ads export")
        })
        .await;
    browser.step("catalog-filtered").await;
    browser.click("ul.catalog a").await;
    browser.until("h1", |t| t == "Shop products").await;
    assert!(browser
        .text("label[for=option-ROWS]")
        .await
        .contains("Rows (JSON)"));

    // A check with a required field left empty: it fails, its reason next to that field.
    browser.click("main form button[value=check]").await;
    browser
        .until("#option-ROWS-error", |t| {
            t.contains("option ROWS is required")
        })
        .await;
    browser.step("check-failed").await;

    // Run once. The connector's output is hostile: markup in it is shown as text, never
    // run; so is a log line's.
    let rows = r#"[{"id": "1", "title": "Hat", "price": "9"}, {"id": "2", "title": "Scarf"},
        {"id": "3", "title": "<img src=x onerror=\"window.pwned=1\">"}]"#;
    browser.fill("#option-ROWS", rows).await;
    browser
        .fill("#option-LOG", r#"<b id="hostile-log">bold</b>"#)
        .await;
    browser.click("main form button[formaction]").await;
    browser.until("#logs li", |t| !t.is_empty()).await;
    browser.step("run-live-log").await;
    // Once the run succeeded, the page shows its output table.
    let table = browser.text("#output").await;
    assert!(
        table.contains("title") && table.contains("Hat") && table.contains("Scarf"),
        "{table}"
    );
    assert!(
        table.contains("<img src=x onerror="),
        "shown as text: {table}"
    );
    let pwned = browser
        .client
        .execute(
            "return window.pwned === undefined && document.images.length === 0",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        pwned,
        json!(true),
        "markup from a connector's output was rendered"
    );
    assert_eq!(browser.text("#run-status").await, "succeeded");
    let logs = browser
        .until("#logs", |t| t.contains("source wrote 3 rows"))
        .await;
    assert!(logs.contains(r#"<b id="hostile-log">bold</b>"#), "{logs}");
    let inserted = browser
        .client
        .execute(
            "return document.getElementById('hostile-log') === null",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inserted, json!(true), "a log line was inserted as markup");
    browser.step("run-output").await;
    // The table pages: from the third row on.
    let run_page = browser.client.current_url().await.unwrap();
    browser
        .client
        .goto(&format!("{run_page}?offset=2"))
        .await
        .unwrap();
    let pager = browser.until("nav.pager", |t| t.contains("Rows 3–3")).await;
    assert!(
        pager.contains("Previous") && !pager.contains("Next"),
        "{pager}"
    );
    let rows = browser.text("#output tbody").await;
    assert!(!rows.contains("Hat") && rows.contains("<img"), "{rows}");
    browser.client.back().await.unwrap();
    // Run again: a new run with the same options.
    let first = browser.client.current_url().await.unwrap();
    browser.click("form[action$='/again'] button").await;
    let b = &browser.client;
    wait_until("the run again", Duration::from_secs(20), || async {
        match b.current_url().await {
            Ok(url) if url != first && url.path().starts_with("/console/runs/") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    browser.until("#output", |t| t.contains("Scarf")).await;
    browser.client.back().await.unwrap();

    // Saved as a connection after a passing check, then discovered.
    browser.client.back().await.unwrap();
    browser.until("h1", |t| t == "Shop products").await;
    let rows = r#"[{"id": "1", "title": "Hat", "price": "9"}, {"id": "2", "title": "Scarf", "price": "5"}]"#;
    browser.fill("#option-ROWS", rows).await;
    browser.fill("#option-LOG", "").await;
    browser.click("main form button[value=check]").await;
    browser
        .until("#check-passed", |t| t.contains("passed"))
        .await;
    browser.fill("#connection-name", "shop").await;
    browser.click("main form button[value=save]").await;
    browser.until("h1", |t| t == "shop").await;
    browser.step("connection-saved").await;
    browser.click("form[action$='/discover'] button").await;
    let columns = browser
        .until("#discovered-columns", |t| t.contains("Columns"))
        .await;
    assert!(columns.contains("id, price, title"), "{columns}");
    assert!(browser.text("#discovery").await.contains("Scarf"));
    browser.step("discovered").await;

    // The export's connection: no options, the check passes.
    let b = &browser.client;
    b.goto(&format!("{}/console/connectors/ads-export", server.url))
        .await
        .unwrap();
    browser.fill("#connection-name", "ads").await;
    browser.click("main form button[value=save]").await;
    browser.until("h1", |t| t == "ads").await;

    // A pipeline from the connections: title renamed to name, price dropped, a schedule.
    browser.click("nav a[href='/console/pipelines']").await;
    browser
        .until("main table", |t| {
            t.contains("nightly") && t.matches("03:00:00 UTC").count() == 3
        })
        .await;
    browser.step("pipelines").await;
    browser.click("main a[href='/console/pipelines/new']").await;
    browser.until("h1", |t| t == "Build a pipeline").await;
    browser.fill("#pipeline-name", "shop-feed").await;
    let b = &browser.client;
    b.find(Locator::Css("#source"))
        .await
        .unwrap()
        .select_by_value("shop")
        .await
        .unwrap();
    b.find(Locator::Css("#exports"))
        .await
        .unwrap()
        .select_by_value("ads")
        .await
        .unwrap();
    browser.fill("#schedule", "30 4 * * *").await;
    browser.click("main form button[value=columns]").await;
    browser.until("#columns", |t| t.contains("price")).await;
    browser.click("#keep-price").await;
    browser.fill("#as-title", "name").await;
    browser.click("main form button[value=preview]").await;
    browser
        .until("#schedule-next", |t| t.matches("04:30:00 UTC").count() == 3)
        .await;
    browser.step("pipeline-built").await;
    browser.click("main form button[value=save]").await;
    browser.until("h1", |t| t == "shop-feed").await;
    browser.click("main form button[type=submit]").await;
    browser
        .until("main section.card h3", |t| t.contains("console"))
        .await;
    browser.click("main section.card h3 a").await;
    // The run page does not follow the run: reload until it has ended.
    let b = &browser.client;
    wait_until(
        "the pipeline run to succeed",
        Duration::from_secs(90),
        || async {
            b.refresh().await.map_err(|e| e.to_string())?;
            let status = match b.find(Locator::Css("#pipeline-run-status")).await {
                Ok(status) => status.text().await.map_err(|e| e.to_string())?,
                Err(e) => return Err(e.to_string()),
            };
            match status.as_str() {
                "succeeded" => Ok(()),
                "failed" => panic!("the pipeline run failed: {}", b.source().await.unwrap()),
                other => Err(other.to_owned()),
            }
        },
    )
    .await;
    let dataset = browser.text("#dataset").await;
    let header = browser.text("#dataset thead").await;
    assert!(
        header.contains("name") && !header.contains("price") && !header.contains("title"),
        "{header}"
    );
    assert!(
        dataset.contains("Hat") && dataset.contains("Scarf"),
        "{dataset}"
    );
    browser.step("pipeline-output").await;

    // A stage column field offers the columns of a pipeline's current feed.
    let b = &browser.client;
    b.goto(&format!("{}/console/connectors/tagger", server.url))
        .await
        .unwrap();
    b.find(Locator::Css("#stage-pipeline"))
        .await
        .unwrap()
        .select_by_value("shop-feed")
        .await
        .unwrap();
    browser.click("form.filters button").await;
    let offered = browser
        .until("#option-KEY_COLUMN", |t| t.contains("name"))
        .await;
    assert!(
        offered.contains("id") && !offered.contains("price"),
        "{offered}"
    );
    browser.step("stage-columns").await;

    // Signed out, the console asks to sign in again.
    browser.click("header form button").await;
    browser.until("h1", |t| t == "Sign in").await;
    let b = &browser.client;
    b.goto(&format!("{}/console/connectors", server.url))
        .await
        .unwrap();
    assert!(b
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));
    browser.step("signed-out").await;
    browser.client.close().await.unwrap();
}
