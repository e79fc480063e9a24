//! The console's pages as HTML: a layout, and one function per page. Every value shown
//! goes through maud's escaping; nothing here reads the store.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::form::{self, Filled};
use crate::catalog::CatalogFilter;
use crate::model::{
    Connection, ConnectionCheck, ConnectorVersion, OutputPage, Pipeline, PipelineRun, Role, Run,
    RunStatus,
};
use crate::session::Session;
use strum::{IntoEnumIterator, VariantArray};

/// A page: its title, the signed-in session (for the sign-out form) and its content.
pub fn layout(title: &str, session: Option<&Session>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cde" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/console" { "cde" }
                        @if let Some(session) = session {
                            a href="/console/connectors" { "Catalog" }
                            a href="/console/connections" { "Connections" }
                            a href="/console/pipelines" { "Pipelines" }
                            a href="/console/runs" { "Runs" }
                            form.inline method="post" action="/console/sign-out" {
                                (csrf(session))
                                @if let Some(user) = &session.user { span.user { (user) } }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The hidden field every form post carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

pub fn sign_in(user: Option<&str>, error: Option<&str>) -> Markup {
    let content = html! {
        form.card method="post" action="/console/sign-in" {
            div.field {
                label for="user" { "User" }
                input type="text" id="user" name="user" value=[user] autocomplete="username"
                    aria-describedby="user-description";
                p.description id="user-description" { "Leave it empty to sign in with the API token." }
            }
            div.field.invalid[error.is_some()] {
                label for="token" { "Password or API token" }
                input type="password" id="token" name="token" required autocomplete="current-password"
                    aria-describedby=[error.map(|_| "token-error")] aria-invalid=[error.map(|_| "true")];
                @if let Some(error) = error {
                    p.error id="token-error" role="alert" { (error) }
                }
            }
            button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", None, content)
}

pub fn catalog(
    session: &Session,
    connectors: &[ConnectorVersion],
    categories: &[String],
    filter: &CatalogFilter,
) -> Markup {
    let content = html! {
        form.filters method="get" action="/console/connectors" role="search" {
            div.field {
                label for="q" { "Search" }
                input type="search" id="q" name="q" value=[filter.q.as_deref()];
            }
            div.field {
                label for="category" { "Category" }
                select id="category" name="category" {
                    option value="" { "All" }
                    @for category in categories {
                        option value=(category)
                            selected[filter.category.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(category))] { (category) }
                    }
                }
            }
            div.field {
                label for="role" { "Role" }
                select id="role" name="role" {
                    option value="" { "All" }
                    @for role in Role::iter() {
                        option value=(role) selected[filter.role == Some(role)] { (role) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if connectors.is_empty() {
            p { "No connector matches." }
        }
        ul.catalog {
            @for connector in connectors {
                @let manifest = &connector.manifest;
                li.card {
                    @if let Some(icon) = &manifest.icon {
                        img src=(icon) alt="" width="32" height="32";
                    }
                    h2 { a href={ "/console/connectors/" (manifest.code) } { (manifest.label) } }
                    p.meta {
                        span.badge { (manifest.kind.role()) }
                        " " code { (manifest.code) } " · " (manifest.kind) " · v" (connector.version)
                    }
                    @if !manifest.categories.is_empty() {
                        p.meta { (manifest.categories.join(", ")) }
                    }
                    @if let Some(summary) = &manifest.summary { p { (summary) } }
                }
            }
        }
    };
    layout("Catalog", Some(session), content)
}

/// What the configuration form of a connector says besides its fields.
pub struct Configure<'a> {
    /// Where the form posts: a connector's or a connection's.
    pub action: String,
    /// The connection's name: given (editing one) or entered.
    pub name: Option<&'a str>,
    /// Editing a saved connection: its name is fixed and a connector's run is elsewhere.
    pub saved: bool,
    /// A check's outcome to show: passed, or the reason it failed (next to its field).
    pub passed: bool,
    /// A save refused by its check may be done anyway.
    pub offer_save_anyway: bool,
    /// This page, where the choice of a pipeline's feed for stage columns goes.
    pub page: String,
    pub stage: StageColumns,
}

/// What fills a `stage_columns_dropdown`: the columns of a pipeline's current feed.
#[derive(Debug, Default)]
pub struct StageColumns {
    /// The pipeline whose feed it is.
    pub pipeline: Option<String>,
    pub columns: Vec<String>,
    /// The pipelines to choose from.
    pub pipelines: Vec<String>,
}

/// The form of a connector's options, with the name of the connection it saves.
pub fn configure(
    session: &Session,
    manifest: &crate::model::Manifest,
    filled: &Filled,
    how: &Configure,
) -> Markup {
    let name_error = filled
        .error
        .filter(|(field, _)| *field == "name")
        .map(|(_, m)| m);
    let stage = &how.stage;
    let takes_columns = manifest
        .options
        .iter()
        .any(|o| o.field_type == crate::model::FieldType::StageColumnsDropdown);
    html! {
        @if takes_columns {
            form.filters method="get" action=(how.page) {
                div.field {
                    label for="stage-pipeline" { "Stage columns from the feed of" }
                    select id="stage-pipeline" name="pipeline" {
                        option value="" { "—" }
                        @for pipeline in &stage.pipelines {
                            option value=(pipeline) selected[stage.pipeline.as_ref() == Some(pipeline)] { (pipeline) }
                        }
                    }
                }
                button type="submit" { "Use its columns" }
            }
        }
        form.card method="post" action=(how.action) novalidate {
            (csrf(session))
            @if let Some(pipeline) = &stage.pipeline {
                input type="hidden" name="pipeline" value=(pipeline);
            }
            @if let Some((_, message)) = filled.error.filter(|(field, _)| field.is_empty()) {
                p.error id="form-error" role="alert" { (message) }
            }
            @if how.passed {
                p.ok id="check-passed" role="status" { "The check passed." }
            }
            @if !how.saved {
                div.field.invalid[name_error.is_some()] {
                    label for="connection-name" { "Connection name" }
                    input type="text" id="connection-name" name="name" value=[how.name]
                        placeholder="kebab-case, to save these values"
                        aria-describedby=[name_error.map(|_| "connection-name-error")]
                        aria-invalid=[name_error.map(|_| "true")];
                    @if let Some(message) = name_error {
                        p.error id="connection-name-error" role="alert" { (message) }
                    }
                }
            }
            @if manifest.options.is_empty() { p { "This connector takes no options." } }
            @for option in &manifest.options {
                (form::field(option, filled, &stage.columns))
            }
            div.actions {
                button type="submit" name="action" value="check" { "Check" }
                button type="submit" name="action" value="save" { "Save connection" }
                @if how.offer_save_anyway {
                    button type="submit" name="action" value="save_anyway" { "Save anyway" }
                }
                @if !how.saved {
                    button type="submit" formaction={ "/console/connectors/" (manifest.code) "/runs" } { "Run once" }
                }
            }
        }
    }
}

/// A connector, with the form that checks, saves or runs it.
pub fn connector(
    session: &Session,
    connector: &ConnectorVersion,
    filled: &Filled,
    how: &Configure,
) -> Markup {
    let manifest = &connector.manifest;
    let content = html! {
        p.meta { span.badge { (manifest.kind.role()) } " " code { (manifest.code) } " · " (manifest.kind) " · v" (connector.version) }
        @if let Some(summary) = &manifest.summary { p { (summary) } }
        h2 { "Configure" }
        (configure(session, manifest, filled, how))
    };
    layout(&manifest.label, Some(session), content)
}

/// The saved connections.
pub fn connections(session: &Session, connections: &[Connection]) -> Markup {
    let content = html! {
        @if connections.is_empty() {
            p { "No connection yet: configure one from the " a href="/console/connectors" { "catalog" } "." }
        } @else {
            table id="connections" {
                thead { tr { th scope="col" { "Connection" } th scope="col" { "Connector" } th scope="col" { "Check" } th scope="col" { "Discovered columns" } } }
                tbody {
                    @for connection in connections {
                        tr {
                            td { a href={ "/console/connections/" (connection.name) } { (connection.name) } }
                            td { (connection.connector) }
                            td { (check_outcome(connection.check.as_ref())) }
                            td { (connection.discovery.as_ref().map(|d| d.columns.join(", ")).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    };
    layout("Connections", Some(session), content)
}

fn check_outcome(check: Option<&ConnectionCheck>) -> Markup {
    html! {
        @match check {
            None => "not checked",
            Some(check) if check.ok => span.status.succeeded { "passed" },
            Some(check) => span.status.failed { "failed: " (check.reason.as_deref().unwrap_or_default()) },
        }
    }
}

/// A connection: its values (to edit), its check and its discovery.
pub fn connection(
    session: &Session,
    connection: &Connection,
    manifest: &crate::model::Manifest,
    filled: &Filled,
    how: &Configure,
) -> Markup {
    let content = html! {
        dl.facts {
            dt { "Connector" } dd { a href={ "/console/connectors/" (connection.connector) } { (connection.connector) } }
            dt { "Last check" } dd { (check_outcome(connection.check.as_ref())) }
            dt { "Saved" } dd { (when(Some(connection.updated_at))) }
        }
        h2 { "Values" }
        p.meta { "Password fields left empty keep their saved value." }
        (configure(session, manifest, filled, how))
        @if manifest.kind == crate::model::ConnectorType::DataSource {
            h2 { "Discovered" }
            form.inline method="post" action={ "/console/connections/" (connection.name) "/discover" } {
                (csrf(session))
                button type="submit" { @if connection.discovery.is_some() { "Discover again" } @else { "Discover" } }
            }
            @match &connection.discovery {
                None => p { "Not discovered yet: a discovery runs the source and keeps its columns and first rows." },
                Some(discovery) => {
                    p.meta id="discovered-columns" { "Columns: " (discovery.columns.join(", ")) " · from run " a href={ "/console/runs/" (discovery.run_id) } { (discovery.run_id) } " · " (when(Some(discovery.at))) }
                    (records_table("discovery", &discovery.rows))
                }
            }
        }
    };
    layout(&connection.name, Some(session), content)
}

/// Records as a table, a column per key.
fn records_table(id: &str, records: &[serde_json::Value]) -> Markup {
    let columns = crate::dataset::columns_of(records);
    html! {
        div.scroll {
            table id=(id) {
                thead { tr { @for column in &columns { th scope="col" { (column) } } } }
                tbody {
                    @for record in records {
                        tr { @for column in &columns { td { (cell(record.get(column))) } } }
                    }
                }
            }
        }
    }
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// A run: its status, its live log and its output.
pub fn run(session: &Session, run: &Run, output: &OutputPage, feedback: &OutputPage) -> Markup {
    let finished = run.status.is_finished();
    let here = format!("/console/runs/{}", run.id);
    let content = html! {
        dl.facts {
            dt { "Connector" } dd { a href={ "/console/connectors/" (run.connector_code) } { (run.connector_code) } }
            dt { "Status" } dd { span.status.(run.status.as_str()) id="run-status" { (run.status.as_str()) } }
            @if let Some(reason) = &run.reason { dt { "Reason" } dd { (reason) } }
            dt { "Created" } dd { (when(Some(run.created_at))) }
            dt { "Finished" } dd { (when(run.finished_at)) }
            @if let Some(rows) = run.output_rows { dt { "Rows out" } dd { (rows) } }
        }
        @if !finished {
            form.inline method="post" action={ "/console/runs/" (run.id) "/cancel" } {
                (csrf(session))
                button type="submit" { "Cancel" }
            }
        } @else {
            form.inline method="post" action={ "/console/runs/" (run.id) "/again" } {
                (csrf(session))
                button type="submit" { "Run again" }
            }
        }
        h2 { "Logs" }
        div.field.inline {
            label for="log-level" { "Level" }
            select id="log-level" {
                option value="" { "All" }
                @for level in ["debug", "info", "warning", "error"] { option value=(level) { (level) } }
            }
        }
        ol.logs id="logs" data-run=(run.id) data-finished=(finished) aria-live="polite" {}
        noscript { p { "Live logs need JavaScript; " a href={ "/runs/" (run.id) "/logs" } { "the log so far" } "." } }
        h2 { "Output" }
        @if output.records.is_empty() && output.offset == 0 {
            p id="output-empty" { @if finished { "No records." } @else { "None yet: reload when the run has finished." } }
        } @else {
            (records_table("output", &output.records))
            (pager(&here, "offset", output))
        }
        @if !feedback.records.is_empty() || feedback.offset > 0 {
            h2 { "Feedback" }
            (records_table("feedback", &feedback.records))
            (pager(&here, "feedback_offset", feedback))
        }
    };
    layout(&format!("Run {}", &run.id), Some(session), content)
}

/// Which rows of a table a page shows, with links to the pages before and after it.
fn pager(base: &str, param: &str, page: &OutputPage) -> Markup {
    let shown = page.records.len();
    let previous = page.offset.saturating_sub(super::PAGE_ROWS);
    html! {
        nav.pager aria-label="Pages of this table" {
            span { "Rows " (page.offset + 1) "–" (page.offset + shown) }
            @if page.offset > 0 {
                " " a rel="prev" href={ (base) "?" (param) "=" (previous) } { "Previous" }
            }
            @if let Some(next) = page.next_offset {
                " " a rel="next" href={ (base) "?" (param) "=" (next) } { "Next" }
            }
        }
    }
}

/// The most recent runs, filtered by status and connector.
pub fn runs(
    session: &Session,
    runs: &[Run],
    status: Option<RunStatus>,
    connector: Option<&str>,
) -> Markup {
    let content = html! {
        form.filters method="get" action="/console/runs" {
            div.field {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "All" }
                    @for each in RunStatus::VARIANTS.iter().copied() {
                        option value=(each.as_str()) selected[status == Some(each)] { (each.as_str()) }
                    }
                }
            }
            div.field {
                label for="connector" { "Connector" }
                input type="text" id="connector" name="connector" value=[connector];
            }
            button type="submit" { "Filter" }
        }
        @if runs.is_empty() { p { "No run matches." } }
        @else {
            p.meta { "The " (runs.len()) " most recent." }
            table id="runs" {
                thead { tr { th scope="col" { "Run" } th scope="col" { "Connector" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Finished" } th scope="col" { "Rows out" } } }
                tbody {
                    @for run in runs {
                        tr {
                            td { a href={ "/console/runs/" (run.id) } { code { (&run.id[..run.id.len().min(8)]) } } }
                            td { (run.connector_code) }
                            td { span.status.(run.status.as_str()) { (run.status.as_str()) } }
                            td { (when(Some(run.created_at))) }
                            td { (when(run.finished_at)) }
                            td { (run.output_rows.map(|n| n.to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    };
    layout("Runs", Some(session), content)
}

fn cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A pipeline with its last run and its next scheduled ones.
pub struct PipelineRow {
    pub pipeline: Pipeline,
    pub last: Option<PipelineRun>,
    pub next: Vec<DateTime<Utc>>,
}

pub fn pipelines(session: &Session, rows: &[PipelineRow]) -> Markup {
    let content = html! {
        p { a href="/console/pipelines/new" { "Build a pipeline" } }
        @if rows.is_empty() { p { "No pipeline yet." } }
        @else {
            table {
                thead { tr { th scope="col" { "Pipeline" } th scope="col" { "Last run" } th scope="col" { "Status" } th scope="col" { "Schedule" } th scope="col" { "Next runs" } } }
                tbody {
                    @for row in rows {
                        tr {
                            td { a href={ "/console/pipelines/" (row.pipeline.name) } { (row.pipeline.name) } }
                            td { (when(row.last.as_ref().map(|r| r.created_at))) }
                            td { @if let Some(last) = &row.last { @let status: &str = last.status.into();
                                span.status.(status) { (status) } } @else { "—" } }
                            td { code { (row.pipeline.schedule.as_deref().unwrap_or("—")) } }
                            td { @for at in &row.next { (when(Some(*at))) br; } }
                        }
                    }
                }
            }
        }
    };
    layout("Pipelines", Some(session), content)
}

pub fn pipeline(session: &Session, row: &PipelineRow, runs: &[PipelineRun]) -> Markup {
    let pipeline = &row.pipeline;
    let content = html! {
        form.inline method="post" action={ "/console/pipelines/" (pipeline.name) "/runs" } {
            (csrf(session))
            button type="submit" { "Run now" }
        }
        @if let Some(schedule) = &pipeline.schedule {
            p { "Schedule " code { (schedule) } "; next: " @for (i, at) in row.next.iter().enumerate() { @if i > 0 { ", " } (when(Some(*at))) } }
        }
        h2 { "Runs" }
        @if runs.is_empty() { p { "No run yet." } }
        @for run in runs {
            section.card {
                @let status: &str = run.status.into();
                h3 { a href={ "/console/pipeline-runs/" (run.id) } { (when(Some(run.created_at))) } " · " span.status.(status) { (status) } " · " (run.trigger) }
                @if let Some(reason) = &run.reason { p.error { (reason) } }
                (steps_table(&run.steps, None))
            }
        }
    };
    layout(&pipeline.name, Some(session), content)
}

/// A pipeline run's steps; with `deltas` (one per step), an export delta's counts too.
fn steps_table(
    steps: &[crate::model::StepRun],
    deltas: Option<&[Option<crate::model::DeltaCounts>]>,
) -> Markup {
    html! {
        table.steps {
            thead { tr {
                th scope="col" { "Step" } th scope="col" { "Connector" } th scope="col" { "Status" }
                th scope="col" { "Rows in" } th scope="col" { "Rows out" }
                @if deltas.is_some() { th scope="col" { "Delta (new, modified, unchanged, deleted)" } }
            } }
            tbody {
                @for (i, step) in steps.iter().enumerate() {
                    @let kind: &str = step.kind.into();
                    tr {
                        td { (step.position) " " (kind) }
                        td { @if let Some(id) = &step.run_id { a href={ "/console/runs/" (id) } { (step.connector) } } @else { (step.connector) } }
                        td { span.status.(step.status) { (step.status) } }
                        td { (step.rows_in.map(|n| n.to_string()).unwrap_or_default()) }
                        td { (step.rows_out.map(|n| n.to_string()).unwrap_or_default()) }
                        @if let Some(deltas) = deltas {
                            td { @if let Some(d) = deltas.get(i).copied().flatten() { (d.new) ", " (d.modified) ", " (d.unchanged) ", " (d.deleted) } }
                        }
                    }
                }
            }
        }
    }
}

pub fn error_page(session: Option<&Session>, message: &str) -> Markup {
    layout(
        "Something went wrong",
        session,
        html! { p.error role="alert" { (message) } },
    )
}

/// What the pipeline builder was given, to show it again.
#[derive(Debug)]
pub struct Draft {
    pub name: String,
    pub schedule: String,
    pub source: String,
    pub more_sources: Vec<String>,
    pub services: Vec<String>,
    pub exports: Vec<String>,
    /// The main source's discovered columns: kept or not, and renamed to.
    pub columns: Vec<(String, bool, String)>,
    /// The column mappings of the other steps, by `group.connection`: one column a line,
    /// `column` or `column as name`.
    pub mappings: std::collections::BTreeMap<String, String>,
    /// The schedule's next three times, or why it is no schedule.
    pub next: Result<Vec<DateTime<Utc>>, String>,
    pub error: Option<String>,
}

impl Default for Draft {
    fn default() -> Self {
        Self {
            name: String::new(),
            schedule: String::new(),
            source: String::new(),
            more_sources: vec![],
            services: vec![],
            exports: vec![],
            columns: vec![],
            mappings: Default::default(),
            next: Ok(vec![]),
            error: None,
        }
    }
}

/// The pipeline builder: connections as steps, the main source's columns to keep and
/// rename, a schedule with its next times.
pub fn build_pipeline(
    session: &Session,
    connections: &[(Connection, crate::model::Role)],
    draft: &Draft,
) -> Markup {
    let of = |role: Role| {
        connections
            .iter()
            .filter(move |(_, r)| *r == role)
            .map(|(c, _)| c)
    };
    let choose = |id: &str, name: &str, role: Role, chosen: &[String], multiple: bool| {
        html! {
            select id=(id) name=(name) multiple[multiple] {
                @if !multiple { option value="" { "—" } }
                @for connection in of(role) {
                    option value=(connection.name) selected[chosen.contains(&connection.name)] { (connection.name) " (" (connection.connector) ")" }
                }
            }
        }
    };
    let content = html! {
        form.card method="post" action="/console/pipelines/new" {
            (csrf(session))
            @if let Some(error) = &draft.error { p.error id="form-error" role="alert" { (error) } }
            div.field {
                label for="pipeline-name" { "Name" }
                input type="text" id="pipeline-name" name="name" value=(draft.name) placeholder="kebab-case" required;
            }
            div.field {
                label for="source" { "Main source" }
                (choose("source", "source", Role::Source, std::slice::from_ref(&draft.source), false))
                p.description { "A source connection; its discovered columns can be chosen and renamed below." }
            }
            div.field {
                label for="more-sources" { "Additional sources (joined on id)" }
                (choose("more-sources", "more_sources", Role::Source, &draft.more_sources, true))
            }
            div.field {
                label for="services" { "Data services (run in stage order)" }
                (choose("services", "services", Role::Service, &draft.services, true))
            }
            div.field {
                label for="exports" { "Exports" }
                (choose("exports", "exports", Role::Export, &draft.exports, true))
            }
            button type="submit" name="action" value="columns" { "Show the main source's columns" }
            @if !draft.columns.is_empty() {
                fieldset {
                    legend { "Columns of the main source: keep and rename" }
                    table id="columns" {
                        thead { tr { th scope="col" { "Keep" } th scope="col" { "Column" } th scope="col" { "Rename to" } } }
                        tbody {
                            @for (i, (column, keep, rename)) in draft.columns.iter().enumerate() {
                                tr {
                                    td {
                                        input type="hidden" name={ "column." (i) } value=(column);
                                        input type="checkbox" id={ "keep-" (column) } name={ "keep." (i) } value="1" checked[*keep]
                                            aria-label={ "Keep " (column) };
                                    }
                                    td { label for={ "as-" (column) } { (column) } }
                                    td { input type="text" id={ "as-" (column) } name={ "as." (i) } value=(rename) placeholder=(column); }
                                }
                            }
                        }
                    }
                }
            }
            @let others = [("more_sources", &draft.more_sources), ("services", &draft.services), ("exports", &draft.exports)];
            @for (group, chosen) in others {
                @for connection in chosen.iter() {
                    @let key = format!("{group}.{connection}");
                    div.field {
                        label for={ "map-" (key) } { "Columns " (connection) " gets (" (group.replace('_', " ")) ")" }
                        textarea id={ "map-" (key) } name={ "map." (key) } rows="3" placeholder="title as name"
                            aria-describedby="map-help" {
                            (draft.mappings.get(&key).map(String::as_str).unwrap_or_default())
                        }
                    }
                }
            }
            @if others.iter().any(|(_, chosen)| !chosen.is_empty()) {
                p.description id="map-help" { "One column a line, " code { "column" } " or " code { "column as name" } "; left empty, every column." }
            }
            div.field {
                label for="schedule" { "Schedule (cron, optional)" }
                input type="text" id="schedule" name="schedule" value=(draft.schedule) placeholder="0 3 * * *"
                    aria-describedby="schedule-next";
                p.description id="schedule-next" {
                    @match &draft.next {
                        Ok(next) if next.is_empty() => "No schedule: runs start by hand or on events.",
                        Ok(next) => { "Next runs: " @for (i, at) in next.iter().enumerate() { @if i > 0 { ", " } (when(Some(*at))) } }
                        Err(error) => span.error { (error) },
                    }
                }
            }
            div.actions {
                button type="submit" name="action" value="preview" { "Preview the schedule" }
                button type="submit" name="action" value="save" { "Save pipeline" }
            }
        }
    };
    layout("Build a pipeline", Some(session), content)
}

/// A pipeline run: its steps (with an export delta's counts) and the dataset version it
/// made, as a table.
pub fn pipeline_run(
    session: &Session,
    run: &PipelineRun,
    deltas: &[Option<crate::delta::DeltaCounts>],
    dataset: &OutputPage,
) -> Markup {
    let status: &str = run.status.into();
    let here = format!("/console/pipeline-runs/{}", run.id);
    let content = html! {
        dl.facts {
            dt { "Pipeline" } dd { a href={ "/console/pipelines/" (run.pipeline) } { (run.pipeline) } }
            dt { "Status" } dd { span.status.(status) id="pipeline-run-status" { (status) } }
            @if let Some(reason) = &run.reason { dt { "Reason" } dd { (reason) } }
            dt { "Started" } dd { (when(Some(run.created_at))) }
            dt { "Finished" } dd { (when(run.finished_at)) }
        }
        h2 { "Steps" }
        (steps_table(&run.steps, Some(deltas)))
        h2 { "Dataset" }
        @match run.dataset_version {
            None => p { "No dataset version (yet)." },
            Some(version) => {
                p.meta { "Version " (version) }
                (records_table("dataset", &dataset.records))
                (pager(&here, "offset", dataset))
            }
        }
    };
    layout(&format!("Run of {}", run.pipeline), Some(session), content)
}
