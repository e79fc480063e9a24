//! The AEP dialect: an Adobe Experience Platform self-serve `sourceSpec`, accepted as
//! published rather than as its schema says. The published examples are a
//! `"sourceSpec": {...}` fragment (not a JSON document), write numbers as strings
//! (`"limitValue": "100"`), spell `offSetName` and `offsetName`, and put the parameters
//! under `attributes` beside `uiAttributes`; all of that is accepted. Keys the engine does
//! not use (UI attributes, schemas) are ignored.

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::error::SpecError;
use crate::model::{
    EndCondition, EndPageIndex, Extraction, InputKind, Limit, Method, Object, Pagination,
    PaginationKind, Property, RequestTemplate, Schedule, SourceSpec, TokenLocation, SCHEDULE_QUERY,
};
use crate::template;

/// Requests a run may make unless `maximumRequest` says otherwise.
pub const DEFAULT_MAXIMUM_REQUESTS: u64 = 10_000;
/// The window's format unless the document gives one.
pub const DEFAULT_DATE_FORMAT: &str = "yyyy-MM-ddTHH:mm:ssK";

/// Parses a document given as text: a `"sourceSpec": {...}` fragment, a
/// `{"sourceSpec": {...}}` object or the bare sourceSpec object.
pub fn parse_text(text: &str) -> Result<SourceSpec, SpecError> {
    parse_value(&document_of_text(text)?)
}

/// The JSON value of a document given as text (a fragment is wrapped in braces).
fn document_of_text(text: &str) -> Result<Value, SpecError> {
    let trimmed = text.trim().trim_start_matches('\u{feff}');
    if trimmed.starts_with('"') {
        let trimmed = trimmed.strip_suffix(',').unwrap_or(trimmed);
        serde_json::from_str(&format!("{{{trimmed}\n}}"))
    } else {
        serde_json::from_str(trimmed)
    }
    .map_err(|e| SpecError::new("(document)", format!("not JSON: {e}")))
}

/// The catalog category of a document (`attributes.uiAttributes.category.key`), given
/// as [`parse_value`] takes it; none when it has none or is not a document.
pub fn ui_category(document: &Value) -> Option<String> {
    let owned;
    let document = match document {
        Value::String(text) => {
            owned = document_of_text(text).ok()?;
            &owned
        }
        other => other,
    };
    let spec = document.get("sourceSpec").unwrap_or(document);
    spec.pointer("/attributes/uiAttributes/category/key")
        .and_then(Value::as_str)
        .filter(|key| !key.trim().is_empty())
        .map(str::to_owned)
}

/// Parses a document given as a JSON value: a string holding the document's text,
/// a `{"sourceSpec": {...}}` object or the bare sourceSpec object.
pub fn parse_value(document: &Value) -> Result<SourceSpec, SpecError> {
    match document {
        Value::String(text) => parse_text(text),
        Value::Object(map) => match map.get("sourceSpec") {
            Some(spec) => SourceSpecNode::new(Node::root("sourceSpec", spec)?).parse(),
            None => SourceSpecNode::new(Node::root("sourceSpec", document)?).parse(),
        },
        other => Err(SpecError::new(
            "(document)",
            format!("expected a sourceSpec object, found {}", describe(other)),
        )),
    }
}

/// An object of the document with the JSON path it was found at.
#[derive(Clone, Copy)]
struct Node<'a> {
    path: &'a str,
    map: &'a Object,
}

/// A value of the document with its path.
struct Field<'a> {
    path: String,
    value: &'a Value,
}

impl<'a> Node<'a> {
    fn root(path: &'a str, value: &'a Value) -> Result<Self, SpecError> {
        match value {
            Value::Object(map) => Ok(Self { path, map }),
            other => Err(SpecError::new(
                path,
                format!("expected an object, found {}", describe(other)),
            )),
        }
    }

    fn field(&self, key: &str) -> Option<Field<'a>> {
        self.map.get(key).map(|value| Field {
            path: format!("{}.{key}", self.path),
            value,
        })
    }

    /// The first of `keys` present (spellings of one key).
    fn field_of(&self, keys: &[&str]) -> Option<Field<'a>> {
        keys.iter().find_map(|k| self.field(k))
    }

    fn missing(&self, key: &str) -> SpecError {
        SpecError::new(format!("{}.{key}", self.path), "is required but missing")
    }

    fn required(&self, key: &str) -> Result<Field<'a>, SpecError> {
        self.field(key).ok_or_else(|| self.missing(key))
    }

    fn string(&self, key: &str) -> Result<Option<String>, SpecError> {
        self.field(key).map(|f| f.string()).transpose()
    }

    fn required_string(&self, key: &str) -> Result<String, SpecError> {
        self.required(key)?.string()
    }
}

impl<'a> Field<'a> {
    fn error(&self, message: impl Into<String>) -> SpecError {
        SpecError::new(self.path.clone(), message)
    }

    fn string(&self) -> Result<String, SpecError> {
        match self.value {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.error("must not be blank")),
            other => Err(self.error(format!("expected a string, found {}", describe(other)))),
        }
    }

    /// A whole number, written as a number or as a string holding one.
    fn count(&self) -> Result<u64, SpecError> {
        let parsed = match self.value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.error(format!(
                "expected a whole number (or a string holding one), found {}",
                describe(self.value)
            ))
        })
    }

    fn object(&self) -> Result<Node<'_>, SpecError> {
        match self.value {
            Value::Object(map) => Ok(Node {
                path: &self.path,
                map,
            }),
            other => Err(self.error(format!("expected an object, found {}", describe(other)))),
        }
    }

    fn strings(&self) -> Result<Vec<String>, SpecError> {
        let Value::Array(items) = self.value else {
            return Err(self.error(format!(
                "expected an array of strings, found {}",
                describe(self.value)
            )));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(SpecError::new(
                    format!("{}[{i}]", self.path),
                    format!("expected a string, found {}", describe(other)),
                )),
            })
            .collect()
    }

    /// `{"name": "value", ...}` with scalar values, in document order.
    fn pairs(&self) -> Result<Vec<(String, String)>, SpecError> {
        let node = self.object()?;
        node.map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                other => Err(SpecError::new(
                    format!("{}.{k}", self.path),
                    format!("expected a string, found {}", describe(other)),
                )),
            })
            .collect()
    }

    /// A JSONPath (RFC 9535); a bare name such as `Results` means `$.Results`.
    fn json_path(&self) -> Result<(String, JsonPath), SpecError> {
        let source = self.string()?;
        let text = if source.starts_with('$') {
            source.clone()
        } else {
            format!("$.{source}")
        };
        let path = JsonPath::parse(&text)
            .map_err(|e| self.error(format!("not a JSONPath (RFC 9535): {e}")))?;
        Ok((source, path))
    }
}

struct SourceSpecNode<'a> {
    spec: Node<'a>,
    attributes: Option<&'a Object>,
    attributes_path: String,
}

impl<'a> SourceSpecNode<'a> {
    fn new(spec: Node<'a>) -> Self {
        Self {
            spec,
            attributes: spec.map.get("attributes").and_then(Value::as_object),
            attributes_path: format!("{}.attributes", spec.path),
        }
    }

    /// A parameter (`urlParams`, ...) under `attributes`, or else directly in the sourceSpec.
    fn param(&self, key: &str) -> Option<Field<'a>> {
        match self.attributes.and_then(|a| a.get(key)) {
            Some(value) => Some(Field {
                path: format!("{}.{key}", self.attributes_path),
                value,
            }),
            None => self.spec.field(key),
        }
    }

    fn required_param(&self, key: &str) -> Result<Field<'a>, SpecError> {
        self.param(key).ok_or_else(|| {
            SpecError::new(
                format!("{}.{key}", self.attributes_path),
                format!(
                    "is required but missing (neither there nor at {}.{key})",
                    self.spec.path
                ),
            )
        })
    }

    fn parse(&self) -> Result<SourceSpec, SpecError> {
        let request = self.request()?;
        let content = extraction(&self.required_param("contentPath")?)?;
        let explode = self
            .param("explodeEntityPath")
            .map(|f| extraction(&f))
            .transpose()?;
        let pagination = pagination(&self.required_param("paginationParams")?)?;
        let schedule_field = self.param("scheduleParams");
        let schedule = schedule_field.as_ref().map(schedule).transpose()?;
        if let (Some(Schedule::Advance { .. }), Some(field)) = (&schedule, &schedule_field) {
            if !uses_schedule_query(&request) {
                return Err(SpecError::new(
                    format!("{}.type", field.path),
                    format!(
                        "ADVANCE scheduling needs {{{SCHEDULE_QUERY}}} in urlParams, headerParams or bodyParams"
                    ),
                ));
            }
        }
        Ok(SourceSpec {
            request,
            content,
            explode,
            pagination,
            schedule,
            properties: self.properties()?,
            rate_limit: None,
        })
    }

    fn request(&self) -> Result<RequestTemplate, SpecError> {
        let url_field = self.required_param("urlParams")?;
        let url = url_field.object()?;
        let method_field = url.required("method")?;
        let method = match method_field.string()?.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            other => {
                return Err(method_field.error(format!("expected GET or POST, found {other:?}")))
            }
        };
        let query = url
            .field("queryParams")
            .map(|f| f.pairs())
            .transpose()?
            .unwrap_or_default();
        let headers = self
            .param("headerParams")
            .map(|f| f.pairs())
            .transpose()?
            .unwrap_or_default();
        let body = self.param("bodyParams").map(|f| f.value.clone());
        Ok(RequestTemplate {
            host: url.required_string("host")?,
            path: url.required_string("path")?,
            method,
            query,
            headers,
            body,
            optional: Vec::new(),
        })
    }

    /// `spec.properties`, the JSON Schema of the user's inputs beside `attributes`.
    fn properties(&self) -> Result<Vec<Property>, SpecError> {
        let Some(spec) = self.spec.field("spec") else {
            return Ok(Vec::new());
        };
        let spec = spec.object()?;
        let required: Vec<String> = spec
            .field("required")
            .map(|f| f.strings())
            .transpose()?
            .unwrap_or_default();
        let Some(properties) = spec.field("properties") else {
            return Ok(Vec::new());
        };
        let properties = properties.object()?;
        let mut out = Vec::new();
        for (name, value) in properties.map {
            let field = Field {
                path: format!("{}.{name}", properties.path),
                value,
            };
            let property = field.object()?;
            let kind = match property.field("type") {
                None => InputKind::String,
                Some(f) => match f.string()?.as_str() {
                    "string" => InputKind::String,
                    "integer" => InputKind::Integer,
                    "number" => InputKind::Number,
                    "boolean" => InputKind::Boolean,
                    other => {
                        return Err(f.error(format!(
                            "expected string, integer, number or boolean, found {other:?}"
                        )))
                    }
                },
            };
            let secret = property.string("format")?.as_deref() == Some("password")
                || property.map.get("writeOnly") == Some(&Value::Bool(true))
                || property.map.get("secret") == Some(&Value::Bool(true));
            out.push(Property {
                name: name.clone(),
                kind,
                description: property.string("description")?,
                required: required.contains(name),
                secret,
            });
        }
        Ok(out)
    }
}

fn extraction(field: &Field<'_>) -> Result<Extraction, SpecError> {
    let node = field.object()?;
    let (source, path) = node.required("path")?.json_path()?;
    Ok(Extraction {
        source,
        path,
        wrapper: node.string("overrideWrapperAttribute")?,
        keep: node
            .field("keepAttributes")
            .map(|f| f.strings())
            .transpose()?,
        skip: node
            .field("skipAttributes")
            .map(|f| f.strings())
            .transpose()?
            .unwrap_or_default(),
        bare: false,
    })
}

fn pagination(field: &Field<'_>) -> Result<Pagination, SpecError> {
    let node = field.object()?;
    let type_field = node.required("type")?;
    let limit = match (node.field("limitName"), node.field("limitValue")) {
        (Some(name), Some(value)) => Some(Limit {
            name: name.string()?,
            value: value.count()?,
        }),
        (None, None) => None,
        (Some(_), None) => return Err(node.missing("limitValue")),
        (None, Some(_)) => return Err(node.missing("limitName")),
    };
    let maximum_requests = node
        .field("maximumRequest")
        .map(|f| f.count())
        .transpose()?
        .unwrap_or(DEFAULT_MAXIMUM_REQUESTS);
    let kind = match type_field.string()?.to_ascii_uppercase().as_str() {
        "OFFSET" => {
            if limit.is_none() {
                return Err(node.missing("limitName"));
            }
            let offset_name = node
                .field_of(&["offSetName", "offsetName"])
                .ok_or_else(|| node.missing("offSetName"))?
                .string()?;
            let end_condition = match node.field("endConditionName") {
                Some(name) => Some(EndCondition {
                    path: name.json_path()?.1,
                    value: node.required("endConditionValue")?.value.clone(),
                }),
                None => None,
            };
            PaginationKind::Offset {
                offset_name,
                end_condition,
            }
        }
        "POINTER" => {
            let pointer = node.required("pointerPath")?;
            let (source, path) = pointer.json_path()?;
            let param_name = match node.string("pointerParamName")? {
                Some(name) => name,
                None => last_name(&source)
                    .ok_or_else(|| pointer.error("names no attribute to send the pointer as"))?,
            };
            PaginationKind::Pointer { path, param_name }
        }
        "CONTINUATION_TOKEN" => {
            let location_field = node.required("parameterType")?;
            let location = match location_field.string()?.to_ascii_uppercase().as_str() {
                "QUERYPARAM" => TokenLocation::Query,
                "HEADERPARAM" => TokenLocation::Header,
                other => {
                    return Err(location_field.error(format!(
                        "expected QUERYPARAM or HEADERPARAM, found {other:?}"
                    )))
                }
            };
            PaginationKind::ContinuationToken {
                path: node.required("continuationTokenPath")?.json_path()?.1,
                location,
                param_name: node.required_string("parameterName")?,
                delay_millis: node
                    .field("delayRequestMillis")
                    .map(|f| f.count())
                    .transpose()?
                    .unwrap_or(0),
            }
        }
        "PAGE" => {
            let end_index = match node.field("endPageIndex") {
                None => None,
                Some(f) => Some(match f.value {
                    Value::String(s) if s.trim().starts_with("headers.") => {
                        let name = s.trim()["headers.".len()..].trim();
                        if name.is_empty() {
                            return Err(f.error("names no response header"));
                        }
                        EndPageIndex::PageCountHeader(name.to_ascii_lowercase())
                    }
                    _ => EndPageIndex::Last(f.count().map_err(|_| {
                        f.error(format!(
                            "expected a page number or headers.<name>, found {}",
                            describe(f.value)
                        ))
                    })?),
                }),
            };
            PaginationKind::Page {
                param_name: node.required_string("pageParamName")?,
                initial_index: node
                    .field("initialPageIndex")
                    .map(|f| f.count())
                    .transpose()?
                    .unwrap_or(0),
                end_index,
            }
        }
        "NONE" => PaginationKind::None,
        other => {
            return Err(type_field.error(format!(
                "expected OFFSET, POINTER, CONTINUATION_TOKEN, PAGE or NONE, found {other:?}"
            )))
        }
    };
    Ok(Pagination {
        kind,
        limit,
        maximum_requests,
    })
}

fn schedule(field: &Field<'_>) -> Result<Schedule, SpecError> {
    let node = field.object()?;
    let advance = match node.field("type") {
        Some(f) => match f.string()?.to_ascii_uppercase().as_str() {
            "ADVANCE" => true,
            other => return Err(f.error(format!("expected ADVANCE, found {other:?}"))),
        },
        None => false,
    };
    let format = |key: &str| -> Result<String, SpecError> {
        Ok(node
            .string(key)?
            .unwrap_or_else(|| DEFAULT_DATE_FORMAT.to_owned()))
    };
    if advance {
        return Ok(Schedule::Advance {
            format: format("paramFormat")?,
            incremental: node.required_string("incremental")?,
            backfill: node.required_string("backfill")?,
        });
    }
    Ok(Schedule::Params {
        start_name: node.required_string("scheduleStartParamName")?,
        end_name: node.required_string("scheduleEndParamName")?,
        start_format: format("scheduleStartParamFormat")?,
        end_format: format("scheduleEndParamFormat")?,
    })
}

fn uses_schedule_query(request: &RequestTemplate) -> bool {
    template::request_placeholders(request)
        .iter()
        .any(|(name, _)| name == SCHEDULE_QUERY)
}

/// The last member name of a simple path (`$.paging.cursor` → `cursor`).
fn last_name(path: &str) -> Option<String> {
    let last = path.rsplit(['.', '[']).next()?;
    let name = last.trim_matches(|c| matches!(c, ']' | '\'' | '"' | '$'));
    (!name.is_empty() && name != "*").then(|| name.to_owned())
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {:?}", s.chars().take(40).collect::<String>()),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAILCHIMP: &str = include_str!("../tests/fixtures/mailchimp-members.json");

    #[test]
    fn the_published_mailchimp_fragment_parses() {
        let spec = parse_text(MAILCHIMP).unwrap();
        assert_eq!(spec.request.host, "https://{domain}.api.mailchimp.com");
        assert_eq!(spec.request.path, "/3.0/lists/${listId}/members");
        assert_eq!(spec.request.method, Method::Get);
        assert_eq!(spec.content.source, "$.members");
        assert_eq!(spec.content.wrapper.as_deref(), Some("member"));
        assert_eq!(spec.content.skip, ["_links", "total_items", "list_id"]);
        assert_eq!(
            spec.pagination.limit,
            Some(Limit {
                name: "count".into(),
                value: 100
            })
        );
        let PaginationKind::Offset { offset_name, .. } = &spec.pagination.kind else {
            panic!("{:?}", spec.pagination.kind)
        };
        assert_eq!(offset_name, "offset");
        let Some(Schedule::Params {
            start_name,
            end_format,
            ..
        }) = &spec.schedule
        else {
            panic!("{:?}", spec.schedule)
        };
        assert_eq!(start_name, "since_last_changed");
        assert_eq!(end_format, "yyyy-MM-ddTHH:mm:ss:fffffffK");
        assert_eq!(spec.properties.len(), 1);
        assert_eq!(spec.properties[0].name, "listId");
    }

    #[test]
    fn the_three_document_shapes_are_the_same_spec() {
        let fragment = parse_text(MAILCHIMP).unwrap();
        let object: Value = serde_json::from_str(&format!("{{{MAILCHIMP}}}")).unwrap();
        let wrapped = parse_value(&object).unwrap();
        let bare = parse_value(&object["sourceSpec"]).unwrap();
        let as_string = parse_value(&Value::String(MAILCHIMP.to_owned())).unwrap();
        for spec in [&wrapped, &bare, &as_string] {
            assert_eq!(spec.request.path, fragment.request.path);
            assert_eq!(spec.pagination.limit, fragment.pagination.limit);
        }
    }

    fn minimal() -> Value {
        json!({
            "urlParams": {"host": "https://h", "path": "/p", "method": "GET"},
            "contentPath": {"path": "Results"},
            "paginationParams": {"type": "NONE"}
        })
    }

    #[test]
    fn parameters_may_sit_directly_in_the_source_spec_and_bare_names_are_paths() {
        let spec = parse_value(&minimal()).unwrap();
        assert_eq!(
            spec.content.path,
            JsonPath::parse("$.Results").unwrap(),
            "a bare name means $.name"
        );
        assert!(matches!(spec.pagination.kind, PaginationKind::None));
    }

    #[test]
    fn a_missing_required_piece_names_its_json_path() {
        for (remove, path) in [
            ("/urlParams/host", "sourceSpec.urlParams.host"),
            ("/urlParams/method", "sourceSpec.urlParams.method"),
            ("/contentPath/path", "sourceSpec.contentPath.path"),
            ("/paginationParams/type", "sourceSpec.paginationParams.type"),
        ] {
            let mut doc = minimal();
            let (parent, key) = remove.rsplit_once('/').unwrap();
            doc.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
            let err = parse_value(&doc).unwrap_err();
            assert_eq!(err.path, path, "{err}");
        }
        let err =
            parse_text(MAILCHIMP.replace("\"urlParams\"", "\"urlParamz\"").as_str()).unwrap_err();
        assert_eq!(err.path, "sourceSpec.attributes.urlParams", "{err}");
    }

    #[test]
    fn a_bad_value_names_its_json_path() {
        let err = parse_text(&MAILCHIMP.replace("\"100\"", "\"many\"")).unwrap_err();
        assert_eq!(
            err.path,
            "sourceSpec.attributes.paginationParams.limitValue"
        );
        assert!(err.to_string().contains("whole number"), "{err}");
        let mut doc = minimal();
        doc["contentPath"]["path"] = json!("$[");
        assert_eq!(
            parse_value(&doc).unwrap_err().path,
            "sourceSpec.contentPath.path"
        );
        doc = minimal();
        doc["paginationParams"] = json!({"type": "OFFSET", "limitName": "n", "limitValue": 5});
        assert_eq!(
            parse_value(&doc).unwrap_err().path,
            "sourceSpec.paginationParams.offSetName"
        );
        doc = minimal();
        doc["paginationParams"]["type"] = json!("SIDEWAYS");
        assert_eq!(
            parse_value(&doc).unwrap_err().path,
            "sourceSpec.paginationParams.type"
        );
        assert_eq!(
            parse_text("\"sourceSpec\": {").unwrap_err().path,
            "(document)"
        );
    }

    #[test]
    fn number_or_string_and_both_offset_spellings_are_accepted() {
        let mut doc = minimal();
        doc["paginationParams"] =
            json!({"type": "OFFSET", "limitName": "n", "limitValue": 5, "offsetName": "o"});
        let spec = parse_value(&doc).unwrap();
        assert_eq!(spec.pagination.limit.unwrap().value, 5);
    }

    #[test]
    fn page_end_index_is_a_number_or_a_response_header() {
        let mut doc = minimal();
        doc["paginationParams"] = json!({"type": "PAGE", "pageParamName": "page",
            "endPageIndex": "headers.X-PageCount", "initialPageIndex": "1"});
        let spec = parse_value(&doc).unwrap();
        let PaginationKind::Page {
            end_index,
            initial_index,
            ..
        } = spec.pagination.kind
        else {
            panic!()
        };
        assert_eq!(initial_index, 1);
        assert_eq!(
            end_index,
            Some(EndPageIndex::PageCountHeader("x-pagecount".into()))
        );
        assert_eq!(spec.pagination.maximum_requests, DEFAULT_MAXIMUM_REQUESTS);
    }

    #[test]
    fn advance_scheduling_needs_the_schedule_query_placeholder() {
        let mut doc = minimal();
        doc["scheduleParams"] = json!({"type": "ADVANCE", "paramFormat": "yyyy-MM-ddTHH:mm:ssK",
            "incremental": "updated > {START_TIME}", "backfill": "updated < {END_TIME}"});
        let err = parse_value(&doc).unwrap_err();
        assert_eq!(err.path, "sourceSpec.scheduleParams.type");
        doc["urlParams"]["queryParams"] = json!({"query": "{SCHEDULE_QUERY}"});
        assert!(matches!(
            parse_value(&doc).unwrap().schedule,
            Some(Schedule::Advance { .. })
        ));
    }
}
