//! Helpers shared by the run benchmarks (launch, concurrent, rss): the trivial connector,
//! the `docker run --rm` baseline, medians, clean-up by label and a watchdog that bounds
//! a bench in time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cde::model::Manifest;

/// The test connector image (stdlib Python on the local base image).
pub const IMAGE: &str = "cde-test/behave:latest";
/// The trivial connector: the interpreter starts and exits 0, nothing else.
pub const TRIVIAL_COMMAND: [&str; 3] = ["python3", "-c", "pass"];
pub const TRIVIAL_CODE: &str = "bench-trivial";
/// Baseline containers carry `cde.bench=<bench id>`; cde's own carry `cde.instance=<id>`.
pub const BENCH_LABEL: &str = "cde.bench";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("orchestrator/ has a parent")
        .to_path_buf()
}

/// Builds `cde-test/behave:latest` (a second or so when Docker's cache has it).
pub fn build_image() {
    cde::demo::build_image("tests/connectors/behave").expect("the behave image builds");
}

/// The behave image with `python3 -c pass` as its command, and no health-check argument
/// (the health check then runs the same trivial command).
pub fn trivial_manifest() -> Manifest {
    let manifest = serde_json::json!({
        "code": TRIVIAL_CODE,
        "label": "Trivial connector (benchmarks)",
        "type": "data-source",
        "image": IMAGE,
        "command": TRIVIAL_COMMAND[0],
        "arguments": &TRIVIAL_COMMAND[1..],
    });
    Manifest::parse(&manifest.to_string(), true).expect("a valid manifest")
}

/// A unique id for this bench process, used in labels.
pub fn bench_id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// `docker run --rm --label cde.bench=<id> <image> python3 -c pass`, timed.
pub fn docker_run(bench: &str) -> Duration {
    let begun = Instant::now();
    let status = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--label",
            &format!("{BENCH_LABEL}={bench}"),
            IMAGE,
        ])
        .args(TRIVIAL_COMMAND)
        .stdin(Stdio::null())
        .status()
        .expect("docker runs");
    let took = begun.elapsed();
    assert!(status.success(), "docker run failed: {status}");
    took
}

/// Force-removes every container carrying `label` (`key=value`); returns how many.
pub fn remove_labelled(label: &str) -> usize {
    let Ok(listed) = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
    else {
        return 0;
    };
    let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    ids.len()
}

/// Removes the containers of the given labels when dropped, also after a panic.
pub struct Cleanup {
    pub labels: Vec<String>,
}

impl Cleanup {
    pub fn run(&self) -> usize {
        self.labels.iter().map(|label| remove_labelled(label)).sum()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let left = self.run();
        if left > 0 {
            eprintln!("bench clean-up removed {left} container(s)");
        }
    }
}

/// Ends the process if the bench is still running after `limit`, first removing the
/// labelled containers and the data directory (an exit skips destructors).
pub fn watchdog(name: &'static str, limit: Duration, labels: Vec<String>, data_dir: &Path) {
    let data_dir = data_dir.to_path_buf();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("BENCH {name} aborted: still running after {limit:?}");
        let removed: usize = labels.iter().map(|label| remove_labelled(label)).sum();
        eprintln!("removed {removed} container(s)");
        let _ = std::fs::remove_dir_all(&data_dir);
        std::process::exit(1);
    });
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    assert!(n > 0, "median of nothing");
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The 1-minute load average and the number of running containers, to print with results.
pub fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let running = Command::new("docker")
        .args(["ps", "-q"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .count()
                .to_string()
        })
        .unwrap_or_else(|_| "?".into());
    format!("load1={load} containers_running={running}")
}

/// CPU time (seconds) used so far by the whole machine (busy time of all cores), the
/// Docker engine's daemons and this process, to tell engine work from orchestrator work.
/// Short-lived processes (shims, runc, the containers) only show in `machine`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub machine: f64,
    pub dockerd: f64,
    pub containerd: f64,
    pub this: f64,
}

impl Cpu {
    pub fn now() -> Self {
        let ticks = 100.0; // USER_HZ on Linux
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let cpu = stat.lines().next()?.to_owned();
                let fields: Vec<f64> = cpu
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
                Some(
                    fields
                        .iter()
                        .take(8)
                        .enumerate()
                        .filter(|(i, _)| *i != 3 && *i != 4)
                        .map(|(_, v)| v)
                        .sum::<f64>(),
                )
            })
            .unwrap_or_default()
            / ticks;
        let (mut dockerd, mut containerd) = (0.0, 0.0);
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            match comm.trim() {
                "dockerd" => dockerd += process_cpu(&pid.to_string()),
                "containerd" => containerd += process_cpu(&pid.to_string()),
                _ => {}
            }
        }
        Self {
            machine,
            dockerd,
            containerd,
            this: process_cpu("self"),
        }
    }

    /// What was used between `self` and `later`, per run, as `name_ms=…` pairs.
    pub fn per_run(&self, later: &Cpu, runs: usize) -> String {
        let per = |a: f64, b: f64| (b - a) * 1000.0 / runs as f64;
        format!(
            "machine_ms={:.0} dockerd_ms={:.0} containerd_ms={:.0} bench_process_ms={:.0}",
            per(self.machine, later.machine),
            per(self.dockerd, later.dockerd),
            per(self.containerd, later.containerd),
            per(self.this, later.this),
        )
    }
}

/// utime + stime + cutime + cstime of a process, in seconds.
fn process_cpu(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 2..]) else {
        return 0.0;
    };
    let fields: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // rest[0] is the state; utime is field 14 of stat, i.e. index 11 of rest.
    fields
        .get(10..14)
        .map_or(0.0, |times| times.iter().sum::<f64>() / 100.0)
}

/// Waits (at most `limit`) until the machine is quiet: less than a quarter of its CPU
/// time busy over one second, e.g. after the engine's clean-up of an earlier bench's
/// containers. Returns what it saw, for the report.
pub fn settle(limit: Duration) -> String {
    let begun = Instant::now();
    loop {
        let before = Cpu::now().machine;
        let wall = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let busy = (Cpu::now().machine - before) / wall.elapsed().as_secs_f64() / cores;
        if busy < 0.25 || begun.elapsed() >= limit {
            return format!(
                "busy={:.0}% after waiting {:.0}s",
                busy * 100.0,
                begun.elapsed().as_secs_f64()
            );
        }
    }
}
