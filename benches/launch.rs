//! `BENCH launch`: a trivial connector (`python3 -c pass` in the behave image) end to end
//! through cde, in process (submit, claim, container, wait, record,
//! remove), against `docker run --rm` of the same image and command. The two alternate
//! (which goes first alternates too); the line reports medians.
//!
//! Afterwards one traced run of each prints the engine's event timeline on stderr
//! (`launch timeline …`), which is where the time of a run goes.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptionsBuilder;
use cde::model::{RunRequest, RunStatus};
use cde::{Cde, Config};
use futures_util::StreamExt;
use support::{median, ms};

const WARMUP: usize = 2;
const ITERATIONS: usize = 12;
const LIMIT: Duration = Duration::from_secs(300);

fn main() {
    let bench = support::bench_id("launch");
    let data = tempfile::tempdir().expect("a temp dir");
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    support::build_image();
    let config = Config {
        data_dir: data.path().to_path_buf(),
        executable: Some(env!("CARGO_BIN_EXE_cde").into()),
        ..Config::default()
    };
    let cde = rt.block_on(Cde::open(config)).expect("cde opens");
    let labels = vec![
        format!("{}={bench}", support::BENCH_LABEL),
        format!("cde.instance={}", cde.store.instance()),
    ];
    support::watchdog("launch", LIMIT, labels.clone(), data.path());
    let _cleanup = support::Cleanup { labels };
    rt.block_on(cde.register(support::trivial_manifest()))
        .expect("the trivial connector registers");

    let run_cde = || {
        let begun = Instant::now();
        let run = rt
            .block_on(cde.run(request()))
            .expect("the run is recorded");
        let took = begun.elapsed();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        took
    };
    // The first run builds (or finds) the container-api binary; both sides warm the page cache.
    for _ in 0..WARMUP {
        run_cde();
        support::docker_run(&bench);
    }
    let settled = support::settle(Duration::from_secs(45));
    let load_before = format!("{} {settled}", support::machine_load());
    let (mut cde_ms, mut docker_ms) = (Vec::new(), Vec::new());
    for i in 0..ITERATIONS {
        if i % 2 == 0 {
            cde_ms.push(ms(run_cde()));
            docker_ms.push(ms(support::docker_run(&bench)));
        } else {
            docker_ms.push(ms(support::docker_run(&bench)));
            cde_ms.push(ms(run_cde()));
        }
    }
    let load_after = support::machine_load();
    let (cde_median, docker_median) = (median(&cde_ms), median(&docker_ms));

    rt.block_on(async {
        let events = Events::subscribe(&format!("cde.instance={}", cde.store.instance())).await;
        let t0 = now_nanos();
        let run = cde.submit(request()).await.expect("submitted");
        let submitted = now_nanos();
        let run = cde.claim(run).await.expect("claimed").expect("ours");
        let claimed = now_nanos();
        let run = cde.execute(run).await.expect("executed");
        let executed = now_nanos();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        let marks = [
            ("bench:submitted", submitted),
            ("bench:claimed", claimed),
            ("bench:recorded", executed),
        ];
        eprintln!(
            "launch timeline cde (ms since submit): {}",
            events.finish(t0, &marks).await
        );

        let events = Events::subscribe(&format!("{}={bench}", support::BENCH_LABEL)).await;
        let t0 = now_nanos();
        let bench = bench.clone();
        tokio::task::spawn_blocking(move || support::docker_run(&bench))
            .await
            .expect("docker run");
        let marks = [("bench:exited", now_nanos())];
        eprintln!(
            "launch timeline docker run (ms since start): {}",
            events.finish(t0, &marks).await
        );
    });
    eprintln!("launch samples cde_ms={cde_ms:.0?} docker_run_ms={docker_ms:.0?}");
    eprintln!("launch machine before: {load_before}; after: {load_after}");
    println!(
        "BENCH launch iterations={ITERATIONS} cde_ms={cde_median:.0} \
         docker_run_ms={docker_median:.0} ratio_vs_docker_run={:.2}",
        cde_median / docker_median
    );
}

fn request() -> RunRequest {
    RunRequest {
        connector: support::TRIVIAL_CODE.into(),
        ..Default::default()
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i64
}

/// The engine's container events for one label, collected in the background.
struct Events {
    task: tokio::task::JoinHandle<()>,
    seen: tokio::sync::mpsc::UnboundedReceiver<(i64, String)>,
}

impl Events {
    async fn subscribe(label: &str) -> Self {
        let docker = bollard::Docker::connect_with_local_defaults().expect("docker");
        let filters = HashMap::from([("type", vec!["container"]), ("label", vec![label])]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let (send, seen) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = Box::pin(docker.events(Some(options)));
            while let Some(Ok(event)) = stream.next().await {
                let actor = event.actor.unwrap_or_default();
                let attributes = actor.attributes.unwrap_or_default();
                let who = if attributes.contains_key("cde.run") {
                    "run"
                } else {
                    "container"
                };
                let what = format!("{who}:{}", event.action.unwrap_or_default());
                let _ = send.send((event.time_nano.unwrap_or_default(), what));
            }
        });
        // The subscription is made when the task first polls the stream.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Self { task, seen }
    }

    /// `what@ms` for every event and mark, in time order, relative to `t0`.
    async fn finish(mut self, t0: i64, marks: &[(&str, i64)]) -> String {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.task.abort();
        let mut all: Vec<(i64, String)> = marks
            .iter()
            .map(|(what, at)| (*at, (*what).to_owned()))
            .collect();
        while let Ok(event) = self.seen.try_recv() {
            all.push(event);
        }
        all.sort();
        all.iter()
            .map(|(at, what)| format!("{what}@{:.0}", (at - t0) as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
