//! From an HTTP request to a verb: the route, the query parameters, the body, and
//! which handler answers. Methods a route does not take are 405 `Status`es.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, Request};
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::codec::{content_type, decode_object, read_body, render, response_format};
use super::logs::{LogRequest, logs};
use super::managed_fields::{Manager, check_field_manager, check_patch_options};
use super::patch::PatchType;
use super::prepare::{FieldValidation, Part};
use super::rest::{WriteOptions, Written};
use super::route::{self, Kind, Route, Subresource, namespaces};
use super::selector::{FieldSelector, Filter, LabelSelector};
use super::status::ApiError;
use super::watch::{WatchRequest, watch};
use super::{ApiServer, discovery, openapi, rest, scale, table};

/// The query parameters of a request.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(uri: &Uri) -> Result<Params, ApiError> {
        Query::<HashMap<String, String>>::try_from_uri(uri)
            .map(|Query(params)| Params(params))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
    }

    fn text(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The writer of the request, to the object itself or a subresource.
    fn manager(&self, headers: &HeaderMap, subresource: &'static str) -> Manager {
        let user_agent = headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Manager::of_request(self.text("fieldManager"), user_agent, subresource)
    }

    /// `dryRun`: `All` or nothing, as kube-apiserver takes it; `options` names the
    /// verb's options kind for the error.
    fn dry_run(&self, options: &str) -> Result<bool, ApiError> {
        match self.text("dryRun") {
            "" => Ok(false),
            "All" => Ok(true),
            other => Err(ApiError::invalid_options(
                options,
                "dryRun",
                "FieldValueNotSupported",
                &format!("Unsupported value: [{}]: supported values: \"All\"", Value::from(other)),
            )),
        }
    }

    /// The options of a write by `manager`.
    fn write_options<'a>(&self, options: &str, manager: &'a Manager) -> Result<WriteOptions<'a>, ApiError> {
        check_field_manager(options, self.text("fieldManager"))?;
        Ok(WriteOptions {
            field_validation: FieldValidation::parse(self.text("fieldValidation"))?,
            manager: Some(manager),
            dry_run: self.dry_run(options)?,
        })
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name) {
            "" | "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            other => Err(ApiError::bad_request(format!("{name}: {other:?} is not a boolean"))),
        }
    }

    fn non_negative(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.text(name) {
            "" => Ok(None),
            text => match text.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(Some(n)),
                _ => Err(ApiError::bad_request(format!(
                    "{name}: {text:?} is not a non-negative integer"
                ))),
            },
        }
    }

    fn filter(&self, kind: &Kind) -> Result<Filter, ApiError> {
        Ok(Filter {
            labels: LabelSelector::parse(self.text("labelSelector")).map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(self.text("fieldSelector"), kind).map_err(ApiError::bad_request)?,
        })
    }
}

/// Adds a `Warning: 299 - "<text>"` header per warning, as kube-apiserver does
/// (kubectl prints them as `Warning: <text>`).
fn add_warnings(response: &mut Response, warnings: &[String]) {
    for warning in warnings {
        let quoted = format!("299 - {}", serde_json::Value::from(warning.as_str()));
        if let Ok(value) = axum::http::HeaderValue::from_str(&quoted) {
            response.headers_mut().append("warning", value);
        }
    }
}

fn text_ok() -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

/// Reads the body as an object (JSON, or YAML when the content type says so).
async fn object_body(headers: &HeaderMap, body: axum::body::Body) -> Result<Value, ApiError> {
    let bytes = read_body(headers, body).await?;
    decode_object(headers, &bytes)
}

pub async fn handle(api: &ApiServer, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let format = response_format(&parts.headers);
    let route = route::parse(parts.uri.path()).ok_or_else(ApiError::path_not_found)?;
    let params = Params::parse(&parts.uri)?;
    let method = parts.method.clone();
    let headers = &parts.headers;
    let reply = |code: u16, value: Value| Ok(render(format, code, &value));
    let written = |code: u16, written: Written| {
        let mut response = render(format, code, &written.object);
        add_warnings(&mut response, &written.warnings);
        Ok(response)
    };
    if !matches!(route, Route::Collection { .. } | Route::Object { .. }) && method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    match route {
        Route::Healthz => Ok(text_ok()),
        Route::Readyz => match api.kv.get(&namespaces().key("", "default")).await {
            Ok(_) => Ok(text_ok()),
            Err(e) => Err(ApiError::unavailable(format!(
                "not ready: the store cannot be read: {e}"
            ))),
        },
        Route::Version => reply(200, discovery::version()),
        Route::OpenApiIndex => reply(200, openapi::index()),
        Route::OpenApiDocument(path) => match openapi::group_version_document(&path) {
            Some(document) => reply(200, document.clone()),
            None => Err(ApiError::path_not_found()),
        },
        Route::CoreVersions => reply(200, discovery::core_versions()),
        Route::Groups => reply(200, discovery::groups()),
        Route::Resources { group, version } => reply(200, discovery::resources(group, version)),
        Route::Collection { kind, namespace } => match method {
            Method::GET if params.flag("watch")? => {
                let request = WatchRequest {
                    resource_version: params.non_negative("resourceVersion")?.unwrap_or(0),
                    filter: params.filter(kind)?,
                    allow_bookmarks: params.flag("allowWatchBookmarks")?,
                    timeout: params
                        .non_negative("timeoutSeconds")?
                        .map(|s| Duration::from_secs(s as u64)),
                };
                watch(api, kind, namespace.as_deref(), request).await
            }
            Method::GET => {
                let list = rest::list(api, kind, namespace.as_deref(), &params.filter(kind)?).await?;
                match table::wants_table(headers) {
                    Some(version) => {
                        let include = table::Include::parse(params.text("includeObject"))?;
                        reply(200, table::table(kind, version, &list, true, include))
                    }
                    None => reply(200, list),
                }
            }
            // A namespaced kind is created in a namespace, not in the all-namespaces list.
            Method::POST if namespace.is_some() || !kind.namespaced => {
                let manager = params.manager(headers, "");
                let options = params.write_options("CreateOptions", &manager)?;
                let object = object_body(headers, body).await?;
                written(
                    201,
                    rest::create(api, kind, namespace.as_deref(), object, options).await?,
                )
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        Route::Object {
            kind,
            namespace,
            name,
            subresource,
        } => {
            let namespace = namespace.as_deref().unwrap_or_default();
            let (part, subresource_name) = match subresource {
                Some(Subresource::Status) => (Part::Status, "status"),
                Some(Subresource::Scale) => (Part::Main, "scale"),
                _ => (Part::Main, ""),
            };
            let manager = params.manager(headers, subresource_name);
            match (subresource, method) {
                (None | Some(Subresource::Status), Method::GET) => {
                    let object = rest::get(api, kind, namespace, &name).await?;
                    match table::wants_table(headers) {
                        Some(version) => {
                            let include = table::Include::parse(params.text("includeObject"))?;
                            reply(200, table::table(kind, version, &object, false, include))
                        }
                        None => reply(200, object),
                    }
                }
                (None | Some(Subresource::Status), Method::PUT) => {
                    let options = params.write_options("UpdateOptions", &manager)?;
                    let object = object_body(headers, body).await?;
                    written(
                        200,
                        rest::replace(api, kind, namespace, &name, part, object, options).await?,
                    )
                }
                (None | Some(Subresource::Status), Method::PATCH) => {
                    let patch_type = PatchType::of(&content_type(headers))?;
                    check_patch_options(patch_type, params.text("fieldManager"), params.has("force"))?;
                    let options = params.write_options("PatchOptions", &manager)?;
                    let patch = patch_type.decode(&read_body(headers, body).await?)?;
                    if patch_type == PatchType::Apply {
                        let force = params.flag("force")?;
                        let (code, applied) =
                            rest::server_side_apply(api, kind, namespace, &name, part, patch, &manager, force, options)
                                .await?;
                        return written(code, applied);
                    }
                    written(
                        200,
                        rest::patch(api, kind, namespace, &name, part, patch_type, patch, options).await?,
                    )
                }
                (None, Method::DELETE) => {
                    let bytes = read_body(headers, body).await?;
                    let options = if bytes.iter().all(u8::is_ascii_whitespace) {
                        None
                    } else {
                        Some(decode_object(headers, &bytes)?)
                    };
                    let dry_run = params.dry_run("DeleteOptions")?;
                    reply(
                        200,
                        rest::delete(api, kind, namespace, &name, options.as_ref(), dry_run).await?,
                    )
                }
                (Some(Subresource::Scale), Method::GET) => reply(200, scale::read(api, kind, namespace, &name).await?),
                (Some(Subresource::Scale), Method::PUT) => {
                    let options = params.write_options("UpdateOptions", &manager)?;
                    let object = object_body(headers, body).await?;
                    reply(
                        200,
                        scale::replace(api, kind, namespace, &name, object, &manager, options.dry_run).await?,
                    )
                }
                (Some(Subresource::Scale), Method::PATCH) => {
                    let patch_type = PatchType::of(&content_type(headers))?;
                    check_patch_options(patch_type, params.text("fieldManager"), params.has("force"))?;
                    let dry_run = params.write_options("PatchOptions", &manager)?.dry_run;
                    let patch = patch_type.decode(&read_body(headers, body).await?)?;
                    reply(
                        200,
                        scale::patch(api, kind, namespace, &name, patch_type, patch, &manager, dry_run).await?,
                    )
                }
                (Some(Subresource::Log), Method::GET) => {
                    let request = LogRequest {
                        container: Some(params.text("container").to_string()).filter(|c| !c.is_empty()),
                        follow: params.flag("follow")?,
                        tail_lines: params.non_negative("tailLines")?,
                    };
                    logs(api, namespace, &name, request).await
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}
