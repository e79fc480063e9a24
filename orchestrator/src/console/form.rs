//! A connector's configuration form, generated from its manifest's options, and the
//! option values read back from what the browser posts.

use std::collections::BTreeMap;

use maud::{html, Markup};

use crate::model::{FieldType, OptionSpec};

/// What a form shows again after a refused post: the values entered (never a
/// password's) and the error of the field it is about.
#[derive(Debug)]
pub struct Filled<'a> {
    pub values: &'a BTreeMap<String, String>,
    /// The field an error is about (`""`: the form as a whole) and the error.
    pub error: Option<(&'a str, &'a str)>,
}

impl<'a> Filled<'a> {
    pub fn new(values: &'a BTreeMap<String, String>) -> Self {
        Self {
            values,
            error: None,
        }
    }
}

/// The form field of `option`, with its label, description, default or entered value,
/// and its error; `columns` fills a `stage_columns_dropdown`.
pub fn field(option: &OptionSpec, filled: &Filled, columns: &[String]) -> Markup {
    let id = format!("option-{}", option.name);
    let label = option.label.as_deref().unwrap_or(&option.name);
    let value = match option.field_type {
        FieldType::Password => None,
        _ => filled
            .values
            .get(&option.name)
            .or(option.default.as_ref())
            .cloned(),
    };
    let error = filled
        .error
        .filter(|(name, _)| *name == option.name)
        .map(|(_, message)| message);
    let described = format!("{id}-description");
    let error_id = format!("{id}-error");
    let aria = match (option.description.is_some(), error.is_some()) {
        (true, true) => Some(format!("{described} {error_id}")),
        (true, false) => Some(described.clone()),
        (false, true) => Some(error_id.clone()),
        (false, false) => None,
    };
    let placeholder = option.placeholder.as_deref();
    let name = option.name.as_str();
    let required = option.required;
    let control = match option.field_type {
        FieldType::Input => html! {
            input type="text" id=(id) name=(name) value=[value.as_deref()] placeholder=[placeholder]
                required[required] aria-describedby=[aria.as_deref()] aria-invalid=[error.map(|_| "true")];
        },
        FieldType::Password => html! {
            input type="password" id=(id) name=(name) placeholder=[placeholder] autocomplete="off"
                required[required] aria-describedby=[aria.as_deref()] aria-invalid=[error.map(|_| "true")];
        },
        FieldType::Textarea => html! {
            textarea id=(id) name=(name) placeholder=[placeholder] rows="4"
                required[required] aria-describedby=[aria.as_deref()] aria-invalid=[error.map(|_| "true")] {
                (value.as_deref().unwrap_or_default())
            }
        },
        FieldType::Checkbox => html! {
            // The hidden 0 is sent when the box is not ticked; a ticked box adds its 1.
            input type="hidden" name=(name) value="0";
            input type="checkbox" id=(id) name=(name) value="1" checked[value.as_deref() == Some("1")]
                aria-describedby=[aria.as_deref()] aria-invalid=[error.map(|_| "true")];
        },
        FieldType::Select | FieldType::SelectMultiple => {
            let multiple = option.field_type == FieldType::SelectMultiple;
            let chosen: Vec<&str> = value
                .as_deref()
                .map(|v| v.split(',').collect())
                .unwrap_or_default();
            html! {
                select id=(id) name=(name) multiple[multiple] required[required]
                    aria-describedby=[aria.as_deref()] aria-invalid=[error.map(|_| "true")] {
                    @if !multiple && !required { option value="" { "—" } }
                    @for (choice, shown) in option.labelled_choices() {
                        option value=(choice) selected[chosen.contains(&choice.as_str())] { (shown) }
                    }
                }
            }
        }
        FieldType::StageColumnsDropdown => html! {
            select id=(id) name=(name) required[required]
                aria-describedby=[aria.as_deref()] aria-invalid=[error.map(|_| "true")] {
                @if !required { option value="" { "—" } }
                @if let Some(value) = value.as_deref().filter(|v| !columns.iter().any(|c| c == v)) {
                    option value=(value) selected { (value) }
                }
                @for column in columns {
                    option value=(column) selected[value.as_deref() == Some(column.as_str())] { (column) }
                }
            }
        },
    };
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) {
                (label)
                @if required { " " abbr title="required" { "*" } }
            }
            (control)
            @if let Some(description) = &option.description {
                p.description id=(described) { (description) }
            }
            @if let Some(message) = error {
                p.error id=(error_id) role="alert" { (message) }
            }
        }
    }
}

/// The option values of a posted form: fields that are not options are left out, an
/// empty field counts as not given (its default applies), a ticked checkbox is `1`, the
/// choices of a multiple select are joined with commas.
pub fn values(options: &[OptionSpec], posted: &[(String, String)]) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for option in options {
        let given: Vec<&str> = posted
            .iter()
            .filter(|(name, _)| *name == option.name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
            .collect();
        let value = match option.field_type {
            FieldType::Checkbox if given.is_empty() => continue,
            FieldType::Checkbox => match given.contains(&"1") {
                true => "1".to_owned(),
                false => "0".to_owned(),
            },
            FieldType::SelectMultiple if given.is_empty() => continue,
            FieldType::SelectMultiple => given.join(","),
            _ => match given.last() {
                Some(value) => (*value).to_owned(),
                None => continue,
            },
        };
        values.insert(option.name.clone(), value);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn option(spec: serde_json::Value) -> OptionSpec {
        serde_json::from_value(spec).unwrap()
    }

    fn render(option: &OptionSpec, values: &[(&str, &str)], error: Option<(&str, &str)>) -> String {
        let values: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let columns = ["id".to_owned(), "title".to_owned()];
        field(
            option,
            &Filled {
                values: &values,
                error,
            },
            &columns,
        )
        .into_string()
    }

    #[test]
    fn every_field_type_renders_a_labelled_control() {
        let input = option(
            json!({"name": "URL", "field_type": "input", "label": "Feed URL",
            "required": true, "placeholder": "https://", "description": "Where the feed is"}),
        );
        let html = render(&input, &[], None);
        assert!(
            html.contains(r#"<label for="option-URL">Feed URL"#),
            "{html}"
        );
        assert!(
            html.contains(r#"type="text" id="option-URL" name="URL""#),
            "{html}"
        );
        assert!(
            html.contains(r#"placeholder="https://""#) && html.contains("required"),
            "{html}"
        );
        assert!(
            html.contains(r#"aria-describedby="option-URL-description""#),
            "{html}"
        );

        let textarea =
            option(json!({"name": "QUERY", "field_type": "textarea", "default": "a < b"}));
        let html = render(&textarea, &[], None);
        assert!(
            html.contains(r#"<textarea id="option-QUERY" name="QUERY""#),
            "{html}"
        );
        assert!(
            html.contains("a &lt; b</textarea>"),
            "escaped default: {html}"
        );

        let password = option(json!({"name": "KEY", "field_type": "password", "default": "d"}));
        let html = render(&password, &[("KEY", "s3cret")], None);
        assert!(html.contains(r#"type="password""#), "{html}");
        assert!(
            !html.contains("s3cret") && !html.contains("value="),
            "never sent back: {html}"
        );

        let checkbox = option(json!({"name": "FULL", "field_type": "checkbox", "default": "1"}));
        let html = render(&checkbox, &[], None);
        assert!(
            html.contains(r#"type="hidden" name="FULL" value="0""#),
            "{html}"
        );
        assert!(
            html.contains(r#"type="checkbox" id="option-FULL" name="FULL" value="1" checked"#),
            "{html}"
        );
        assert!(!render(&checkbox, &[("FULL", "0")], None).contains("checked"));

        let select = option(json!({"name": "MODE", "field_type": "select",
            "config": {"choices": ["fast", {"value": "safe", "label": "Safe mode"}]}}));
        let html = render(&select, &[("MODE", "safe")], None);
        assert!(
            html.contains(r#"<option value="safe" selected>Safe mode</option>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<option value="fast">fast</option>"#),
            "{html}"
        );

        let multiple = option(json!({"name": "TAGS", "field_type": "select_multiple",
            "config": {"choices": ["a", "b", "c"]}}));
        let html = render(&multiple, &[("TAGS", "a,c")], None);
        assert!(html.contains("multiple"), "{html}");
        assert!(
            html.contains(r#"<option value="a" selected>"#)
                && html.contains(r#"<option value="c" selected>"#)
        );
        assert!(html.contains(r#"<option value="b">"#), "{html}");

        let columns = option(json!({"name": "KEY_COLUMN", "field_type": "stage_columns_dropdown"}));
        let html = render(&columns, &[("KEY_COLUMN", "title")], None);
        assert!(
            html.contains(r#"<option value="title" selected>title</option>"#),
            "{html}"
        );
        assert!(html.contains(r#"<option value="id">id</option>"#), "{html}");
        // A value from before the feed changed stays selectable.
        let html = render(&columns, &[("KEY_COLUMN", "gone")], None);
        assert!(
            html.contains(r#"<option value="gone" selected>gone</option>"#),
            "{html}"
        );
    }

    #[test]
    fn an_error_is_shown_next_to_its_own_field_only() {
        let url = option(json!({"name": "URL", "field_type": "input"}));
        let other = option(json!({"name": "MODE", "field_type": "input"}));
        let error = Some(("URL", "option URL is required"));
        let html = render(&url, &[], error);
        assert!(
            html.contains(
                r#"<p class="error" id="option-URL-error" role="alert">option URL is required</p>"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"aria-invalid="true""#), "{html}");
        assert!(!render(&other, &[], error).contains("error"));
    }

    #[test]
    fn posted_fields_become_option_values() {
        let options: Vec<OptionSpec> = serde_json::from_value(json!([
            {"name": "URL", "field_type": "input"},
            {"name": "EMPTY", "field_type": "input", "default": "d"},
            {"name": "ON", "field_type": "checkbox"},
            {"name": "OFF", "field_type": "checkbox"},
            {"name": "TAGS", "field_type": "select_multiple"},
        ]))
        .unwrap();
        let posted: Vec<(String, String)> = [
            ("csrf", "x"),
            ("URL", "https://a"),
            ("EMPTY", ""),
            ("ON", "0"),
            ("ON", "1"),
            ("OFF", "0"),
            ("TAGS", "a"),
            ("TAGS", "c"),
            ("NOT_AN_OPTION", "z"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let values = values(&options, &posted);
        let expected: BTreeMap<String, String> = [
            ("URL", "https://a"),
            ("ON", "1"),
            ("OFF", "0"),
            ("TAGS", "a,c"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(values, expected);
    }
}
