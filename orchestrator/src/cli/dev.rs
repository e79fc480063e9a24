//! `cde dev`: the author's loop: build the folder's image, run it with these options and
//! feeds, stream its logs, show its output as a table; with `--watch`, again on every edit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use console::style;
use serde_json::{Map, Value};

use super::backend::{Backend, Embedded};
use super::output::Output;
use crate::connector_folder::{Build, ConnectorFolder};
use crate::error::{Error, Result};
use crate::model::{Manifest, RunInputs, RunRequest};
use crate::options::OptionValues;
use crate::{Cde, Config};

/// How the image is made (shared with `cde test`).
#[derive(Args, Clone, Default)]
pub struct BuildArgs {
    /// A shell command that builds the manifest's image instead of `docker build`
    /// (e.g. `sample-connectors/build.sh python`, which prepares a wheelhouse first).
    #[arg(long = "build", value_name = "COMMAND")]
    command: Option<String>,
    /// A build argument of `docker build`, NAME=VALUE (repeatable), e.g. BASE_IMAGE=...
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    args: Vec<String>,
}

impl BuildArgs {
    pub fn build(&self) -> Build {
        Build {
            command: self.command.clone(),
            args: self.args.clone(),
        }
    }
}

#[derive(Args)]
pub struct Dev {
    /// The connector folder: its Dockerfile and its manifest.
    path: PathBuf,
    /// The manifest, when it is not manifest.yaml (or .yml, .json) in the folder.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    build: BuildArgs,
    /// An option value, NAME=VALUE (repeatable; over those of --options).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Option values from a file: a JSON or YAML map of names to values.
    #[arg(long, value_name = "FILE")]
    options: Option<PathBuf>,
    /// The feed a data service or export reads (JSONL, one object per line).
    #[arg(long, value_name = "FILE.jsonl")]
    input: Option<PathBuf>,
    /// For an export delta: the previous snapshot.
    #[arg(long, value_name = "FILE.jsonl")]
    previous: Option<PathBuf>,
    /// Rows of the output shown.
    #[arg(long, default_value_t = 10)]
    rows: usize,
    /// Build and run again whenever a file in the folder changes (hidden files, target/
    /// and wheelhouse/ aside); Ctrl-C ends.
    #[arg(long)]
    watch: bool,
}

impl Dev {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        let operator = backend.local("dev")?;
        // Runs of work in progress stay out of the operator's catalog and run list.
        let config = Config {
            data_dir: operator.config.data_dir.join("dev"),
            database_url: None,
            ..operator.config.clone()
        };
        let dev = Embedded(Arc::new(Cde::open(config).await?));
        let folder = ConnectorFolder::open(&self.path, self.manifest.as_deref())?;
        if !self.watch {
            return self.cycle(&dev, &folder, out).await;
        }
        let (_watcher, mut changes) = watch(&folder.dir)?;
        loop {
            if let Err(e) = self.cycle(&dev, &folder, out).await {
                eprintln!("{} {e}", style("error:").red().bold());
            }
            out.note(|| {
                format!(
                    "cde dev: watching {} for changes (Ctrl-C ends)",
                    folder.dir.display()
                )
            });
            tokio::select! {
                changed = changes.recv() => if changed.is_none() { return Ok(ExitCode::SUCCESS) },
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
            // Edits come in bursts (an editor's save, a checkout): take them all.
            while tokio::time::timeout(Duration::from_millis(300), changes.recv())
                .await
                .is_ok_and(|c| c.is_some())
            {}
            out.note(|| "cde dev: a file changed; building again".into());
        }
    }

    /// Build, register, run, show.
    async fn cycle(
        &self,
        dev: &Embedded,
        folder: &ConnectorFolder,
        out: Output,
    ) -> Result<ExitCode> {
        let manifest = folder.load_manifest()?;
        out.note(|| format!("cde dev: building {}", manifest.image));
        folder.build(&manifest, &self.build.build()).await?;
        let registration = dev.0.register(manifest.clone()).await?;
        out.note(|| {
            format!(
                "cde dev: {} version {} (health check passed)",
                registration.code, registration.version
            )
        });
        let request = RunRequest {
            connector: manifest.code.clone(),
            options: self.option_values()?,
            ..Default::default()
        };
        let inputs = RunInputs {
            input: self.input.clone(),
            previous: self.previous.clone(),
        };
        let (run, executor) = dev.start(request, &inputs).await?;
        let status = super::run::watch_run(dev, run.clone(), executor, out).await?;
        if !out.json {
            for feedback in [false, true] {
                if let Some(table) = self.table(&dev.0, &run.id, &manifest, feedback).await? {
                    println!("{table}");
                }
            }
        }
        Ok(status)
    }

    fn option_values(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let mut values = match &self.options {
            Some(path) => read_options(path)?,
            None => Default::default(),
        };
        values.extend(OptionValues::parse_pairs(&self.set)?);
        Ok(values)
    }

    /// The first rows of the run's output (or feedback) with its row count and columns,
    /// hidden (`___`) columns marked `*`; `None` when the run wrote none.
    async fn table(
        &self,
        cde: &Cde,
        run_id: &str,
        manifest: &Manifest,
        feedback: bool,
    ) -> Result<Option<String>> {
        let keep = self.rows;
        let Shown {
            rows,
            count,
            mut columns,
            ..
        } = cde
            .fold_output(
                run_id,
                feedback,
                Shown::default(),
                move |mut shown, record| {
                    if let Value::Object(record) = record {
                        shown.add(record, keep);
                    }
                    shown
                },
            )
            .await?;
        if count == 0 {
            return Ok(None);
        }
        // Hidden columns after the others (a stable sort keeps each group's order).
        columns.sort_by_key(|c| c.starts_with("___"));
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(columns.iter().map(|c| match c.starts_with("___") {
                true => format!("{c}*"),
                false => c.clone(),
            }));
        for row in &rows {
            table.add_row(columns.iter().map(|c| cell(row.get(c))));
        }
        let hidden = columns.iter().filter(|c| c.starts_with("___")).count();
        Ok(Some(format!(
            "{} of {}: {count} rows, {} columns{}{}\n{table}",
            if feedback { "feedback" } else { "output" },
            manifest.code,
            columns.len(),
            match hidden {
                0 => String::new(),
                n => format!(" ({n} hidden, marked *)"),
            },
            match count > rows.len() {
                true => format!("; the first {}", rows.len()),
                false => String::new(),
            },
        )))
    }
}

/// What a table shows of an output: its first rows, its row count, its columns in the
/// order they first appear.
#[derive(Default)]
struct Shown {
    rows: Vec<Map<String, Value>>,
    count: usize,
    columns: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl Shown {
    fn add(&mut self, record: Map<String, Value>, keep: usize) {
        for column in record.keys() {
            if self.seen.insert(column.clone()) {
                self.columns.push(column.clone());
            }
        }
        self.count += 1;
        if self.rows.len() < keep {
            self.rows.push(record);
        }
    }
}

fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match text.chars().count() > 40 {
        true => format!("{}…", text.chars().take(39).collect::<String>()),
        false => text,
    }
}

/// Option values from a JSON or YAML map; numbers and booleans become text as in a manifest.
fn read_options(path: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let invalid = |e: String| Error::InvalidConfig(format!("options file {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let json = path.extension().is_some_and(|ext| ext == "json");
    let map: std::collections::BTreeMap<String, Value> =
        crate::document::parse(&text, json).map_err(invalid)?;
    map.into_iter()
        .map(
            |(name, value)| match crate::model::manifest::scalar_text(value) {
                Ok(Some(text)) => Ok((name, text)),
                Ok(None) => Err(invalid(format!(
                    "option {name} must be a string, number or boolean, not null"
                ))),
                Err(other) => Err(invalid(format!(
                    "option {name} must be a string, number or boolean, not {other}"
                ))),
            },
        )
        .collect()
}

/// Watches `dir` (recursively); each burst of relevant changes sends one message.
fn watch(
    dir: &Path,
) -> Result<(
    notify_debouncer_mini::Debouncer<notify::RecommendedWatcher>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let root = dir.canonicalize().map_err(Error::file("resolving", dir))?;
    let base = root.clone();
    let mut debouncer = notify_debouncer_mini::new_debouncer(
        Duration::from_millis(200),
        move |events: notify_debouncer_mini::DebounceEventResult| {
            let relevant =
                events.is_ok_and(|events| events.iter().any(|event| relevant(&base, &event.path)));
            if relevant {
                let _ = tx.send(());
            }
        },
    )
    .map_err(|e| Error::Other(format!("watching {}: {e}", dir.display())))?;
    debouncer
        .watcher()
        .watch(&root, notify::RecursiveMode::Recursive)
        .map_err(|e| Error::Other(format!("watching {}: {e}", dir.display())))?;
    Ok((debouncer, rx))
}

/// A change worth a rebuild: not below a hidden folder, `target/` or `wheelhouse/`
/// (build products), nor a hidden file.
fn relevant(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    relative.components().all(|c| {
        let name = c.as_os_str().to_string_lossy();
        !name.starts_with('.') && name != "target" && name != "wheelhouse"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_products_and_hidden_files_do_not_count_as_edits() {
        let root = Path::new("/src/conn");
        assert!(relevant(root, Path::new("/src/conn/main.py")));
        assert!(relevant(root, Path::new("/src/conn/src/lib.rs")));
        assert!(!relevant(root, Path::new("/src/conn/.build/venv/x")));
        assert!(!relevant(root, Path::new("/src/conn/.main.py.swp")));
        assert!(!relevant(root, Path::new("/src/conn/target/debug/x")));
        assert!(!relevant(root, Path::new("/src/conn/wheelhouse/a.whl")));
        assert!(!relevant(root, Path::new("/elsewhere/main.py")));
    }

    #[test]
    fn options_files_give_text_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("options.yaml");
        std::fs::write(&path, "NAME: demo\nCOUNT: 3\nLOUD: true\n").unwrap();
        let values = read_options(&path).unwrap();
        assert_eq!(values["NAME"], "demo");
        assert_eq!(values["COUNT"], "3");
        assert_eq!(values["LOUD"], "1");
        std::fs::write(&path, "NAME: [a]\n").unwrap();
        let error = read_options(&path).unwrap_err().to_string();
        assert!(error.contains("option NAME must be"), "{error}");
    }
}
