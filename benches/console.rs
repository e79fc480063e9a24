//! `BENCH console`: how fast the console's runs and pipelines pages answer with a long
//! history: 10 000 connector runs and 10 000 pipeline runs (10 pipelines of 1 000) in a
//! SQLite store, the router served in process on loopback, one signed-in client asking
//! for each page one request after another. The baseline is `/health` on the same server
//! in the same run; times are whole requests as the client sees them (an upper bound on
//! server time). Target: under 100 ms.

mod support;

use std::time::Instant;

use cde::model::{Pipeline, PipelineStatus, RunRequest, RunStatus};
use cde::{Cde, Config};
use chrono::Utc;
use serde_json::json;
use support::{median, ms};

const RUNS: usize = 10_000;
const PIPELINES: usize = 10;
const REQUESTS: usize = 200;
const TOKEN: &str = "bench-console-token";

/// Median and 99th percentile, in ms, of `REQUESTS` GETs of `path`.
async fn time(http: &reqwest::Client, base: &str, path: &str, cookie: &str) -> (f64, f64) {
    let mut times = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let begun = Instant::now();
        let answer = http
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), 200, "{path}");
        answer.bytes().await.expect("a body");
        times.push(ms(begun.elapsed()));
    }
    let p99 = {
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() * 99 / 100]
    };
    (median(&times), p99)
}

fn main() {
    let data = tempfile::tempdir().expect("a temp dir");
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let config = Config {
            data_dir: data.path().to_owned(),
            ..Config::default()
        };
        let cde = std::sync::Arc::new(Cde::open(config).await.expect("cde opens"));
        let manifest = cde::model::Manifest::parse(
            &json!({"code": "shop", "label": "Shop", "type": "data-source", "image": "x", "command": "x",
                    "options": [{"name": "ROWS", "field_type": "textarea", "default": "[]"}]})
            .to_string(),
            true,
        )
        .expect("a manifest");
        cde.store.register(&manifest).await.expect("registered");

        let filled = Instant::now();
        let template = cde
            .submit(RunRequest {
                connector: "shop".into(),
                ..Default::default()
            })
            .await
            .expect("a run");
        for n in 0..RUNS {
            let mut run = template.clone();
            run.id = uuid::Uuid::now_v7().to_string();
            run.status = [RunStatus::Succeeded, RunStatus::Failed][n % 2];
            run.finished_at = Some(Utc::now());
            run.output_rows = Some(n as i64);
            cde.store.insert_run(&run, None).await.expect("a run recorded");
        }
        for p in 0..PIPELINES {
            let pipeline = Pipeline::parse(
                &json!({"name": format!("pipeline-{p}"), "schedule": "0 3 * * *",
                        "sources": [{"connector": "shop"}]})
                .to_string(),
                true,
            )
            .expect("a pipeline");
            cde.store.save_pipeline(&pipeline).await.expect("saved");
            for _ in 0..RUNS / PIPELINES {
                let mut run = cde
                    .begin_pipeline_run(&pipeline.name, "bench")
                    .await
                    .expect("begun");
                run.status = PipelineStatus::Succeeded;
                run.finished_at = Some(Utc::now());
                cde.store.finish_pipeline_run(&run).await.expect("finished");
            }
        }
        let filled = filled.elapsed();

        let router = cde::console::app(cde.clone(), TOKEN.into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        let signed_in = http
            .post(format!("{base}/console/sign-in"))
            .form(&[("token", TOKEN)])
            .send()
            .await
            .expect("signed in");
        let cookie = signed_in.headers()["set-cookie"]
            .to_str()
            .expect("a cookie")
            .split(';')
            .next()
            .expect("a cookie")
            .to_owned();

        let health = time(&http, &base, "/health", &cookie).await;
        let runs = time(&http, &base, "/console/runs", &cookie).await;
        let failed = time(&http, &base, "/console/runs?status=failed", &cookie).await;
        let pipelines = time(&http, &base, "/console/pipelines", &cookie).await;
        let pipeline = time(&http, &base, "/console/pipelines/pipeline-0", &cookie).await;
        let slowest = [runs.0, failed.0, pipelines.0, pipeline.0]
            .into_iter()
            .fold(0.0, f64::max);
        println!(
            "BENCH console runs_page_p50_ms={:.2} runs_page_p99_ms={:.2} failed_runs_page_p50_ms={:.2} pipelines_page_p50_ms={:.2} pipelines_page_p99_ms={:.2} pipeline_page_p50_ms={:.2} pipeline_page_p99_ms={:.2} health_p50_ms={:.2} ratio_slowest_vs_health={:.1} runs={RUNS} pipeline_runs={RUNS} requests={REQUESTS} fill_s={:.1}",
            runs.0,
            runs.1,
            failed.0,
            pipelines.0,
            pipelines.1,
            pipeline.0,
            pipeline.1,
            health.0,
            slowest / health.0,
            filled.as_secs_f64(),
        );
    });
}
