//! From an HTTP request to a verb: the route, the query parameters, the limits
//! (an in-flight slot, the request timeout), the body, and which handler answers.
//! Methods a route does not take are 405 `Status`es.

use std::time::Duration;

use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::UserInfo;
use super::auth::authz::attributes;
use super::codec::{accepted, content_type, decode_object_blocking, read_body, render, response_format};
use super::inflight::Class;
use super::list::{FromCache, ListRequest};
use super::logs::{LogRequest, logs};
use super::managed_fields::{Manager, check_field_manager, check_patch_options};
use super::params::Params;
use super::patch::PatchType;
use super::prepare::{FieldValidation, Part};
use super::rest::{WriteOptions, Written};
use super::route::{self, Kind, Route, Subresource, namespaces};
use super::status::ApiError;
use super::streaming::{self, Stream};
use super::watch::{WatchRequest, watch};
use super::{ApiServer, discovery, eviction, list, metrics, openapi, rest, scale, table};

/// The longest watch `timeoutSeconds` taken as given: 136 years. A longer one is as
/// good as none, and bounding it keeps the deadline arithmetic from overflowing.
const MAX_WATCH_TIMEOUT_SECONDS: i64 = u32::MAX as i64;

/// What a write reads from its query: the writer, `dryRun` and `fieldValidation`.
impl Params {
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
    fn write_options<'a>(
        &self,
        options: &str,
        manager: &'a Manager,
        user: Option<&'a UserInfo>,
    ) -> Result<WriteOptions<'a>, ApiError> {
        check_field_manager(options, self.text("fieldManager"))?;
        Ok(WriteOptions {
            field_validation: FieldValidation::parse(self.text("fieldValidation"))?,
            manager: Some(manager),
            dry_run: self.dry_run(options)?,
            user,
        })
    }
}

/// Whether the client takes JSON (or says nothing, or anything).
fn accepts_json(headers: &HeaderMap) -> bool {
    let accepted = accepted(headers);
    accepted.is_empty()
        || accepted.iter().any(|(media, _)| {
            matches!(
                media.as_str(),
                "application/json" | "*/*" | "application/*" | "application/yaml"
            )
        })
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
    decode_object_blocking(headers, bytes).await
}

/// Whether the request is a watch (`?watch=true` on a collection).
fn is_watch(route: &Route, params: &Params) -> Result<bool, ApiError> {
    match route {
        Route::Collection { .. } => params.flag("watch"),
        _ => Ok(false),
    }
}

/// Routes the request, holds an in-flight slot for it and bounds it by the request
/// timeout (the client's `timeout`, if shorter), then answers it.
pub async fn handle(api: &ApiServer, request: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let route = route::parse(parts.uri.path()).ok_or_else(ApiError::path_not_found)?;
    let params = Params::parse(&parts.uri)?;
    let watch = is_watch(&route, &params)?;
    // Without credentials a request is anonymous; the handlers read the user from here.
    if parts.extensions.get::<UserInfo>().is_none() {
        parts.extensions.insert(UserInfo::anonymous());
    }
    if !api.authorizer.allows_all() {
        api.authorizer.ready().await?;
        let asks = attributes::of_route(
            &parts.method,
            parts.uri.path(),
            &route,
            watch,
            params.text("fieldSelector"),
        );
        let user = parts.extensions.get::<UserInfo>().expect("inserted above");
        api.authorizer.check(&api.kv, user, &asks).await?;
    }
    let class = Class::of(&parts.method, &route, watch);
    let _slot = api.inflight.enter(class)?;
    if class.is_long_running() {
        return respond(api, route, params, parts, body).await;
    }
    let timeout = match params.duration("timeout")? {
        Some(asked) if !asked.is_zero() => asked.min(api.settings.request_timeout),
        _ => api.settings.request_timeout,
    };
    tokio::time::timeout(timeout, respond(api, route, params, parts, body))
        .await
        .unwrap_or_else(|_| Err(ApiError::timeout()))
}

/// A list's paging and revision parameters, checked as kube-apiserver checks them.
fn list_request(kind: &Kind, params: &Params) -> Result<ListRequest, ApiError> {
    let limit = params.integer("limit", 0..=i64::MAX)?;
    let continue_token = Some(params.text("continue").to_string()).filter(|t| !t.is_empty());
    let resource_version = params.integer("resourceVersion", 0..=i64::MAX)?;
    let exact = match params.text("resourceVersionMatch") {
        "" => false,
        "NotOlderThan" => false,
        "Exact" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    let has_match = !params.text("resourceVersionMatch").is_empty();
    if continue_token.is_some() {
        if resource_version.is_some_and(|rv| rv > 0) {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        if has_match {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
    }
    if has_match && resource_version.is_none() {
        return Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if exact && resource_version == Some(0) {
        return Err(ApiError::bad_request(
            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
        ));
    }
    // Exact, or (as kube-apiserver has always done) a resourceVersion with a limit:
    // the list as it was at that revision. Otherwise: now, which is never older.
    let exact_revision = resource_version.filter(|&rv| rv > 0 && (exact || (!has_match && limit.unwrap_or(0) > 0)));
    // resourceVersion=0 (NotOlderThan 0, any): whatever the watch cache has; whole
    // lists not older than a revision, or at the current one: the cache once it
    // has caught up with it.
    let from_cache = match resource_version {
        _ if continue_token.is_some() || exact_revision.is_some() => FromCache::No,
        Some(0) => FromCache::Any,
        _ if limit.unwrap_or(0) > 0 => FromCache::No,
        Some(revision) => FromCache::AtLeast(revision),
        None => FromCache::Current,
    };
    Ok(ListRequest {
        from_cache,
        filter: params.filter(kind)?,
        limit: limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        continue_token,
        exact_revision,
    })
}

async fn respond(
    api: &ApiServer,
    route: Route,
    params: Params,
    parts: Parts,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    if let Route::Object {
        namespace: Some(namespace),
        name,
        subresource: Some(subresource @ (Subresource::Exec | Subresource::Attach | Subresource::PortForward)),
        ..
    } = &route
    {
        let stream = match subresource {
            Subresource::Exec => Stream::Exec,
            Subresource::Attach => Stream::Attach,
            _ => Stream::PortForward,
        };
        return streaming::proxy(api, stream, namespace, name, parts).await;
    }
    let format = response_format(&parts.headers);
    let user = parts.extensions.get::<UserInfo>();
    let method = parts.method.clone();
    let headers = &parts.headers;
    let reply = |code: u16, value: Value| Ok(render(format, code, &value));
    let written = |code: u16, written: Written| {
        let mut response = render(format, code, &written.object);
        add_warnings(&mut response, &written.warnings);
        Ok(response)
    };
    if !matches!(
        route,
        Route::Collection { .. } | Route::Object { .. } | Route::Review(_)
    ) && method != Method::GET
    {
        return Err(ApiError::method_not_allowed());
    }
    match route {
        Route::Review(super::auth::reviews::Review::Token) if method == Method::POST => {
            let body = object_body(headers, body).await?;
            reply(
                201,
                super::auth::service_accounts::token_review(&api.authenticator, &api.kv, body).await?,
            )
        }
        // Created to be answered: 201, as kube-apiserver answers a create.
        Route::Review(review) if method == Method::POST => {
            let body = object_body(headers, body).await?;
            let user = user.expect("every request has a user by now");
            reply(201, super::auth::reviews::answer(&api.authorizer, &review, user, body)?)
        }
        Route::Review(_) => Err(ApiError::method_not_allowed()),
        Route::Healthz => Ok(text_ok()),
        Route::Readyz => match api.kv.get(&namespaces().key("", "default")).await {
            Ok(_) => Ok(text_ok()),
            Err(e) => Err(ApiError::unavailable(format!(
                "not ready: the store cannot be read: {e}"
            ))),
        },
        Route::Version => reply(200, discovery::version()),
        Route::ServerMetrics => Ok((
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            api.request_metrics.text(),
        )
            .into_response()),
        Route::OpenApiIndex => reply(200, openapi::index()),
        Route::OpenApiV2 if accepts_json(headers) => reply(200, openapi::v2().clone()),
        Route::OpenApiV2 => Err(ApiError::new(
            406,
            "NotAcceptable",
            "only application/json is served here: the OpenAPI v2 document is not served as protobuf",
        )),
        Route::OpenApiDocument(path) => match openapi::group_version_document(&path) {
            Some(document) => reply(200, document.clone()),
            None => Err(ApiError::path_not_found()),
        },
        Route::CoreVersions | Route::Groups if discovery::wants_aggregated(headers) => {
            let list = discovery::aggregated(route == Route::CoreVersions);
            let mut response = render(format, 200, &list);
            response.headers_mut().insert(
                CONTENT_TYPE,
                axum::http::HeaderValue::from_static(discovery::AGGREGATED),
            );
            Ok(response)
        }
        Route::CoreVersions => reply(200, discovery::core_versions()),
        Route::Groups => reply(200, discovery::groups()),
        Route::Resources { group, version } => reply(200, discovery::resources(group, version)),
        Route::Metrics(path) => reply(200, metrics::serve(api, path, &params).await?),
        Route::Collection { kind, namespace } => match method {
            Method::GET if params.flag("watch")? => {
                let request = WatchRequest {
                    resource_version: params.integer("resourceVersion", 0..=i64::MAX)?,
                    filter: params.filter(kind)?,
                    allow_bookmarks: params.flag("allowWatchBookmarks")?,
                    // 0 is no timeout, as in Kubernetes.
                    timeout: params
                        .integer("timeoutSeconds", 0..=i64::MAX)?
                        .filter(|&s| s > 0)
                        .map(|s| Duration::from_secs(s.min(MAX_WATCH_TIMEOUT_SECONDS) as u64)),
                    table: match table::wants_table(headers) {
                        Some(version) => Some((version, table::Include::parse(params.text("includeObject"))?)),
                        None => None,
                    },
                };
                watch(api, kind, namespace.as_deref(), request).await
            }
            Method::GET => {
                let request = list_request(kind, &params)?;
                let list = list::list(api, kind, namespace.as_deref(), &request).await?;
                match table::wants_table(headers) {
                    Some(version) => {
                        let include = table::Include::parse(params.text("includeObject"))?;
                        let kind: &'static Kind = kind;
                        let table =
                            tokio::task::spawn_blocking(move || table::table(kind, version, &list, true, include))
                                .await
                                .map_err(|e| ApiError::internal(format!("writing the table failed: {e}")))?;
                        render_blocking(format, table).await
                    }
                    None => render_blocking(format, list).await,
                }
            }
            // A namespaced kind is created in a namespace, not in the all-namespaces list.
            Method::POST if namespace.is_some() || !kind.namespaced => {
                let manager = params.manager(headers, "");
                let options = params.write_options("CreateOptions", &manager, user)?;
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
                    let options = params.write_options("UpdateOptions", &manager, user)?;
                    let object = object_body(headers, body).await?;
                    written(
                        200,
                        rest::replace(api, kind, namespace, &name, part, object, options).await?,
                    )
                }
                (None | Some(Subresource::Status), Method::PATCH) => {
                    let patch_type = PatchType::of(&content_type(headers))?;
                    check_patch_options(patch_type, params.text("fieldManager"), params.has("force"))?;
                    let options = params.write_options("PatchOptions", &manager, user)?;
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
                    let grace = params.integer("gracePeriodSeconds", i64::MIN..=i64::MAX)?;
                    let bytes = read_body(headers, body).await?;
                    let mut options = if bytes.iter().all(u8::is_ascii_whitespace) {
                        None
                    } else {
                        Some(decode_object_blocking(headers, bytes).await?)
                    };
                    // The query's grace wins over the body's, as in Kubernetes.
                    if let Some(grace) = grace {
                        let options = options.get_or_insert_with(|| serde_json::json!({}));
                        if let Some(fields) = options.as_object_mut() {
                            fields.insert("gracePeriodSeconds".into(), grace.into());
                        }
                    }
                    let dry_run = params.dry_run("DeleteOptions")?;
                    reply(
                        200,
                        rest::delete(api, kind, namespace, &name, options.as_ref(), dry_run).await?,
                    )
                }
                (Some(Subresource::Scale), Method::GET) => reply(200, scale::read(api, kind, namespace, &name).await?),
                (Some(Subresource::Scale), Method::PUT) => {
                    let options = params.write_options("UpdateOptions", &manager, user)?;
                    let object = object_body(headers, body).await?;
                    reply(
                        200,
                        scale::replace(api, kind, namespace, &name, object, &manager, options.dry_run).await?,
                    )
                }
                (Some(Subresource::Scale), Method::PATCH) => {
                    let patch_type = PatchType::of(&content_type(headers))?;
                    check_patch_options(patch_type, params.text("fieldManager"), params.has("force"))?;
                    let dry_run = params.write_options("PatchOptions", &manager, user)?.dry_run;
                    let patch = patch_type.decode(&read_body(headers, body).await?)?;
                    reply(
                        200,
                        scale::patch(api, kind, namespace, &name, patch_type, patch, &manager, dry_run).await?,
                    )
                }
                (Some(Subresource::Token), Method::POST) => {
                    let body = object_body(headers, body).await?;
                    let Some(tokens) = api.authenticator.service_accounts() else {
                        return Err(ApiError::path_not_found());
                    };
                    reply(201, tokens.token_request(&api.kv, namespace, &name, body).await?)
                }
                (Some(Subresource::Eviction), Method::POST) => {
                    let body = object_body(headers, body).await?;
                    reply(201, eviction::evict(api, kind, namespace, &name, &body).await?)
                }
                (Some(Subresource::Log), Method::GET) => {
                    // Checked with PodLogOptions' rules.
                    let since_seconds = params.integer("sinceSeconds", 1..=i64::MAX)?;
                    let since_time = match params.text("sinceTime") {
                        "" => None,
                        text => Some(berth_api::time::parse_rfc3339(text).ok_or_else(|| {
                            ApiError::bad_request(format!("sinceTime: {text:?} is not an RFC 3339 time"))
                        })?),
                    };
                    if since_seconds.is_some() && since_time.is_some() {
                        return Err(ApiError::bad_request(
                            "at most one of `sinceTime` or `sinceSeconds` may be specified",
                        ));
                    }
                    let request = LogRequest {
                        container: Some(params.text("container").to_string()).filter(|c| !c.is_empty()),
                        follow: params.flag("follow")?,
                        tail_lines: params.integer("tailLines", 0..=i64::MAX)?,
                        previous: params.flag("previous")?,
                        limit_bytes: params.integer("limitBytes", 1..=i64::MAX)?,
                        timestamps: params.flag("timestamps")?,
                        since_seconds,
                        since_time,
                    };
                    logs(api, namespace, &name, request).await
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}

/// A list rendered on the blocking pool: thousands of objects take a while to write.
async fn render_blocking(format: super::codec::Format, list: Value) -> Result<Response, ApiError> {
    tokio::task::spawn_blocking(move || render(format, 200, &list))
        .await
        .map_err(|e| ApiError::internal(format!("writing the list failed: {e}")))
}
