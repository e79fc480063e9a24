//! The CDP dialect: a Customer Data Platform connectors hub document, an OpenAPI 3
//! document (JSON) taken verbatim, with two lists at its root naming operations of its
//! `paths`:
//! - `preDefinedEvents`: pulls. `{"resourcePath": "/subscribers/get", "name": "Get subscribers"}`
//!   is the `get` operation of the path `/subscribers`; its records are where the response
//!   schema's `x-cdp-schema-settings.recordsLocatorPath` says (a bare name `Results` means
//!   `$.Results`; without one, the body itself), each element a record as it is.
//! - `preDefinedActions`: pushes, with `configValues` merged into what is sent.
//!
//! What the engine reads of the rest:
//! - `servers[0].url` is the host (server variables filled with their `default`);
//!   the option `base_url` replaces it as a whole, path included.
//! - The `parameters` of the operation and of its path (`in: path|query|header`, with
//!   `required`, `schema.type`, `description`, `$ref`s to `#/components/parameters`)
//!   are inputs, named as the parameter with every character other than a letter, a digit
//!   or `_` made `_` (`X-Account-Id` is the option `X_Account_Id`). Path parameters are
//!   always required; an optional query or header parameter without a value is left out.
//!   A cookie parameter is refused when required, ignored otherwise.
//! - `security` (the operation's, else the document's) with a scheme of
//!   `components.securitySchemes` of type `http` (`basic`, `bearer`) or `apiKey` in a
//!   header is the default authentication.
//! - `x-cdp-operation-settings.rateLimitConfig` is handed to the transport as it is.
//! - An action's request body schema tells the body's layout (an array of records, or an
//!   object with one array member holding them), where `configValues` go and, by the
//!   records array's `maxItems`, the default batch size; the definition may say otherwise.
//!
//! Local `$ref`s (`#/...`) are followed wherever the engine reads a schema, parameter,
//! request body or response.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::aep::DEFAULT_MAXIMUM_REQUESTS;
use crate::definition::{Auth, BodySettings, ConfigPlacement};
use crate::error::SpecError;
use crate::model::{
    Action, BodyLayout, Extraction, InputKind, Method, Object, Pagination, PaginationKind,
    Property, RequestTemplate, SourceSpec,
};
use crate::transport::EndpointGroup;

/// Records per request unless the definition or the schema's `maxItems` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 100;

/// A parsed CDP document.
pub struct Document {
    root: Value,
}

/// One entry of `preDefinedEvents` or `preDefinedActions` with its OpenAPI operation.
pub struct Operation<'a> {
    /// `preDefinedActions[1]`, for messages.
    pub at: String,
    pub name: String,
    pub resource_path: String,
    pub config_values: Object,
    path: String,
    method: Method,
    /// The JSON path of the OpenAPI operation (`paths./import.post`).
    op_at: String,
    op: &'a Object,
    path_item: &'a Object,
}

/// One `preDefinedEventListeners` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventListener {
    pub name: String,
    pub webhook_path: String,
    pub records_locator: String,
}

/// Which list an operation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Events,
    Actions,
}

impl List {
    fn key(self) -> &'static str {
        match self {
            List::Events => "preDefinedEvents",
            List::Actions => "preDefinedActions",
        }
    }
}

impl Document {
    /// The document as a JSON value, or a string holding its JSON text.
    pub fn new(spec: &Value) -> Result<Self, SpecError> {
        let root = match spec {
            Value::String(text) => serde_json::from_str(text.trim().trim_start_matches('\u{feff}'))
                .map_err(|e| SpecError::new("(document)", format!("not JSON: {e}")))?,
            other => other.clone(),
        };
        let Some(map) = root.as_object() else {
            return Err(SpecError::new(
                "(document)",
                "expected an OpenAPI 3 document (a JSON object)",
            ));
        };
        match map.get("openapi").and_then(Value::as_str) {
            Some(version) if version.trim().starts_with("3.") => {}
            Some(version) => {
                return Err(SpecError::new(
                    "openapi",
                    format!("expected an OpenAPI 3 document, found version {version:?}"),
                ))
            }
            None => return Err(SpecError::new("openapi", "is required but missing")),
        }
        Ok(Self { root })
    }

    fn map(&self) -> &Object {
        self.root.as_object().expect("checked in new")
    }

    /// The document's `preDefinedEventListeners`: webhooks the platform receives, each
    /// naming by its `webhookPath` (`intercomEvent/post`) an operation of the document's
    /// `webhooks`, with the JSONPath of the events in a delivery (`recordsLocator`,
    /// default `$`).
    pub fn event_listeners(&self) -> Result<Vec<EventListener>, SpecError> {
        const KEY: &str = "preDefinedEventListeners";
        let Some(list) = self.map().get(KEY) else {
            return Ok(vec![]);
        };
        let list = list
            .as_array()
            .ok_or_else(|| SpecError::new(KEY, "expected an array"))?;
        list.iter()
            .enumerate()
            .map(|(i, entry)| {
                let at = |field: &str| format!("{KEY}[{i}].{field}");
                let text = |field: &str| entry.get(field).and_then(Value::as_str);
                let webhook_path = text("webhookPath")
                    .ok_or_else(|| SpecError::new(at("webhookPath"), "is required but missing"))?;
                let (hook, method) =
                    webhook_path
                        .trim_matches('/')
                        .split_once('/')
                        .ok_or_else(|| {
                            SpecError::new(at("webhookPath"), "expected `<webhook>/<method>`")
                        })?;
                let described = self
                    .map()
                    .get("webhooks")
                    .and_then(|hooks| hooks.get(hook))
                    .and_then(|hook| hook.get(method.to_ascii_lowercase()));
                if described.is_none() {
                    return Err(SpecError::new(
                        at("webhookPath"),
                        format!("no operation webhooks.{hook}.{method} in the document"),
                    ));
                }
                let records_locator = text("recordsLocator").unwrap_or("$").to_owned();
                json_path(&records_locator, &at("recordsLocator"))?;
                Ok(EventListener {
                    name: text("name").unwrap_or(webhook_path).to_owned(),
                    webhook_path: webhook_path.to_owned(),
                    records_locator,
                })
            })
            .collect()
    }

    /// Follows `$ref`s (local ones only) from `value`, found at `at`.
    fn resolve<'a>(&'a self, value: &'a Value, at: &str) -> Result<(&'a Value, String), SpecError> {
        let mut value = value;
        let mut at = at.to_owned();
        for _ in 0..32 {
            let Some(reference) = value.get("$ref") else {
                return Ok((value, at));
            };
            let Some(text) = reference.as_str() else {
                return Err(SpecError::new(format!("{at}.$ref"), "expected a string"));
            };
            let Some(pointer) = text.strip_prefix('#') else {
                return Err(SpecError::new(
                    format!("{at}.$ref"),
                    format!(
                        "only references within the document (#/...) are followed, found {text:?}"
                    ),
                ));
            };
            value = self.root.pointer(pointer).ok_or_else(|| {
                SpecError::new(format!("{at}.$ref"), format!("{text:?} points at nothing"))
            })?;
            at = text.to_owned();
        }
        Err(SpecError::new(format!("{at}.$ref"), "references loop"))
    }

    /// The entries of `list`.
    pub fn operations(&self, list: List) -> Result<Vec<Operation<'_>>, SpecError> {
        let key = list.key();
        let Some(entries) = self.map().get(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(entries) = entries else {
            return Err(SpecError::new(key, "expected an array"));
        };
        let paths = match self.map().get("paths") {
            Some(Value::Object(paths)) => paths,
            Some(_) => return Err(SpecError::new("paths", "expected an object")),
            None => return Err(SpecError::new("paths", "is required but missing")),
        };
        let mut out = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{key}[{i}]");
            let Value::Object(entry) = entry else {
                return Err(SpecError::new(at, "expected an object"));
            };
            let resource_path = match entry.get("resourcePath") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
                Some(_) => {
                    return Err(SpecError::new(
                        format!("{at}.resourcePath"),
                        "expected a path and a method, as in \"/subscribers/get\"",
                    ))
                }
                None => {
                    return Err(SpecError::new(
                        format!("{at}.resourcePath"),
                        "is required but missing",
                    ))
                }
            };
            let name = match entry.get("name") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
                None => resource_path.clone(),
                Some(_) => {
                    return Err(SpecError::new(
                        format!("{at}.name"),
                        "expected a non-blank string",
                    ))
                }
            };
            let config_values = match entry.get("configValues") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(values)) => values.clone(),
                Some(_) => {
                    return Err(SpecError::new(
                        format!("{at}.configValues"),
                        "expected an object",
                    ))
                }
            };
            let (path, method_name) = split_resource_path(&resource_path).ok_or_else(|| {
                SpecError::new(
                    format!("{at}.resourcePath"),
                    format!(
                        "{resource_path:?} is not a path and a method, as in \"/subscribers/get\""
                    ),
                )
            })?;
            let method = match method_name.to_ascii_lowercase().as_str() {
                "get" => Method::Get,
                "post" => Method::Post,
                "put" => Method::Put,
                "patch" => Method::Patch,
                "delete" => Method::Delete,
                other => {
                    return Err(SpecError::new(
                        format!("{at}.resourcePath"),
                        format!("expected the method get, post, put, patch or delete at its end, found {other:?}"),
                    ))
                }
            };
            if list == List::Events && !matches!(method, Method::Get | Method::Post) {
                return Err(SpecError::new(
                    format!("{at}.resourcePath"),
                    "an event is pulled with get or post",
                ));
            }
            let (path_key, path_item) = lookup_path(paths, &path).ok_or_else(|| {
                SpecError::new(
                    format!("{at}.resourcePath"),
                    format!("the document's paths have no {path:?}"),
                )
            })?;
            let (path_item, _) = self.resolve(path_item, &format!("paths.{path_key}"))?;
            let Value::Object(path_item) = path_item else {
                return Err(SpecError::new(
                    format!("paths.{path_key}"),
                    "expected an object",
                ));
            };
            let method_key = method_name.to_ascii_lowercase();
            let op_at = format!("paths.{path_key}.{method_key}");
            let op = match path_item.get(&method_key) {
                Some(Value::Object(op)) => op,
                Some(_) => return Err(SpecError::new(op_at, "expected an object")),
                None => {
                    return Err(SpecError::new(
                        format!("{at}.resourcePath"),
                        format!("the path {path_key:?} has no {method_key} operation"),
                    ))
                }
            };
            out.push(Operation {
                at,
                name,
                resource_path,
                config_values,
                path: path_key.clone(),
                method,
                op_at,
                op,
                path_item,
            });
        }
        Ok(out)
    }

    /// The operation of `list` that `wanted` names (by name, resourcePath or
    /// operationId), or the only one; `field` is the definition's field that names it.
    pub fn select<'a>(
        &'a self,
        list: List,
        wanted: Option<&str>,
        field: &str,
        needed_by: &str,
    ) -> Result<Operation<'a>, SpecError> {
        let mut operations = self.operations(list)?;
        let names = || {
            operations
                .iter()
                .map(|o| format!("{:?}", o.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let index = match wanted {
            Some(wanted) => {
                let wanted = wanted.trim();
                let by_name = operations.iter().position(|o| o.name == wanted);
                let by_path = || {
                    operations
                        .iter()
                        .position(|o| same_resource_path(&o.resource_path, wanted))
                };
                let by_id = || {
                    operations.iter().position(|o| {
                        o.op.get("operationId").and_then(Value::as_str) == Some(wanted)
                    })
                };
                by_name.or_else(by_path).or_else(by_id).ok_or_else(|| {
                    SpecError::new(
                        field,
                        format!(
                            "{wanted:?} names no entry of {} (there are: {})",
                            list.key(),
                            names()
                        ),
                    )
                })?
            }
            None => match operations.len() {
                0 => {
                    return Err(SpecError::new(
                        list.key(),
                        format!("the document has none, and {needed_by} needs one"),
                    ))
                }
                1 => 0,
                n => {
                    return Err(SpecError::new(
                        field,
                        format!(
                            "the document has {n} {}: name one ({})",
                            list.key(),
                            names()
                        ),
                    ))
                }
            },
        };
        Ok(operations.swap_remove(index))
    }

    /// The authentication the document asks of `operation`: `Ok(None)` when it asks for
    /// none, an error when it asks only for schemes the engine does not speak.
    pub fn auth(&self, operation: &Operation<'_>) -> Result<Option<Auth>, SpecError> {
        let (security, at) = match operation.op.get("security") {
            Some(security) => (security, format!("{}.security", operation.op_at)),
            None => match self.map().get("security") {
                Some(security) => (security, "security".to_owned()),
                None => return Ok(None),
            },
        };
        let Value::Array(requirements) = security else {
            return Err(SpecError::new(at, "expected an array"));
        };
        if requirements.is_empty() {
            return Ok(None);
        }
        let mut unsupported = Vec::new();
        for requirement in requirements {
            let Value::Object(schemes) = requirement else {
                return Err(SpecError::new(at, "expected an array of objects"));
            };
            if schemes.is_empty() {
                return Ok(None);
            }
            if schemes.len() > 1 {
                unsupported.push(schemes.keys().cloned().collect::<Vec<_>>().join(" + "));
                continue;
            }
            let name = schemes.keys().next().expect("one");
            let scheme_at = format!("components.securitySchemes.{name}");
            let scheme = self
                .root
                .pointer(&format!(
                    "/components/securitySchemes/{}",
                    name.replace('~', "~0").replace('/', "~1")
                ))
                .ok_or_else(|| SpecError::new(&scheme_at, "is named in security but missing"))?;
            let (scheme, _) = self.resolve(scheme, &scheme_at)?;
            let text = |key: &str| scheme.get(key).and_then(Value::as_str).unwrap_or_default();
            match (
                text("type"),
                text("scheme").to_ascii_lowercase().as_str(),
                text("in"),
            ) {
                ("http", "basic", _) => return Ok(Some(Auth::Basic)),
                ("http", "bearer", _) => return Ok(Some(Auth::Bearer)),
                ("apiKey", _, "header") if !text("name").trim().is_empty() => {
                    return Ok(Some(Auth::ApiKey {
                        header: text("name").trim().to_owned(),
                    }))
                }
                _ => unsupported.push(name.clone()),
            }
        }
        Err(SpecError::new(
            at,
            format!(
                "asks for {} only, which the engine does not speak (http basic or bearer, or an apiKey in a header); set auth in the definition",
                unsupported.join(", ")
            ),
        ))
    }

    /// The server URL: `servers[0].url` with its variables' defaults, or empty (then
    /// `base_url` must be given).
    fn host(&self) -> Result<String, SpecError> {
        let Some(server) = self.map().get("servers").and_then(|s| s.get(0)) else {
            return Ok(String::new());
        };
        let Some(url) = server.get("url").and_then(Value::as_str) else {
            return Err(SpecError::new("servers[0].url", "is required but missing"));
        };
        let variables = server.get("variables").and_then(Value::as_object);
        let filled = rewrite_braces(url, |name| {
            match variables
                .and_then(|v| v.get(name))
                .and_then(|v| v.get("default"))
            {
                Some(Value::String(default)) => default.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => format!("{{{}}}", input_name(name)),
            }
        });
        Ok(filled.trim_end_matches('/').to_owned())
    }

    /// The request of `operation` (without its body) and the inputs its parameters are.
    pub fn request(
        &self,
        operation: &Operation<'_>,
    ) -> Result<(RequestTemplate, Vec<Property>), SpecError> {
        let mut query = Vec::new();
        let mut headers = Vec::new();
        let mut optional = Vec::new();
        let mut properties: Vec<Property> = Vec::new();
        for (name, location, required, property, param_at) in self.parameters(operation)? {
            let input = property.name.clone();
            match location.as_str() {
                "path" => {}
                "query" => query.push((name.clone(), format!("{{{input}}}"))),
                "header" => headers.push((name.clone(), format!("{{{input}}}"))),
                "cookie" if required => {
                    return Err(SpecError::new(
                        param_at,
                        "cookie parameters are not supported",
                    ))
                }
                "cookie" => continue,
                other => {
                    return Err(SpecError::new(
                        format!("{param_at}.in"),
                        format!("expected path, query, header or cookie, found {other:?}"),
                    ))
                }
            }
            if !required && location != "path" {
                optional.push(name);
            }
            match properties.iter_mut().find(|p| p.name == input) {
                Some(existing) => existing.required |= property.required,
                None => properties.push(property),
            }
        }
        let request = RequestTemplate {
            host: self.host()?,
            path: rewrite_braces(&operation.path, |name| format!("{{{}}}", input_name(name))),
            method: operation.method,
            query,
            headers,
            body: None,
            optional,
        };
        Ok((request, properties))
    }

    /// The operation's parameters (the path's, overridden by the operation's own of the
    /// same name and place): name, `in`, required, the input, and where it is.
    #[allow(clippy::type_complexity)]
    fn parameters(
        &self,
        operation: &Operation<'_>,
    ) -> Result<Vec<(String, String, bool, Property, String)>, SpecError> {
        let path_at = format!("paths.{}", operation.path);
        let mut out: Vec<(String, String, bool, Property, String)> = Vec::new();
        for (list, at) in [
            (operation.path_item.get("parameters"), path_at),
            (operation.op.get("parameters"), operation.op_at.clone()),
        ] {
            let Some(list) = list else { continue };
            let Value::Array(list) = list else {
                return Err(SpecError::new(
                    format!("{at}.parameters"),
                    "expected an array",
                ));
            };
            for (i, parameter) in list.iter().enumerate() {
                let param_at = format!("{at}.parameters[{i}]");
                let (parameter, _) = self.resolve(parameter, &param_at)?;
                let text = |key: &str| parameter.get(key).and_then(Value::as_str);
                let name = text("name")
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| {
                        SpecError::new(format!("{param_at}.name"), "is required but missing")
                    })?
                    .to_owned();
                let location = text("in")
                    .ok_or_else(|| {
                        SpecError::new(format!("{param_at}.in"), "is required but missing")
                    })?
                    .to_owned();
                let required =
                    location == "path" || parameter.get("required") == Some(&Value::Bool(true));
                let schema = match parameter.get("schema") {
                    Some(schema) => Some(self.resolve(schema, &format!("{param_at}.schema"))?.0),
                    None => None,
                };
                let schema_text =
                    |key: &str| schema.and_then(|s| s.get(key)).and_then(Value::as_str);
                let kind = match schema_text("type") {
                    Some("integer") => InputKind::Integer,
                    Some("number") => InputKind::Number,
                    Some("boolean") => InputKind::Boolean,
                    _ => InputKind::String,
                };
                let property = Property {
                    name: input_name(&name),
                    kind,
                    description: text("description").map(str::to_owned),
                    required,
                    secret: schema_text("format") == Some("password"),
                };
                out.retain(|(n, l, ..)| !(n == &name && l == &location));
                out.push((name, location, required, property, param_at));
            }
        }
        Ok(out)
    }

    /// The pull of an event.
    pub fn source(&self, operation: &Operation<'_>) -> Result<SourceSpec, SpecError> {
        let (request, properties) = self.request(operation)?;
        let (source, path) = match self.records_locator(operation)? {
            Some((text, at)) => {
                let path = json_path(&text, &at)?;
                (text, path)
            }
            None => ("$".to_owned(), JsonPath::parse("$").expect("valid")),
        };
        Ok(SourceSpec {
            request,
            content: Extraction {
                source,
                path,
                wrapper: None,
                keep: None,
                skip: Vec::new(),
                bare: true,
            },
            explode: None,
            pagination: Pagination {
                kind: PaginationKind::None,
                limit: None,
                maximum_requests: DEFAULT_MAXIMUM_REQUESTS,
            },
            schedule: None,
            properties,
            rate_limit: rate_limit(operation)?,
        })
    }

    /// `recordsLocatorPath` of the success response's JSON schema, with where it is.
    fn records_locator(
        &self,
        operation: &Operation<'_>,
    ) -> Result<Option<(String, String)>, SpecError> {
        let Some(Value::Object(responses)) = operation.op.get("responses") else {
            return Ok(None);
        };
        let mut codes: Vec<&String> = responses.keys().collect();
        codes.sort_by_key(|code| match code.as_str() {
            "200" => 0,
            "201" => 1,
            c if c.starts_with('2') => 2,
            "default" => 3,
            _ => 4,
        });
        let Some(code) = codes
            .into_iter()
            .find(|c| c.starts_with('2') || *c == "default")
        else {
            return Ok(None);
        };
        let at = format!("{}.responses.{code}", operation.op_at);
        let (response, at) = self.resolve(&responses[code], &at)?;
        let Some((schema, at)) = self.json_schema(response, &at)? else {
            return Ok(None);
        };
        match schema
            .get("x-cdp-schema-settings")
            .and_then(|s| s.get("recordsLocatorPath"))
        {
            None => Ok(None),
            Some(Value::String(path)) if !path.trim().is_empty() => Ok(Some((
                path.trim().to_owned(),
                format!("{at}.x-cdp-schema-settings.recordsLocatorPath"),
            ))),
            Some(_) => Err(SpecError::new(
                format!("{at}.x-cdp-schema-settings.recordsLocatorPath"),
                "expected a JSONPath or a member name",
            )),
        }
    }

    /// The JSON schema of a response or request body (`content."application/json".schema`,
    /// or the first `*json` media type), resolved.
    fn json_schema<'a>(
        &'a self,
        holder: &'a Value,
        at: &str,
    ) -> Result<Option<(&'a Value, String)>, SpecError> {
        let Some(Value::Object(content)) = holder.get("content") else {
            return Ok(None);
        };
        let media = content
            .get_key_value("application/json")
            .or_else(|| content.iter().find(|(k, _)| k.contains("json")));
        let Some((media_type, media)) = media else {
            return Ok(None);
        };
        let Some(schema) = media.get("schema") else {
            return Ok(None);
        };
        let at = format!("{at}.content.{media_type}.schema");
        let (schema, at) = self.resolve(schema, &at)?;
        Ok(Some((schema, at)))
    }

    /// A push: the action's request, its body layout and the batch size its schema
    /// suggests.
    pub fn action(
        &self,
        operation: &Operation<'_>,
        settings: Option<&BodySettings>,
    ) -> Result<(Action, Option<usize>), SpecError> {
        let (request, properties) = self.request(operation)?;
        let body = match operation.op.get("requestBody") {
            Some(body) => {
                let (body, at) = self.resolve(body, &format!("{}.requestBody", operation.op_at))?;
                self.json_schema(body, &at)?
            }
            None => None,
        };
        let (layout, max_items) = self.layout(operation, body, settings)?;
        Ok((
            Action {
                name: operation.name.clone(),
                request,
                config_values: operation.config_values.clone(),
                layout,
                properties,
                rate_limit: rate_limit(operation)?,
            },
            max_items,
        ))
    }

    fn layout(
        &self,
        operation: &Operation<'_>,
        schema: Option<(&Value, String)>,
        settings: Option<&BodySettings>,
    ) -> Result<(BodyLayout, Option<usize>), SpecError> {
        let records = settings.and_then(|s| s.records.as_deref()).map(str::trim);
        let placement = settings.and_then(|s| s.config_values);
        let is_array = |s: &Value| {
            s.get("type").and_then(Value::as_str) == Some("array") || s.get("items").is_some()
        };
        // The array schema of the records, when the schema tells it.
        let mut array_schema: Option<&Value> = None;
        let mut body_properties: Option<&Object> = None;
        let member = match (records, &schema) {
            (Some("$"), _) => {
                if let Some((s, _)) = &schema {
                    array_schema = is_array(s).then_some(*s);
                }
                None
            }
            (Some(""), _) => {
                return Err(SpecError::new(
                    "body.records",
                    "expected \"$\" or a member name",
                ))
            }
            (Some(name), schema) => {
                if let Some((s, at)) = schema {
                    body_properties = s.get("properties").and_then(Value::as_object);
                    if let Some(p) = body_properties.and_then(|p| p.get(name)) {
                        let (p, _) = self.resolve(p, &format!("{at}.properties.{name}"))?;
                        array_schema = is_array(p).then_some(p);
                    }
                }
                Some(name.to_owned())
            }
            (None, None) => None,
            (None, Some((s, at))) => {
                if is_array(s) {
                    array_schema = Some(*s);
                    None
                } else {
                    body_properties = s.get("properties").and_then(Value::as_object);
                    let mut arrays = Vec::new();
                    for (name, p) in body_properties.into_iter().flatten() {
                        let (p, _) = self.resolve(p, &format!("{at}.properties.{name}"))?;
                        if is_array(p) {
                            arrays.push((name.clone(), p));
                        }
                    }
                    if arrays.len() != 1 {
                        let found = if arrays.is_empty() {
                            "no array member".to_owned()
                        } else {
                            format!(
                                "several array members ({})",
                                arrays
                                    .iter()
                                    .map(|(n, _)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        return Err(SpecError::new(
                            "body.records",
                            format!(
                                "the request body schema of {:?} ({at}) has {found}: name the member holding the records",
                                operation.name
                            ),
                        ));
                    }
                    let (name, p) = arrays.pop().expect("one");
                    array_schema = Some(p);
                    Some(name)
                }
            }
        };
        let max_items = array_schema
            .and_then(|a| a.get("maxItems"))
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .map(|n| n as usize);
        let item_properties = match array_schema.and_then(|a| a.get("items")) {
            Some(items) => self
                .resolve(items, "items")?
                .0
                .get("properties")
                .and_then(Value::as_object),
            None => None,
        };
        let config_keys: Vec<&String> = operation.config_values.keys().collect();
        let layout = match member {
            None => {
                if placement == Some(ConfigPlacement::Body) {
                    return Err(SpecError::new(
                        "body.config_values",
                        "a body that is the array of records has no place beside them: use records",
                    ));
                }
                BodyLayout::Array
            }
            Some(member) => {
                let config_in_records = match placement {
                    Some(placement) => placement == ConfigPlacement::Records,
                    None => {
                        let declared = |props: Option<&Object>, key: &String| {
                            props.is_some_and(|p| p.contains_key(key))
                        };
                        !config_keys.is_empty()
                            && config_keys.iter().all(|k| !declared(body_properties, k))
                            && config_keys.iter().all(|k| declared(item_properties, k))
                    }
                };
                if !config_in_records && operation.config_values.contains_key(&member) {
                    return Err(SpecError::new(
                        format!("{}.configValues.{member}", operation.at),
                        "would replace the records in the body",
                    ));
                }
                BodyLayout::Object {
                    member,
                    config_in_records,
                }
            }
        };
        Ok((layout, max_items))
    }
}

/// The operation's `x-cdp-operation-settings.rateLimitConfig`, checked as the transport
/// reads it.
fn rate_limit(operation: &Operation<'_>) -> Result<Option<Value>, SpecError> {
    let Some(config) = operation
        .op
        .get("x-cdp-operation-settings")
        .and_then(|s| s.get("rateLimitConfig"))
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    EndpointGroup::from_cdp_rate_limit_config(vec!["/".to_owned()], config).map_err(|e| {
        SpecError::new(
            format!(
                "{}.x-cdp-operation-settings.rateLimitConfig",
                operation.op_at
            ),
            e.0,
        )
    })?;
    Ok(Some(config.clone()))
}

/// `/subscribers/get` → (`/subscribers`, `get`); `/get` → (`/`, `get`).
fn split_resource_path(resource_path: &str) -> Option<(String, String)> {
    let (path, method) = resource_path.trim_end_matches('/').rsplit_once('/')?;
    if method.is_empty() {
        return None;
    }
    let path = if path.is_empty() { "/" } else { path };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Some((path, method.to_owned()))
}

fn same_resource_path(a: &str, b: &str) -> bool {
    match (split_resource_path(a), split_resource_path(b)) {
        (Some((pa, ma)), Some((pb, mb))) => {
            pa.trim_end_matches('/') == pb.trim_end_matches('/') && ma.eq_ignore_ascii_case(&mb)
        }
        _ => false,
    }
}

/// The `paths` entry of `path`, with or without a trailing `/`.
fn lookup_path<'a>(paths: &'a Object, path: &str) -> Option<(&'a String, &'a Value)> {
    paths.get_key_value(path).or_else(|| {
        let bare = path.trim_end_matches('/');
        paths.iter().find(|(k, _)| k.trim_end_matches('/') == bare)
    })
}

/// The option name of a parameter: every character other than an ASCII letter, digit or
/// `_` becomes `_`, and one starting with a digit gets a `_` before it.
pub fn input_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// Replaces every `{name}` of an OpenAPI template with `replace(name)`.
fn rewrite_braces(template: &str, replace: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + close];
        if name.is_empty() {
            out.push_str("{}");
        } else {
            out.push_str(&replace(name));
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A JSONPath (RFC 9535); a bare name such as `Results` means `$.Results`.
pub fn json_path(text: &str, at: &str) -> Result<JsonPath, SpecError> {
    let text = text.trim();
    let full = if text.starts_with('$') {
        text.to_owned()
    } else {
        format!("$.{text}")
    };
    JsonPath::parse(&full)
        .map_err(|e| SpecError::new(at, format!("not a JSONPath (RFC 9535): {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HUB: &str = include_str!("../tests/fixtures/cdp-hub.json");

    fn hub() -> Document {
        Document::new(&Value::String(HUB.into())).unwrap()
    }

    #[test]
    fn resource_paths_split_into_a_path_and_a_method() {
        assert_eq!(
            split_resource_path("/subscribers/get"),
            Some(("/subscribers".into(), "get".into()))
        );
        assert_eq!(
            split_resource_path("/lists/{id}/members/post"),
            Some(("/lists/{id}/members".into(), "post".into()))
        );
        assert_eq!(
            split_resource_path("/get"),
            Some(("/".into(), "get".into()))
        );
        assert_eq!(split_resource_path("get"), None);
        assert!(same_resource_path("/import/POST", "/import/post/"));
    }

    #[test]
    fn parameter_names_become_option_names() {
        assert_eq!(input_name("X-Account-Id"), "X_Account_Id");
        assert_eq!(input_name("page.size"), "page_size");
        assert_eq!(input_name("1st"), "_1st");
        assert_eq!(
            rewrite_braces("/lists/{list-id}/x/{}", |n| format!(
                "{{{}}}",
                input_name(n)
            )),
            "/lists/{list_id}/x/{}"
        );
    }

    #[test]
    fn the_hub_event_and_action_are_found_by_name_path_or_operation_id_or_alone() {
        let doc = hub();
        let event = doc
            .select(List::Events, None, "operation", "a data source")
            .unwrap();
        assert_eq!(event.name, "Get subscribers");
        assert_eq!(event.method, Method::Get);
        for wanted in [
            "Create and update subscribers in batch",
            "/import/post",
            "ImportSubscribers",
        ] {
            let action = doc
                .select(List::Actions, Some(wanted), "operation", "an export")
                .unwrap();
            assert_eq!(action.resource_path, "/import/post", "{wanted}");
            assert_eq!(action.config_values["subscribe"], json!(true));
        }
        let err = doc
            .select(List::Actions, Some("Nope"), "operation", "an export")
            .err()
            .unwrap();
        assert_eq!(err.path, "operation");
        assert!(err.message.contains("Create and update"), "{err}");
    }

    #[test]
    fn the_hub_event_reads_records_from_results() {
        let doc = hub();
        let event = doc
            .select(List::Events, None, "operation", "a data source")
            .unwrap();
        let spec = doc.source(&event).unwrap();
        assert_eq!(spec.content.source, "Results");
        assert_eq!(spec.content.path, JsonPath::parse("$.Results").unwrap());
        assert!(spec.content.bare);
        assert_eq!(spec.request.path, "/subscribers");
        assert_eq!(spec.request.host, "https://api.example-esp.test/v3");
        assert_eq!(
            spec.request.query,
            [
                ("listId".to_owned(), "{listId}".to_owned()),
                ("updated-since".to_owned(), "{updated_since}".to_owned())
            ]
        );
        assert_eq!(spec.request.optional, ["updated-since"]);
        assert_eq!(spec.rate_limit, None);
        assert_eq!(
            doc.auth(&event).unwrap(),
            Some(Auth::ApiKey {
                header: "X-Api-Key".into()
            })
        );
    }

    #[test]
    fn the_hub_action_is_an_object_body_with_config_values_beside_the_records() {
        let doc = hub();
        let action = doc
            .select(List::Actions, None, "operation", "an export")
            .unwrap();
        let (action, max_items) = doc.action(&action, None).unwrap();
        assert_eq!(
            action.layout,
            BodyLayout::Object {
                member: "subscribers".into(),
                config_in_records: false
            }
        );
        assert_eq!(max_items, Some(10));
        assert_eq!(action.request.method, Method::Post);
        assert_eq!(
            action.rate_limit.unwrap()["rateLimitParameters"]["ratePerSecond"],
            json!(100)
        );
    }

    fn doc_with_body(schema: Value, config: Value) -> Document {
        Document::new(&json!({
            "openapi": "3.0.0",
            "preDefinedActions": [{"resourcePath": "/p/post", "name": "a", "configValues": config}],
            "paths": {"/p": {"post": {"requestBody": {"content": {"application/json": {"schema": schema}}}}}},
            "components": {"schemas": {"Item": {"type": "object", "properties": {"id": {}, "subscribe": {}}}}}
        }))
        .unwrap()
    }

    fn layout_of(doc: &Document, settings: Option<BodySettings>) -> Result<BodyLayout, SpecError> {
        let op = doc.select(List::Actions, None, "operation", "x").unwrap();
        doc.action(&op, settings.as_ref()).map(|(a, _)| a.layout)
    }

    #[test]
    fn the_body_layout_follows_the_schema_unless_the_definition_says_otherwise() {
        let array = doc_with_body(
            json!({"type": "array", "items": {"$ref": "#/components/schemas/Item"}}),
            json!({"subscribe": true}),
        );
        assert_eq!(layout_of(&array, None).unwrap(), BodyLayout::Array);
        let err = layout_of(
            &array,
            Some(BodySettings {
                records: None,
                config_values: Some(ConfigPlacement::Body),
            }),
        )
        .unwrap_err();
        assert_eq!(err.path, "body.config_values");
        // Config keys only the items declare go into each record.
        let object = doc_with_body(
            json!({"type": "object", "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}),
            json!({"subscribe": true}),
        );
        assert_eq!(
            layout_of(&object, None).unwrap(),
            BodyLayout::Object {
                member: "data".into(),
                config_in_records: true
            }
        );
        assert_eq!(
            layout_of(
                &object,
                Some(BodySettings {
                    records: Some("$".into()),
                    config_values: None
                })
            )
            .unwrap(),
            BodyLayout::Array
        );
        let two = doc_with_body(
            json!({"type": "object", "properties": {"a": {"type": "array"}, "b": {"items": {}}}}),
            json!({}),
        );
        let err = layout_of(&two, None).unwrap_err();
        assert_eq!(err.path, "body.records");
        assert!(err.message.contains("a, b"), "{err}");
        assert_eq!(
            layout_of(
                &two,
                Some(BodySettings {
                    records: Some("b".into()),
                    config_values: None
                })
            )
            .unwrap(),
            BodyLayout::Object {
                member: "b".into(),
                config_in_records: false
            }
        );
        let none = Document::new(&json!({
            "openapi": "3.1.0",
            "preDefinedActions": [{"resourcePath": "/p/put"}],
            "paths": {"/p": {"put": {}}}
        }))
        .unwrap();
        assert_eq!(layout_of(&none, None).unwrap(), BodyLayout::Array);
    }

    #[test]
    fn documents_that_cannot_be_used_name_the_problem() {
        assert_eq!(
            Document::new(&json!({"swagger": "2.0"}))
                .err()
                .unwrap()
                .path,
            "openapi"
        );
        assert_eq!(Document::new(&json!("{")).err().unwrap().path, "(document)");
        let doc = Document::new(&json!({
            "openapi": "3.0.0",
            "preDefinedEvents": [{"resourcePath": "/missing/get"}, {"resourcePath": "/p/delete"}],
            "paths": {"/p": {"get": {}}}
        }))
        .unwrap();
        let err = doc.operations(List::Events).err().unwrap();
        assert_eq!(err.path, "preDefinedEvents[0].resourcePath");
        let doc = Document::new(&json!({
            "openapi": "3.0.0",
            "security": [{"oauth": []}],
            "components": {"securitySchemes": {"oauth": {"type": "oauth2"}}},
            "preDefinedEvents": [{"resourcePath": "/p/get"}],
            "paths": {"/p": {"get": {}}}
        }))
        .unwrap();
        let event = doc.select(List::Events, None, "operation", "x").unwrap();
        let err = doc.auth(&event).unwrap_err();
        assert_eq!(err.path, "security");
        assert!(err.message.contains("oauth"), "{err}");
    }

    #[test]
    fn a_rate_limit_the_transport_cannot_use_is_refused_at_registration() {
        let mut root: Value = serde_json::from_str(HUB).unwrap();
        root["paths"]["/import"]["post"]["x-cdp-operation-settings"]["rateLimitConfig"]["type"] =
            json!("BURST");
        let doc = Document::new(&root).unwrap();
        let action = doc.select(List::Actions, None, "operation", "x").unwrap();
        let err = doc.action(&action, None).err().unwrap();
        assert_eq!(
            err.path,
            "paths./import.post.x-cdp-operation-settings.rateLimitConfig"
        );
        assert!(err.message.contains("BURST"), "{err}");
    }

    #[test]
    fn operation_parameters_override_the_paths_and_refs_are_followed() {
        let doc = Document::new(&json!({
            "openapi": "3.0.0",
            "servers": [{"url": "https://{region}.x.test/{v}/", "variables": {"region": {"default": "eu"}, "v": {}}}],
            "preDefinedEvents": [{"resourcePath": "/lists/{list-id}/get"}],
            "paths": {"/lists/{list-id}": {
                "parameters": [{"$ref": "#/components/parameters/List"}, {"name": "X-Trace", "in": "header"}],
                "get": {"parameters": [
                    {"name": "X-Trace", "in": "header", "required": true, "description": "trace id"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "c", "in": "cookie"}
                ]}
            }},
            "components": {"parameters": {"List": {"name": "list-id", "in": "path", "schema": {"type": "string"}}}}
        }))
        .unwrap();
        let event = doc.select(List::Events, None, "operation", "x").unwrap();
        let (request, properties) = doc.request(&event).unwrap();
        assert_eq!(request.host, "https://eu.x.test/{v}");
        assert_eq!(request.path, "/lists/{list_id}");
        assert_eq!(
            request.headers,
            [("X-Trace".to_owned(), "{X_Trace}".to_owned())]
        );
        assert_eq!(request.optional, ["limit"]);
        let names: Vec<_> = properties
            .iter()
            .map(|p| (p.name.as_str(), p.required, p.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("list_id", true, InputKind::String),
                ("X_Trace", true, InputKind::String),
                ("limit", false, InputKind::Integer)
            ]
        );
        assert_eq!(properties[1].description.as_deref(), Some("trace id"));
    }

    #[test]
    fn event_listeners_name_a_webhook_of_the_document() {
        let mut root = json!({
            "openapi": "3.0.0",
            "paths": {},
            "preDefinedEventListeners": [
                {"webhookPath": "intercomEvent/post", "recordsLocator": "data.item", "name": "Contacts"},
                {"webhookPath": "other/post"}
            ],
            "webhooks": {"intercomEvent": {"post": {}}, "other": {"post": {}}}
        });
        let listeners = Document::new(&root).unwrap().event_listeners().unwrap();
        assert_eq!(
            listeners[0],
            EventListener {
                name: "Contacts".into(),
                webhook_path: "intercomEvent/post".into(),
                records_locator: "data.item".into()
            }
        );
        assert_eq!(listeners[1].records_locator, "$");
        root["preDefinedEventListeners"][1]["webhookPath"] = json!("missing/post");
        let err = Document::new(&root).unwrap().event_listeners().unwrap_err();
        assert_eq!(err.path, "preDefinedEventListeners[1].webhookPath");
        assert!(err.message.contains("webhooks.missing.post"), "{err}");
    }
}
