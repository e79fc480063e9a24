//! `BENCH delta`: the export delta of 1 000 000 rows (about 200 bytes each) with 10 %
//! changed, by `cde::delta::compute` and by DuckDB (from PyPI) doing a full outer join on
//! the key plus a row hash over the same files and writing the same four outputs.
//!
//! `cargo bench --bench delta`; `CDE_BENCH_ROWS` changes the 1 000 000 rows. Each side runs
//! in its own child process (cde: this executable again, with `--delta-child`), so that
//! its peak RSS (VmHWM, `ru_maxrss` for DuckDB) is its own; times are measured inside the
//! children around the work, without process start-up or the import of DuckDB. The two
//! sides alternate `REPEAT` times on the same files; `ratio_vs_duckdb` is the median of the
//! ratios of each cde run to the DuckDB run right after it (so that a change of the load on
//! the shared machine weighs on both), the other figures are medians.
//!
//! DuckDB is installed once with pip into a venv at `target/bench-venv`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cde::delta::{DeltaCounts, OUTPUT_FILES};

const DUCKDB_VERSION: &str = "1.5.6";
const REPEAT: usize = 5;
/// The limit of each child process (a run of either side, the pip install).
const CHILD_LIMIT: Duration = Duration::from_secs(300);
const TARGET_RATIO: f64 = 1.0;
const TARGET_RSS_MB: f64 = 256.0;

/// Per side: the four counts, the seconds taken (wall and CPU) and the peak RSS in MB.
struct Measured {
    counts: DeltaCounts,
    seconds: f64,
    cpu_seconds: f64,
    rss_mb: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--delta-child") {
        child(&args[2..]);
        return;
    }
    let rows: u64 = std::env::var("CDE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let python = duckdb_venv();

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let previous = dir.path().join("previous.jsonl");
    let current = dir.path().join("current.jsonl");
    let started = Instant::now();
    let expected = generate(rows, &previous, &current);
    println!(
        "made {rows} + {} rows ({:.0} MB + {:.0} MB) in {:.1?}; expected {expected:?}",
        expected.new + expected.modified + expected.unchanged,
        size_mb(&previous),
        size_mb(&current),
        started.elapsed()
    );
    let script = dir.path().join("delta.py");
    std::fs::write(&script, DUCKDB_SCRIPT).expect("the script is written");

    let mut cde_runs = Vec::new();
    let mut duckdb_runs = Vec::new();
    for _ in 0..REPEAT {
        let out = dir.path().join("out-cde");
        let mut command = Command::new(std::env::current_exe().expect("this executable"));
        command
            .arg("--delta-child")
            .args([&previous, &current, &out]);
        let measured = measure(command);
        check(&out, measured.counts, expected, "cde");
        cde_runs.push(measured);

        let out = dir.path().join("out-duckdb");
        std::fs::create_dir_all(&out).expect("the output dir");
        let mut command = Command::new(&python);
        command.args([&script, &previous, &current, &out]);
        let measured = measure(command);
        check(&out, measured.counts, expected, "duckdb");
        duckdb_runs.push(measured);
    }

    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let of = |runs: &[Measured], f: fn(&Measured) -> f64| median(runs.iter().map(f).collect());
    let cde_s = of(&cde_runs, |m| m.seconds);
    let duckdb_s = of(&duckdb_runs, |m| m.seconds);
    let rss_mb = of(&cde_runs, |m| m.rss_mb);
    let duckdb_rss_mb = of(&duckdb_runs, |m| m.rss_mb);
    let ratio = median(
        cde_runs
            .iter()
            .zip(&duckdb_runs)
            .map(|(cde, duckdb)| cde.seconds / duckdb.seconds)
            .collect(),
    );
    let all = |runs: &[Measured]| {
        let seconds: Vec<String> = runs
            .iter()
            .map(|m| format!("{:.2} (cpu {:.2})", m.seconds, m.cpu_seconds))
            .collect();
        seconds.join(", ")
    };
    println!(
        "seconds per run: cde {}; duckdb {}",
        all(&cde_runs),
        all(&duckdb_runs)
    );
    println!(
        "BENCH delta rows={rows} ratio_vs_duckdb={ratio:.2} rss_mb={rss_mb:.0} \
         cde_s={cde_s:.2} duckdb_s={duckdb_s:.2} duckdb_rss_mb={duckdb_rss_mb:.0}"
    );
    let verdict = |met: bool| if met { "met" } else { "NOT MET" };
    println!(
        "target: ratio_vs_duckdb <= {TARGET_RATIO}: {}; rss_mb <= {TARGET_RSS_MB}: {}",
        verdict(ratio <= TARGET_RATIO),
        verdict(rss_mb <= TARGET_RSS_MB)
    );
}

/// The cde side, in the child: `<previous> <current> <out dir>`; prints
/// `new modified unchanged deleted seconds cpu_seconds rss_kb`.
fn child(args: &[String]) {
    let [previous, current, out] = args else {
        panic!("usage: --delta-child <previous> <current> <out dir>");
    };
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let counts = cde::delta::compute(
        Some(Path::new(previous)),
        Path::new(current),
        "id",
        Path::new(out),
    )
    .expect("the delta is computed");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmHWM");
    println!(
        "{} {} {} {} {seconds} {cpu} {hwm_kb}",
        counts.new, counts.modified, counts.unchanged, counts.deleted
    );
}

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name, which is in parentheses: utime and stime are the
    // 12th and 13th of them.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| field.parse::<f64>().expect("a number"))
        .sum();
    ticks / 100.0 // USER_HZ
}

/// The DuckDB side: `<previous> <current> <out dir>`, the same output line as the child.
/// The join materializes the rows of both sides once; each output is then copied from it.
const DUCKDB_SCRIPT: &str = r#"
import resource, sys, time
import duckdb

previous, current, out = sys.argv[1:4]
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
cpu_before = cpu()
started = time.perf_counter()
con = duckdb.connect()
con.execute(f"""
    CREATE TEMP TABLE delta AS
    SELECT CASE WHEN p.id IS NULL THEN 'new'
                WHEN c.id IS NULL THEN 'deleted'
                WHEN hash(p) <> hash(c) THEN 'modified'
                ELSE 'unchanged' END AS kind,
           p, c
    FROM read_json('{previous}', format = 'newline_delimited') p
    FULL OUTER JOIN read_json('{current}', format = 'newline_delimited') c ON p.id = c.id
""")
for kind in ["new", "modified", "unchanged", "deleted"]:
    side = "p" if kind == "deleted" else "c"
    con.execute(f"""
        COPY (SELECT unnest({side}) FROM delta WHERE kind = '{kind}')
        TO '{out}/{kind}.jsonl' (FORMAT json)
    """)
counts = dict(con.execute("SELECT kind, count(*) FROM delta GROUP BY kind").fetchall())
seconds = time.perf_counter() - started
cpu_seconds = cpu() - cpu_before
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(*(counts.get(k, 0) for k in ["new", "modified", "unchanged", "deleted"]), seconds, cpu_seconds, rss_kb)
"#;

/// Runs a child within [`CHILD_LIMIT`] and reads its output line.
fn measure(mut command: Command) -> Measured {
    let output = run_bounded(&mut command);
    let fields: Vec<f64> = output
        .split_whitespace()
        .map(|field| field.parse().expect("a number"))
        .collect();
    let [new, modified, unchanged, deleted, seconds, cpu_seconds, rss_kb] = fields[..] else {
        panic!("unexpected child output: {output}");
    };
    Measured {
        counts: DeltaCounts {
            new: new as u64,
            modified: modified as u64,
            unchanged: unchanged as u64,
            deleted: deleted as u64,
        },
        seconds,
        cpu_seconds,
        rss_mb: rss_kb / 1024.0,
    }
}

/// The child's stdout; panics when it fails or outlives [`CHILD_LIMIT`] (then killed).
fn run_bounded(command: &mut Command) -> String {
    let out_file = tempfile::tempfile().expect("a temp file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("a second handle"))
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child is waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still running after {CHILD_LIMIT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{command:?} failed: {status}");
    let mut output = String::new();
    let mut file = out_file;
    std::io::Seek::rewind(&mut file).expect("rewind");
    std::io::Read::read_to_string(&mut file, &mut output).expect("the output is read");
    output
}

/// Checks the counts and the lines of the four output files, then removes them.
fn check(out: &Path, counts: DeltaCounts, expected: DeltaCounts, side: &str) {
    assert_eq!(counts, expected, "{side}: counts");
    let lines = |name: &str| {
        let text = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{side} {name}: {e}"));
        text.iter().filter(|&&b| b == b'\n').count() as u64
    };
    let written: Vec<u64> = OUTPUT_FILES.iter().map(|name| lines(name)).collect();
    assert_eq!(
        written,
        [
            expected.new,
            expected.modified,
            expected.unchanged,
            expected.deleted
        ],
        "{side}: lines written"
    );
    std::fs::remove_dir_all(out).expect("the outputs are removed");
}

/// About 200 bytes; `price` varies with `version`, and `shuffled` puts the columns in
/// another order (the same row all the same).
fn row(i: u64, version: u64, shuffled: bool) -> String {
    let (id, brand, price, stock) = (
        format!("{i:010}"),
        format!("Brand {}", i % 97),
        format!("{}.{:02}", i % 500, version),
        i % 100,
    );
    let title = format!("Product {i} in blue, size M");
    let link = format!("https://shop.example.com/p/{id}");
    if shuffled {
        format!(
            r#"{{"link": "{link}", "stock": {stock}, "price": "{price}", "id": "{id}", "availability": "in stock", "condition": "new", "brand": "{brand}", "title": "{title}"}}"#
        )
    } else {
        format!(
            r#"{{"id":"{id}","title":"{title}","brand":"{brand}","price":"{price}","availability":"in stock","condition":"new","stock":{stock},"link":"{link}"}}"#
        )
    }
}

/// Writes the previous file (`rows` rows) and the current one, where of every 30 rows one
/// is deleted, one modified and one followed by a new row (10 % changed, mixed through
/// the file), and one has its columns in another order but is unchanged.
fn generate(rows: u64, previous: &Path, current: &Path) -> DeltaCounts {
    let create = |path: &Path| {
        BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("a data file"))
    };
    let (mut prev, mut cur) = (create(previous), create(current));
    let mut counts = DeltaCounts::default();
    for i in 0..rows {
        writeln!(prev, "{}", row(i, 0, false)).unwrap();
        match i % 30 {
            0 => counts.deleted += 1,
            1 => {
                writeln!(cur, "{}", row(i, 1, false)).unwrap();
                counts.modified += 1;
            }
            2 => {
                writeln!(cur, "{}", row(i, 0, false)).unwrap();
                writeln!(cur, "{}", row(rows + i, 0, false)).unwrap();
                counts.unchanged += 1;
                counts.new += 1;
            }
            3 => {
                writeln!(cur, "{}", row(i, 0, true)).unwrap();
                counts.unchanged += 1;
            }
            _ => {
                writeln!(cur, "{}", row(i, 0, false)).unwrap();
                counts.unchanged += 1;
            }
        }
    }
    prev.flush().unwrap();
    cur.flush().unwrap();
    counts
}

fn size_mb(path: &Path) -> f64 {
    std::fs::metadata(path).expect("a data file").len() as f64 / 1e6
}

/// The venv's python with DuckDB, made once under the target dir.
fn duckdb_venv() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir");
    let venv = target.join("bench-venv");
    let python = venv.join("bin/python");
    let has_duckdb = |python: &Path| {
        Command::new(python)
            .args([
                "-c",
                &format!("import duckdb; assert duckdb.__version__ == '{DUCKDB_VERSION}'"),
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if has_duckdb(&python) {
        return python;
    }
    let requirement = format!("duckdb=={DUCKDB_VERSION}");
    println!("installing {requirement} into {}", venv.display());
    if !python.exists() {
        run_bounded(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    }
    run_bounded(Command::new(&python).args(["-m", "pip", "install", "--quiet", &requirement]));
    assert!(
        has_duckdb(&python),
        "{requirement} is not importable from {}",
        python.display()
    );
    python
}
