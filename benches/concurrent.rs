//! `BENCH concurrent`: 100 runs of the trivial connector (`python3 -c pass` in the behave
//! image), 10 at a time, through cde's scheduler (in process, `max_concurrent_runs = 10`:
//! all 100 are queued at once and the scheduler executes them in FIFO order), against
//! `seq 100 | xargs -P10 docker run --rm` of the same image and command. The two
//! alternate for up to `ROUNDS` rounds within a time budget; the line reports medians.

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cde::model::{RunFilter, RunRequest, RunStatus};
use cde::server::{Loop, Server};
use cde::{Cde, Config};
use support::median;

const RUNS: usize = 100;
const PARALLEL: usize = 10;
const ROUNDS: usize = 3;
/// No new round starts after this much time.
const BUDGET: Duration = Duration::from_secs(240);
const LIMIT: Duration = Duration::from_secs(540);

fn main() {
    let bench = support::bench_id("concurrent");
    let data = tempfile::tempdir().expect("a temp dir");
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    support::build_image();
    let config = Config {
        data_dir: data.path().to_path_buf(),
        executable: Some(env!("CARGO_BIN_EXE_cde").into()),
        max_concurrent_runs: PARALLEL,
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    let cde = Arc::new(rt.block_on(Cde::open(config)).expect("cde opens"));
    let labels = vec![
        format!("{}={bench}", support::BENCH_LABEL),
        format!("cde.instance={}", cde.store.instance()),
    ];
    support::watchdog("concurrent", LIMIT, labels.clone(), data.path());
    let _cleanup = support::Cleanup { labels };
    rt.block_on(cde.register(support::trivial_manifest()))
        .expect("the trivial connector registers");
    // The management API comes along unused; its token is never handed out.
    let token = uuid::Uuid::new_v4().to_string();
    let server = rt
        .block_on(Server::start(cde.clone(), token, &[Loop::Schedule]))
        .expect("the scheduler starts");

    // Warm-up: the container-api binary, the page cache, the engine's first containers.
    rt.block_on(cde_batch(&cde, PARALLEL));
    xargs_batch(&bench, PARALLEL);

    let settled = support::settle(Duration::from_secs(45));
    let begun = Instant::now();
    let load_before = format!("{} {settled}", support::machine_load());
    let (mut cde_s, mut xargs_s) = (Vec::new(), Vec::new());
    let (mut cde_cpu, mut xargs_cpu) = (Vec::new(), Vec::new());
    let mut measure_cde = || {
        let cpu = support::Cpu::now();
        cde_s.push(rt.block_on(cde_batch(&cde, RUNS)).as_secs_f64());
        cde_cpu.push(cpu.per_run(&support::Cpu::now(), RUNS));
    };
    let mut measure_xargs = || {
        let cpu = support::Cpu::now();
        xargs_s.push(xargs_batch(&bench, RUNS).as_secs_f64());
        xargs_cpu.push(cpu.per_run(&support::Cpu::now(), RUNS));
    };
    for round in 0..ROUNDS {
        if round > 0 && begun.elapsed() > BUDGET {
            break;
        }
        if round % 2 == 0 {
            measure_cde();
            measure_xargs();
        } else {
            measure_xargs();
            measure_cde();
        }
    }
    let load_after = support::machine_load();
    rt.block_on(server.shutdown());
    let (cde_median, xargs_median) = (median(&cde_s), median(&xargs_s));
    eprintln!("concurrent samples cde_s={cde_s:.1?} xargs_s={xargs_s:.1?}");
    for (round, (cde, xargs)) in cde_cpu.iter().zip(&xargs_cpu).enumerate() {
        eprintln!("concurrent cpu per run, round {round}: cde {cde}; xargs {xargs}");
    }
    eprintln!("concurrent machine before: {load_before}; after: {load_after}");
    println!(
        "BENCH concurrent runs={RUNS} parallel={PARALLEL} rounds={} cde_s={cde_median:.1} \
         xargs_s={xargs_median:.1} ratio_vs_xargs={:.2}",
        cde_s.len(),
        cde_median / xargs_median
    );
}

/// Queues `runs` runs and waits until the scheduler has recorded all of them.
async fn cde_batch(cde: &Cde, runs: usize) -> Duration {
    let begun = Instant::now();
    let mut ids = Vec::with_capacity(runs);
    for _ in 0..runs {
        let request = RunRequest {
            connector: support::TRIVIAL_CODE.into(),
            ..Default::default()
        };
        ids.push(cde.submit(request).await.expect("queued").id);
    }
    loop {
        let active = cde
            .store
            .runs_in(&[RunStatus::Queued, RunStatus::Starting, RunStatus::Running])
            .await
            .expect("runs");
        if active.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = begun.elapsed();
    let filter = RunFilter {
        status: None,
        connector: None,
        limit: Some(runs as i64),
    };
    let recorded = cde.store.runs(&filter).await.expect("runs");
    for id in &ids {
        let run = recorded
            .iter()
            .find(|run| &run.id == id)
            .expect("the run is recorded");
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    }
    took
}

/// `seq <runs> | xargs -P10 -I{} docker run --rm … python3 -c pass`.
fn xargs_batch(bench: &str, runs: usize) -> Duration {
    let script = format!(
        "seq {runs} | xargs -P{PARALLEL} -I{{}} docker run --rm --label {}={bench} {} {}",
        support::BENCH_LABEL,
        support::IMAGE,
        support::TRIVIAL_COMMAND.join(" "),
    );
    let begun = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .status()
        .expect("sh runs");
    let took = begun.elapsed();
    assert!(status.success(), "{script}: {status}");
    took
}
