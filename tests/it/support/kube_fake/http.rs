//! HTTP surface of the fake API server (axum): bearer-token check, request log, discovery,
//! the generic REST verbs over the store (list, watch, create, get, replace, patch, delete,
//! deletecollection), pod logs (optionally followed) and the exec/attach websocket routes.
//!
//! Paths are parsed by hand in one fallback handler so that every served kind gets the same
//! routes: `/api/v1/...` for the core group, `/apis/<group>/<version>/...` for the others, with
//! `namespaces/<ns>/` in front of namespaced kinds.

use super::discovery::{self, ResourceType};
use super::exec;
use super::pods;
use super::store::{ApiError, EventType, PatchType, Selectors};
use super::{RequestRecord, State};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts as _, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The router serving everything.
pub(super) fn router(state: Arc<State>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &self.status(),
        )
    }
}

/// Decodes `a=1&b=x%20y` into ordered pairs (repeated keys kept, as exec's `command`).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// Which object(s) a path addresses.
#[derive(Debug)]
enum Target {
    Discovery(Value),
    Collection {
        rt: &'static ResourceType,
        namespace: Option<String>,
    },
    Object {
        rt: &'static ResourceType,
        namespace: String,
        name: String,
    },
    Sub {
        rt: &'static ResourceType,
        namespace: String,
        name: String,
        sub: String,
    },
}

fn resolve(state: &State, path: &str, aggregated: bool) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let missing = || ApiError::no_route(path);
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["version"] => return Ok(Target::Discovery(discovery::version())),
        ["api"] if aggregated => return Ok(Target::Discovery(discovery::aggregated(true))),
        ["apis"] if aggregated => return Ok(Target::Discovery(discovery::aggregated(false))),
        ["api"] => {
            return Ok(Target::Discovery(discovery::core_versions(
                &state.addr.to_string(),
            )));
        }
        ["apis"] => return Ok(Target::Discovery(discovery::group_list())),
        ["apis", g] => {
            return discovery::group(g)
                .map(Target::Discovery)
                .ok_or_else(missing);
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(missing()),
    };
    let find = |plural: &str| discovery::find(group, version, plural).ok_or_else(missing);
    let namespaced = |rt: &'static ResourceType| {
        if rt.namespaced {
            Ok(rt)
        } else {
            Err(missing())
        }
    };
    match rest {
        [] => discovery::resource_list(group, version)
            .map(Target::Discovery)
            .ok_or_else(missing),
        [plural] => Ok(Target::Collection {
            rt: find(plural)?,
            namespace: None,
        }),
        [plural, name] => {
            let rt = find(plural)?;
            Ok(Target::Object {
                rt,
                namespace: String::new(),
                name: (*name).into(),
            })
        }
        ["namespaces", ns, plural] => {
            let rt = namespaced(find(plural)?)?;
            Ok(Target::Collection {
                rt,
                namespace: Some((*ns).into()),
            })
        }
        ["namespaces", ns, plural, name] => Ok(Target::Object {
            rt: namespaced(find(plural)?)?,
            namespace: (*ns).into(),
            name: (*name).into(),
        }),
        ["namespaces", ns, plural, name, sub] => Ok(Target::Sub {
            rt: namespaced(find(plural)?)?,
            namespace: (*ns).into(),
            name: (*name).into(),
            sub: (*sub).into(),
        }),
        _ => Err(missing()),
    }
}

fn parse_body(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if yaml => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("error decoding JSON: {e}"))),
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query(parse_query(parts.uri.query().unwrap_or_default()));
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    state.log_request(RequestRecord {
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.0.clone(),
        content_type: content_type.clone(),
    });
    if let Err(e) = check_auth(&state, &parts.headers) {
        return e.into_response();
    }
    let aggregated = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("application/json;g=apidiscovery.k8s.io"));
    let target = match resolve(&state, &path, aggregated) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if let Target::Sub {
        rt,
        namespace,
        name,
        sub,
    } = &target
        && rt.plural == "pods"
        && (sub == "exec" || sub == "attach")
    {
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(_) => return ApiError::bad_request("Upgrade request required").into_response(),
        };
        return exec::upgrade(state.clone(), ws, namespace.clone(), name.clone(), &query.0)
            .unwrap_or_else(IntoResponse::into_response);
    }
    let body = match axum::body::to_bytes(body, 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
    };
    dispatch(&state, &parts.method, target, &query, &content_type, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn check_auth(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = format!("Bearer {}", state.token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
        })
    }
}

fn list_document(rt: &ResourceType, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": rt.list_kind(),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

async fn dispatch(
    state: &Arc<State>,
    method: &Method,
    target: Target,
    query: &Query,
    content_type: &str,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let not_allowed = || ApiError {
        code: 405,
        reason: "MethodNotAllowed",
        message: format!(
            "the server does not allow this method ({method}) on the requested resource"
        ),
        details: None,
    };
    match target {
        Target::Discovery(doc) if method == Method::GET => Ok(json_response(StatusCode::OK, &doc)),
        Target::Discovery(_) => Err(not_allowed()),
        Target::Collection { rt, namespace } => {
            let selectors =
                Selectors::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
            match *method {
                Method::GET if query.flag("watch") => {
                    Ok(watch(state, rt, namespace, selectors, query))
                }
                Method::GET => {
                    let store = state.store();
                    let items = store.list(rt, namespace.as_deref(), &selectors);
                    Ok(json_response(
                        StatusCode::OK,
                        &list_document(rt, items, store.resource_version()),
                    ))
                }
                Method::POST => {
                    let namespace = namespace.filter(|_| rt.namespaced);
                    if rt.namespaced && namespace.is_none() {
                        return Err(ApiError::no_route(rt.plural));
                    }
                    let created = state.mutate(|s| {
                        s.create(
                            rt,
                            namespace.as_deref().unwrap_or(""),
                            parse_body(body, false)?,
                        )
                    })?;
                    Ok(json_response(StatusCode::CREATED, &created))
                }
                Method::DELETE => {
                    let deleted = state.mutate(|s| {
                        let victims = s.list(rt, namespace.as_deref(), &selectors);
                        victims
                            .iter()
                            .map(|v| {
                                let ns = v["metadata"]["namespace"].as_str().unwrap_or_default();
                                let name = v["metadata"]["name"].as_str().unwrap_or_default();
                                s.delete(rt, ns, name)
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })?;
                    let rv = state.store().resource_version();
                    Ok(json_response(
                        StatusCode::OK,
                        &list_document(rt, deleted, rv),
                    ))
                }
                _ => Err(not_allowed()),
            }
        }
        Target::Object {
            rt,
            namespace,
            name,
        } => match *method {
            Method::GET => Ok(json_response(
                StatusCode::OK,
                &state.store().get(rt, &namespace, &name)?,
            )),
            Method::PUT => {
                let object =
                    state.mutate(|s| s.replace(rt, &namespace, &name, parse_body(body, false)?))?;
                Ok(json_response(StatusCode::OK, &object))
            }
            Method::PATCH => {
                let patch_type = PatchType::from_content_type(content_type).ok_or_else(|| ApiError {
                    code: 415,
                    reason: "UnsupportedMediaType",
                    message: format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"),
                    details: None,
                })?;
                let exists = state.store().get(rt, &namespace, &name).is_ok();
                let parsed = parse_body(body, patch_type == PatchType::Apply)?;
                let object = state.mutate(|s| {
                    s.patch(
                        rt,
                        &namespace,
                        &name,
                        patch_type,
                        parsed,
                        query.get("fieldManager"),
                        query.flag("force"),
                    )
                })?;
                let code = if exists {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok(json_response(code, &object))
            }
            Method::DELETE => {
                let deleted = state.mutate(|s| s.delete(rt, &namespace, &name))?;
                if rt.plural == "pods" {
                    return Ok(json_response(StatusCode::OK, &deleted));
                }
                let status = json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": rt.group, "kind": rt.plural,
                                "uid": deleted["metadata"]["uid"]}
                });
                Ok(json_response(StatusCode::OK, &status))
            }
            _ => Err(not_allowed()),
        },
        Target::Sub {
            rt,
            namespace,
            name,
            sub,
        } => match (rt.plural, sub.as_str(), method) {
            ("pods", "log", &Method::GET) => logs(state, &namespace, &name, query),
            (_, "status", &Method::GET) => Ok(json_response(
                StatusCode::OK,
                &state.store().get(rt, &namespace, &name)?,
            )),
            (_, "status", &Method::PATCH) => {
                let patch = parse_body(body, false)?;
                let object = state.mutate(|s| {
                    s.update_with(rt, &namespace, &name, |o| {
                        if let Some(status) = patch.get("status") {
                            super::patch::merge_patch(&mut o["status"], status);
                        }
                    })
                })?;
                Ok(json_response(StatusCode::OK, &object))
            }
            _ => Err(ApiError::no_route(&format!("{}/{sub}", rt.plural))),
        },
    }
}

/// A streamed response body fed by a channel.
fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let mut rx = rx;
    Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>))
    }))
}

fn watch(
    state: &Arc<State>,
    rt: &'static ResourceType,
    namespace: Option<String>,
    selectors: Selectors,
    query: &Query,
) -> Response {
    let in_scope = {
        let namespace = namespace.clone();
        move |object: &Value| {
            namespace
                .as_deref()
                .is_none_or(|ns| !rt.namespaced || object["metadata"]["namespace"] == ns)
                && selectors.matches(object)
        }
    };
    let start_rv = query.get("resourceVersion").unwrap_or("");
    let (initial, mut events): (Vec<Value>, broadcast::Receiver<_>) = {
        let store = state.store();
        // Subscribing under the lock: no change can fall between the snapshot and the stream.
        let events = store.subscribe();
        let initial = match start_rv {
            "" | "0" => store
                .list(rt, namespace.as_deref(), &Selectors::default())
                .into_iter()
                .filter(|o| in_scope(o))
                .map(|o| json!({"type": EventType::Added.as_str(), "object": o}))
                .collect(),
            rv => {
                let after = rv.parse::<u64>().unwrap_or(0);
                store
                    .history_since(rt, after)
                    .into_iter()
                    .filter(|e| in_scope(&e.object))
                    .map(|e| e.to_json())
                    .collect()
            }
        };
        (initial, events)
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let line = |v: &Value| Bytes::from(format!("{v}\n"));
    tokio::spawn(async move {
        for event in &initial {
            if tx.send(line(event)).await.is_err() {
                return;
            }
        }
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                () = &mut deadline => return,
                () = tx.closed() => return,
            };
            match event {
                Ok(e) if e.resource == rt && in_scope(&e.object) => {
                    if tx.send(line(&e.to_json())).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let gone = json!({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "too old resource version", "reason": "Expired", "code": 410}});
                    let _ = tx.send(line(&gone)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(channel_body(rx))
        .expect("valid response")
}

fn logs(
    state: &Arc<State>,
    namespace: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let pods_rt = discovery::find("", "v1", "pods").expect("served");
    let pod = state.store().get(pods_rt, namespace, name)?;
    let container = pods::pick_container(&pod, query.get("container"))?;
    match pods::container_state(&pod, &container) {
        Some((s, _)) if s == "running" || s == "terminated" => {}
        Some((_, waiting)) => {
            let reason = waiting["reason"].as_str().unwrap_or("ContainerCreating");
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
            )));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )));
        }
    }
    let mut text = state.log_text(namespace, name, &container);
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        text = lines[lines.len().saturating_sub(n)..].concat();
    }
    if !query.flag("follow") {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let state = state.clone();
    let (namespace, name) = (namespace.to_string(), name.to_string());
    let mut sent = state.log_text(&namespace, &name, &container).len();
    tokio::spawn(async move {
        let mut changes = state.changes.subscribe();
        if !text.is_empty() && tx.send(Bytes::from(text)).await.is_err() {
            return;
        }
        loop {
            changes.mark_unchanged();
            let all = state.log_text(&namespace, &name, &container);
            if all.len() > sent {
                if tx.send(Bytes::copy_from_slice(&all[sent..])).await.is_err() {
                    return;
                }
                sent = all.len();
            }
            // The stream ends when the container ended (after its last bytes) or the pod is gone.
            let finished = match state.store().get(pods_rt, &namespace, &name) {
                Ok(pod) => {
                    matches!(pods::container_state(&pod, &container), Some((s, _)) if s == "terminated")
                }
                Err(_) => true,
            };
            if finished && state.log_text(&namespace, &name, &container).len() == sent {
                return;
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                () = tx.closed() => return,
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(channel_body(rx))
        .expect("valid response"))
}
