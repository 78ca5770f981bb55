//! The hand-written OpenAPI description (`openapi/pgusers.json`, served at `/v1/openapi.json`)
//! stays in step with the daemon: it is valid JSON, every route of `src/http/mod.rs` is in it with
//! its methods and vice versa, request bodies match the structs of `src/http/requests.rs` and are
//! closed (`additionalProperties: false`), the limits are those of the code, and every `$ref`
//! resolves. The route and struct lists are read from the source with a plain text scan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ALL_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel))
        .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn doc() -> Value {
    let text = read("openapi/pgusers.json");
    serde_json::from_str(&text).expect("openapi/pgusers.json is not valid JSON")
}

/// Follows a local `$ref` (`#/components/...`), repeatedly.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    panic!("$ref chain too long")
}

/// The routes of `src/http/mod.rs`: each `resource("…")` / `web::resource("…")` literal with the
/// methods routed on it until the next resource (`web::route()` means any method).
fn routes_in_source() -> BTreeMap<String, BTreeSet<String>> {
    let src = read("src/http/mod.rs");
    let needle = "resource(\"";
    let starts: Vec<usize> = src.match_indices(needle).map(|(i, _)| i).collect();
    assert!(
        starts.len() >= 10,
        "found only {} resource(\"…\") literals in src/http/mod.rs",
        starts.len()
    );
    let mut routes = BTreeMap::new();
    for (n, &start) in starts.iter().enumerate() {
        let lit_start = start + needle.len();
        let lit_end = lit_start + src[lit_start..].find('"').expect("unterminated literal");
        let path = src[lit_start..lit_end].to_string();
        let block_end = starts.get(n + 1).copied().unwrap_or(src.len());
        let block = &src[lit_end..block_end];
        let mut methods = BTreeSet::new();
        for m in ["get", "post", "put", "patch", "delete", "head"] {
            if block.contains(&format!("web::{m}()")) {
                methods.insert(m.to_string());
            }
        }
        if block.contains("web::route()") {
            methods.extend(ALL_METHODS.iter().map(|m| m.to_string()));
        }
        assert!(
            !methods.is_empty(),
            "no method found for {path} in src/http/mod.rs"
        );
        assert!(
            routes.insert(path.clone(), methods).is_none(),
            "{path} registered twice"
        );
    }
    routes
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ALL_METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

#[test]
fn the_document_is_openapi_3_0_json() {
    let doc = doc();
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.0."),
        "openapi version: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
}

#[test]
fn every_route_is_described_and_nothing_else() {
    let doc = doc();
    let source = routes_in_source();
    let described: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| ALL_METHODS.contains(&k.as_str()))
                .cloned()
                .collect();
            (p.clone(), methods)
        })
        .collect();
    let in_source: BTreeSet<_> = source.keys().collect();
    let in_doc: BTreeSet<_> = described.keys().collect();
    let missing: Vec<_> = in_source.difference(&in_doc).collect();
    let extra: Vec<_> = in_doc.difference(&in_source).collect();
    assert!(
        missing.is_empty(),
        "routes of src/http/mod.rs missing from openapi/pgusers.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "paths in openapi/pgusers.json that src/http/mod.rs does not route: {extra:?}"
    );
    for (path, methods) in &source {
        assert_eq!(
            methods, &described[path],
            "methods of {path}: source vs openapi/pgusers.json"
        );
    }
}

#[test]
fn every_ref_resolves_and_operation_ids_are_unique() {
    let doc = doc();
    fn walk(doc: &Value, v: &Value) {
        match v {
            Value::Object(map) => {
                if map.contains_key("$ref") {
                    resolve(doc, v);
                }
                map.values().for_each(|c| walk(doc, c));
            }
            Value::Array(items) => items.iter().for_each(|c| walk(doc, c)),
            _ => {}
        }
    }
    walk(&doc, &doc);
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} used twice");
    }
}

#[test]
fn responses_use_the_error_envelope_and_declare_auth_failures() {
    let doc = doc();
    let error = &doc["components"]["schemas"]["Error"];
    for field in ["error", "message"] {
        assert!(
            error["required"]
                .as_array()
                .unwrap()
                .contains(&Value::from(field)),
            "Error schema must require {field}"
        );
    }
    let codes: BTreeSet<&str> = error["properties"]["error"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for code in [
        "BAD_CALL",
        "UNAUTHENTICATED",
        "INVALID_CREDENTIALS",
        "NOT_FOUND",
        "EXPIRED",
        "REJECTED",
        "FORBIDDEN",
        "CONFLICT",
        "PAYLOAD_TOO_LARGE",
        "TOO_MANY_REQUESTS",
        "UNAVAILABLE",
        "INTERNAL",
    ] {
        assert!(codes.contains(code), "Error.error lacks {code}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["sessionCookie"]["in"], "cookie");
    assert_eq!(schemes["sessionCookie"]["name"], "pgusers_session");

    for (path, method, op) in operations(&doc) {
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3')),
            "{method} {path} declares no success status"
        );
        for (status, response) in responses {
            let response = resolve(&doc, response);
            if let Some(schema) = response.pointer("/content/application~1json/schema") {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/Error",
                        "{method} {path} {status} must use the error envelope"
                    );
                }
            }
        }
        let security = op.get("security").unwrap_or(&doc["security"]);
        let needs_credential = security.as_array().is_some_and(|alternatives| {
            !alternatives.is_empty()
                && alternatives
                    .iter()
                    .all(|a| a.as_object().is_some_and(|o| !o.is_empty()))
        });
        if needs_credential {
            assert!(
                responses.contains_key("401"),
                "{method} {path} needs a credential but declares no 401"
            );
        }
        if op.get("requestBody").is_some() && path.starts_with("/v1/") {
            for status in ["400", "413"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} takes a JSON body but declares no {status}"
                );
            }
        }
    }
}

/// The fields of each strictly parsed struct (`#[serde(deny_unknown_fields)]`) of a source file:
/// struct name → field name → required?
fn strict_structs(rel: &str) -> BTreeMap<String, BTreeMap<String, bool>> {
    let src = read(rel);
    let mut out = BTreeMap::new();
    let mut strict = false;
    let mut current: Option<(String, BTreeMap<String, bool>)> = None;
    let mut defaulted = false;
    for line in src.lines().map(str::trim) {
        let decl = line
            .strip_prefix("pub struct ")
            .or_else(|| line.strip_prefix("struct "));
        if line.starts_with("#[serde(") && line.contains("deny_unknown_fields") {
            strict = true;
        } else if let Some(rest) = decl {
            let name = rest.split([' ', '{']).next().unwrap().to_string();
            if strict {
                current = Some((name, BTreeMap::new()));
            }
            strict = false;
            defaulted = false;
        } else if line.starts_with('}') {
            if let Some((name, fields)) = current.take() {
                out.insert(name, fields);
            }
        } else if let Some((_, fields)) = current.as_mut() {
            if line.starts_with("#[serde(") && line.contains("default") {
                defaulted = true;
            } else if let Some((field, ty)) = line
                .strip_prefix("pub ")
                .unwrap_or(line)
                .split_once(':')
                .filter(|_| !line.starts_with("//") && !line.starts_with('#'))
            {
                let required = !defaulted && !ty.trim().starts_with("Option<");
                fields.insert(field.trim().to_string(), required);
                defaulted = false;
            }
        }
    }
    out
}

/// The strict request structs of `src/http/requests.rs` and `src/http/audit.rs`.
fn request_structs() -> BTreeMap<String, BTreeMap<String, bool>> {
    let mut all = strict_structs("src/http/requests.rs");
    assert!(all.len() >= 8, "found only {} request structs", all.len());
    if Path::new(ROOT).join("src/http/audit.rs").exists() {
        all.extend(strict_structs("src/http/audit.rs"));
    }
    all
}

#[test]
fn request_bodies_match_the_request_structs_and_are_closed() {
    let doc = doc();
    let structs = request_structs();
    let bodies = [
        ("UserCreateRequest", "UserCreate"),
        ("UserModifyRequest", "UserModify"),
        ("UserPasswordRequest", "UserPasswordChange"),
        ("UserAdminRequest", "AdminFlag"),
        ("SessionLoginRequest", "LoginRequest"),
        ("SessionCheckRequest", "SessionCheckRequest"),
        ("SessionTtlRequest", "SessionTtl"),
        ("MePasswordRequest", "MePasswordChange"),
        ("UserGroupsRequest", "UserGroups"),
    ];
    let queries = [
        ("UserFindQuery", "/v1/users", "get"),
        ("SessionsQuery", "/v1/sessions", "get"),
        ("SessionsKillQuery", "/v1/sessions", "delete"),
        ("PageQuery", "/v1/me/sessions", "get"),
        ("AuditQuery", "/v1/audit", "get"),
        ("PageQuery", "/v1/groups/{name}", "get"),
    ];
    let covered: BTreeSet<&str> = bodies
        .iter()
        .map(|(s, _)| *s)
        .chain(queries.iter().map(|(s, _, _)| *s))
        .collect();
    for name in structs.keys() {
        assert!(
            covered.contains(name.as_str()),
            "src/http has the strict request struct {name}, which this test does not map to the OpenAPI document"
        );
    }
    for (rust, schema_name) in bodies {
        let fields = structs
            .get(rust)
            .unwrap_or_else(|| panic!("{rust} not in src/http/requests.rs"));
        let schema = &doc["components"]["schemas"][schema_name];
        assert_eq!(
            schema["additionalProperties"],
            Value::Bool(false),
            "{schema_name} must refuse unknown fields"
        );
        let props: BTreeSet<String> = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema_name} has no properties"))
            .keys()
            .cloned()
            .collect();
        let rust_fields: BTreeSet<String> = fields.keys().cloned().collect();
        assert_eq!(props, rust_fields, "{schema_name} vs {rust}: fields");
        let required: BTreeSet<String> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        let rust_required: BTreeSet<String> = fields
            .iter()
            .filter(|(_, r)| **r)
            .map(|(f, _)| f.clone())
            .collect();
        assert_eq!(
            required, rust_required,
            "{schema_name} vs {rust}: required fields"
        );
    }
    // Every JSON request body of the document is one of these closed schemas.
    for (path, method, op) in operations(&doc) {
        if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
            assert_eq!(
                resolve(&doc, schema)["additionalProperties"],
                Value::Bool(false),
                "{method} {path}: JSON request body must have additionalProperties: false"
            );
        }
    }
    for (rust, path, method) in queries {
        let Some(fields) = structs.get(rust) else {
            panic!("{rust} not found in src/http");
        };
        let op = &doc["paths"][path][method];
        let params: BTreeMap<String, bool> = op["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
            .iter()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "query")
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["required"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        let names: BTreeSet<_> = params.keys().collect();
        let rust_names: BTreeSet<_> = fields.keys().collect();
        assert_eq!(
            names, rust_names,
            "{method} {path} query parameters vs {rust}"
        );
    }
}

fn prop<'a>(doc: &'a Value, schema: &str, field: &str) -> &'a Value {
    let v = &doc["components"]["schemas"][schema]["properties"][field];
    assert!(v.is_object(), "{schema}.{field} missing");
    v
}

#[test]
fn limits_are_those_of_the_code() {
    use pgusers::domain::validate::{MAX_EMAIL_CHARS, MAX_PASSWORD_BYTES, MAX_USERNAME_CHARS};
    let doc = doc();
    for schema in ["UserCreate", "UserModify"] {
        let u = prop(&doc, schema, "username");
        assert_eq!(u["minLength"], 1, "{schema}.username");
        assert_eq!(u["maxLength"], MAX_USERNAME_CHARS, "{schema}.username");
        let e = prop(&doc, schema, "email");
        assert_eq!(e["maxLength"], MAX_EMAIL_CHARS, "{schema}.email");
        assert!(e["pattern"].as_str().is_some_and(|p| p.contains('@')));
    }
    for (schema, field) in [
        ("UserCreate", "password"),
        ("UserPasswordChange", "new_password"),
        ("MePasswordChange", "new_password"),
    ] {
        let p = prop(&doc, schema, field);
        assert_eq!(p["minLength"], 8, "{schema}.{field}");
        assert_eq!(p["maxLength"], MAX_PASSWORD_BYTES, "{schema}.{field}");
        assert_eq!(p["x-max-bytes"], MAX_PASSWORD_BYTES, "{schema}.{field}");
    }
    assert_eq!(
        prop(&doc, "LoginRequest", "username")["maxLength"],
        MAX_USERNAME_CHARS
    );
    let ttl = prop(&doc, "SessionTtl", "seconds");
    assert_eq!(ttl["minimum"], 1);
    assert_eq!(ttl["maximum"], pgusers::config::MAX_TTL_SECS);
    let limit = doc["paths"]["/v1/users"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit parameter");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 1000);
    assert_eq!(limit["schema"]["default"], 100);
}
