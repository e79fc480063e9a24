//! The console's pages as HTML: a layout, and one function per page. Every value shown
//! goes through maud's escaping; nothing here reads the store.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::form::{self, Filled};
use super::session::Session;
use crate::catalog::CatalogFilter;
use crate::model::{ConnectorVersion, Pipeline, PipelineRun, Role, Run, RunStatus};
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
                            a href="/console/pipelines" { "Pipelines" }
                            a href="/console/runs" { "Runs" }
                            form.inline method="post" action="/console/sign-out" {
                                (csrf(session))
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

pub fn sign_in(error: Option<&str>) -> Markup {
    let content = html! {
        form.card method="post" action="/console/sign-in" {
            div.field.invalid[error.is_some()] {
                label for="token" { "API token" }
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

/// A connector, with the form that runs it.
pub fn connector(session: &Session, connector: &ConnectorVersion, filled: &Filled) -> Markup {
    let manifest = &connector.manifest;
    let content = html! {
        p.meta { span.badge { (manifest.kind.role()) } " " code { (manifest.code) } " · " (manifest.kind) " · v" (connector.version) }
        @if let Some(summary) = &manifest.summary { p { (summary) } }
        h2 { "Run it" }
        form.card method="post" action={ "/console/connectors/" (manifest.code) "/runs" } novalidate {
            (csrf(session))
            @if let Some((_, message)) = filled.error.filter(|(field, _)| field.is_empty()) {
                p.error role="alert" { (message) }
            }
            @if manifest.options.is_empty() { p { "This connector takes no options." } }
            @for option in &manifest.options {
                (form::field(option, filled, &[]))
            }
            button type="submit" { "Run" }
        }
    };
    layout(&manifest.label, Some(session), content)
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// A run: its status, its live log and its output.
pub fn run(session: &Session, run: &Run, output: &[serde_json::Value]) -> Markup {
    let finished = run.status.is_finished();
    let columns = crate::dataset::columns_of(output);
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
        @if output.is_empty() {
            p id="output-empty" { @if finished { "No records." } @else { "None yet: reload when the run has finished." } }
        } @else {
            div.scroll {
                table id="output" {
                    thead { tr { @for column in &columns { th scope="col" { (column) } } } }
                    tbody {
                        @for record in output {
                            tr { @for column in &columns { td { (cell(record.get(column))) } } }
                        }
                    }
                }
            }
        }
    };
    layout(&format!("Run {}", &run.id), Some(session), content)
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
                h3 { (when(Some(run.created_at))) " · " span.status.(status) { (status) } " · " (run.trigger) }
                @if let Some(reason) = &run.reason { p.error { (reason) } }
                table {
                    thead { tr { th scope="col" { "Step" } th scope="col" { "Connector" } th scope="col" { "Status" } th scope="col" { "Rows in" } th scope="col" { "Rows out" } } }
                    tbody {
                        @for step in &run.steps {
                            tr {
                                @let kind: &str = step.kind.into();
                                td { (step.position) " " (kind) }
                                td { @if let Some(id) = &step.run_id { a href={ "/console/runs/" (id) } { (step.connector) } } @else { (step.connector) } }
                                td { span.status.(step.status) { (step.status) } }
                                td { (step.rows_in.map(|n| n.to_string()).unwrap_or_default()) }
                                td { (step.rows_out.map(|n| n.to_string()).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&pipeline.name, Some(session), content)
}

pub fn error_page(session: Option<&Session>, message: &str) -> Markup {
    layout(
        "Something went wrong",
        session,
        html! { p.error role="alert" { (message) } },
    )
}
