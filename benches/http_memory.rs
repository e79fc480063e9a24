//! `BENCH http_memory`: the peak memory of cde's declarative HTTP connector pulling
//! 1 000 000 records (pages of 1 000, OFFSET pagination) from a zero-latency mock API on
//! 127.0.0.1 into the real Container API in this process.
//!
//! `cargo bench --bench http_memory`. Prints one line:
//!
//! `BENCH http_memory records=1000000 engine_hwm_mb=<peak> limit_mb=50 baseline_idle_mb=<peak of a 1-page run>`
//!
//! * `engine_hwm_mb`: the child's (`cde http-connector --definition FILE`) peak resident
//!   set in MiB: its `VmHWM` read from `/proc/<pid>/status` every 5 ms (`ru_maxrss` from
//!   `wait4(2)` is printed on stderr but not used: Linux carries into it the pre-exec copy
//!   of this bench process, ~430 MiB of prebuilt pages). Goal: under `limit_mb`.
//! * `baseline_idle_mb`: the same for a run that pulls one page of 1 000 (then the empty
//!   page that ends it), in the same bench; the peak of `cde http-connector
//!   --health-check` (which exits at once) goes to stderr beside it.
//!
//! The Container API's and the mock's memory are this process's, not the engine's. The
//! output file's lines are counted (1 000 000). `CDE_BENCH_RECORDS` changes the million;
//! a watchdog ends the bench after `CDE_BENCH_LIMIT_SECS` (600).

#[path = "support/http_pull.rs"]
mod http_pull;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_pull::{env_or, run_child, ContainerApi, Ended, MockApi, Pages, PAGE_SIZE};

const NAME: &str = "http_memory";
const LIMIT_MB: f64 = 50.0;

fn main() {
    let _guard = http_pull::Guard;
    let total: usize = env_or("CDE_BENCH_RECORDS", 1_000_000);
    http_pull::watchdog(
        NAME,
        Duration::from_secs(env_or("CDE_BENCH_LIMIT_SECS", 600)),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let built = Instant::now();
        let small = Arc::new(Pages::build(PAGE_SIZE));
        let large = Arc::new(Pages::build(total));
        eprintln!(
            "{NAME}: {total} records in {} pages ({:.0} MB of JSON) built in {:.1}s; load1={}",
            total.div_ceil(PAGE_SIZE),
            large.bytes as f64 / 1e6,
            built.elapsed().as_secs_f64(),
            http_pull::load1()
        );
        let mock = MockApi::start(small.clone()).await;
        let dir = http_pull::temp_dir("cde-bench-http-memory-");
        let definition = dir.path().join("definition.json");
        std::fs::write(&definition, http_pull::definition()).expect("writing the definition");

        let mut health = Command::new(http_pull::cde());
        health
            .args(["http-connector", "--health-check"])
            .env_clear()
            .stdin(Stdio::null());
        let health = tokio::task::spawn_blocking(move || run_child(health, true, |_| {}))
            .await
            .expect("the waiter");
        assert!(health.status.success(), "--health-check: {}", health.status);
        eprintln!("{NAME}: health check: {}", describe(&health));

        let one_page = pull(&mock, dir.path(), &definition, "one-page", PAGE_SIZE).await;
        mock.serve(large);
        let full = pull(&mock, dir.path(), &definition, "full", total).await;
        eprintln!("{NAME}: load1={} at the end", http_pull::load1());
        println!(
            "BENCH http_memory records={total} engine_hwm_mb={:.1} limit_mb={LIMIT_MB:.0} baseline_idle_mb={:.1}",
            full.peak_mib(),
            one_page.peak_mib()
        );
    });
}

/// One run of the engine into a fresh Container API, its memory sampled.
async fn pull(mock: &MockApi, dir: &Path, definition: &Path, name: &str, total: usize) -> Ended {
    let run_dir = dir.join(name);
    let container = ContainerApi::start(&run_dir).await;
    let stderr = std::fs::File::create(run_dir.join("engine.stderr")).expect("a stderr file");
    let mut command = http_pull::engine_command(definition, &mock.url, &container.url);
    command.stdout(Stdio::null()).stderr(stderr);
    mock.take();
    let ended = tokio::task::spawn_blocking(move || run_child(command, true, |_| {}))
        .await
        .expect("the engine's waiter");
    let seen = mock.take();
    let (lines, _) = container.finish().await;
    if !ended.status.success() || lines != total as u64 {
        let stderr = std::fs::read_to_string(run_dir.join("engine.stderr")).unwrap_or_default();
        panic!(
            "cde http-connector ({name}): {}, {lines} records written of {total}; stderr:\n{stderr}",
            ended.status
        );
    }
    eprintln!(
        "{NAME}: {name}: {total} records, {} requests, {:.0} records/s, {}",
        seen.requests,
        total as f64 / ended.wall.as_secs_f64(),
        describe(&ended)
    );
    let _ = std::fs::remove_dir_all(&run_dir);
    ended
}

fn describe(ended: &Ended) -> String {
    format!(
        "peak {:.1} MiB (VmHWM sampled {:.1} MiB in {} samples, ru_maxrss {:.1} MiB), {:.2}s wall, cpu {:.2}s",
        ended.peak_mib(),
        ended.sampled_hwm_kib as f64 / 1024.0,
        ended.samples,
        ended.max_rss_kib as f64 / 1024.0,
        ended.wall.as_secs_f64(),
        ended.cpu().as_secs_f64()
    )
}
