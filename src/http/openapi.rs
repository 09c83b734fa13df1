//! The OpenAPI 3.1 document of the HTTP door, `GET /openapi.json`,
//! generated from the code: the schemas from the compiled proto
//! descriptors (the same ones reflection serves) under protobuf's
//! canonical JSON mapping as pbjson writes and reads it — proto field
//! names, enums by name, 64-bit integers as strings, a `oneof` one member
//! at most — with each field's proto comment as its description; the
//! paths from the door's own route table ([`ROUTES`]).

use std::collections::BTreeMap;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use serde_json::{Value, json};

use crate::proto;

/// One JSON operation of the door: method, path, operation id, what it
/// does, and its request and response schemas (names under
/// `components/schemas`; `None`: no body).
pub struct Route {
    /// `get` or `post`.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// The operation id (also its name in metrics).
    pub id: &'static str,
    /// A line on what it does.
    pub summary: &'static str,
    /// Request body schema.
    pub request: Option<&'static str>,
    /// Response body schema.
    pub response: &'static str,
    /// Whether it needs the API key (when the server has keys).
    pub authenticated: bool,
}

/// Every operation of the door.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/v1/analyze",
        id: "Analyze",
        summary: "Main story, topics, stance and summary of one article",
        request: Some("AnalyzeRequest"),
        response: "AnalyzeResponse",
        authenticated: true,
    },
    Route {
        method: "post",
        path: "/v1/analyze:batch",
        id: "AnalyzeBatch",
        summary: "Several articles under the same options; each answered on its own",
        request: Some("AnalyzeBatchRequest"),
        response: "AnalyzeBatchResponse",
        authenticated: true,
    },
    Route {
        method: "post",
        path: "/v1/embed",
        id: "Embed",
        summary: "L2-normalised embeddings of texts",
        request: Some("EmbedRequest"),
        response: "EmbedResponse",
        authenticated: true,
    },
    Route {
        method: "get",
        path: "/v1/info",
        id: "GetInfo",
        summary: "The model, label sets, defaults and limits",
        request: None,
        response: "GetInfoResponse",
        authenticated: true,
    },
    Route {
        method: "post",
        path: "/v1/ninjs:analyze",
        id: "AnalyzeNinjs",
        summary: "A ninjs item back with its IPTC subjects and summary",
        request: Some("NinjsRequest"),
        response: "NinjsResponse",
        authenticated: true,
    },
    Route {
        method: "get",
        path: "/health/live",
        id: "Live",
        summary: "200 while the process serves",
        request: None,
        response: "Health",
        authenticated: false,
    },
    Route {
        method: "get",
        path: "/health/ready",
        id: "Ready",
        summary: "200 when SERVING (as gRPC health), else 503",
        request: None,
        response: "Health",
        authenticated: false,
    },
];

/// The document (built once, on first request).
pub fn document() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let fds = FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set decodes");
    let mut schemas = message_schemas(&fds);
    schemas.insert("Error".into(), json!({
        "type": "object",
        "description": "Every error, whatever the status: `code` is the gRPC code's name.",
        "properties": {
            "code": {"type": "string", "description": "INVALID_ARGUMENT, UNAUTHENTICATED, RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, NOT_FOUND or UNIMPLEMENTED"},
            "message": {"type": "string"},
            "field_violations": {"type": "array", "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "description": {"type": "string"}},
                "required": ["field", "description"]
            }}
        },
        "required": ["code", "message", "field_violations"]
    }));
    schemas.insert(
        "Health".into(),
        json!({
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["SERVING", "NOT_SERVING"]}},
            "required": ["status"]
        }),
    );
    schemas.insert("NinjsRequest".into(), json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "item": {"type": "object", "description": "A ninjs 2.x item (`headlines`, `bodies[]` with contenttype text/html or text/plain, `language`, `uri`; 1.x `headline`, `body_html`, `body_text` also read)."},
            "options": {"$ref": "#/components/schemas/AnalyzeOptions", "description": "Default label set: iptc-media-topics."}
        },
        "required": ["item"]
    }));
    schemas.insert("NinjsResponse".into(), json!({
        "type": "object",
        "properties": {
            "item": {"type": "object", "description": "The item as sent, with `subjects[]` (uri, name, literal, confidence and relevance 0-100, creator khulasa) and the summary in `descriptions[]` (role summary)."},
            "analysis": {"$ref": "#/components/schemas/AnalyzeResponse"}
        },
        "required": ["item", "analysis"]
    }));
    // A working request of each operation, for readers and for
    // schemathesis's example phase.
    let article = json!({
        "id": "a1",
        "title": "بغداد وواشنطن تبحثان تدريب القوات",
        "text": "بحث وزير الدفاع العراقي مع قائد أمريكي توسيع برامج تدريب القوات. وأكد الجانبان التزامهما بالشراكة الأمنية."
    });
    for (name, example) in [
        (
            "AnalyzeRequest",
            json!({"article": article, "options": {"max_sentences": 2}}),
        ),
        (
            "AnalyzeBatchRequest",
            json!({"articles": [article, {"id": "a2", "text": "Iraq and the United States discussed training for the army."}]}),
        ),
        (
            "EmbedRequest",
            json!({"texts": ["تدريب القوات", "training the forces"], "kind": "INPUT_KIND_QUERY"}),
        ),
        (
            "NinjsRequest",
            json!({"item": {"uri": "urn:a1", "language": "ar", "bodies": [{"contenttype": "text/plain", "value": article["text"]}]}}),
        ),
    ] {
        if let Some(s) = schemas.get_mut(name) {
            s["examples"] = json!([example]);
        }
    }
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), json!({
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", r.response)}}}
        }));
        let errors: &[(&str, &str)] = if r.id == "Ready" {
            &[("503", "not serving")]
        } else if r.id == "Live" {
            &[]
        } else {
            &[
                ("400", "a bad request; `field_violations` name the fields"),
                ("401", "no API key, or a wrong one"),
                ("413", "the body is larger than the message limit"),
                (
                    "429",
                    "the queue is full: retry after `Retry-After` seconds",
                ),
                ("500", "a bug, logged; the server goes on"),
                (
                    "503",
                    "the model is loading or the engine stopped: retry after `Retry-After` seconds",
                ),
                ("504", "the deadline passed"),
            ]
        };
        for (status, why) in errors {
            let schema = if r.id == "Ready" { "Health" } else { "Error" };
            let mut response = json!({
                "description": why,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            });
            if *status == "429" || (*status == "503" && r.id != "Ready") {
                response["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}});
            }
            responses.insert((*status).into(), response);
        }
        let mut op = json!({
            "operationId": r.id,
            "summary": r.summary,
            "responses": responses,
        });
        if r.authenticated {
            // Open when the server has no keys, bearer when it has.
            op["security"] = json!([{}, {"bearer": []}]);
        }
        if r.id != "Live" && r.id != "Ready" {
            op["parameters"] = json!([
                {"name": super::TIMEOUT_HEADER, "in": "header", "required": false,
                 "description": "The call's deadline: 1-8 digits and a unit, ms, s, m or h (e.g. 30s).",
                 "schema": {"type": "string", "pattern": "^[0-9]{1,8}(ms|s|m|h)$"}},
                {"name": "traceparent", "in": "header", "required": false,
                 "description": "W3C trace context; the call's span joins the caller's trace.",
                 "schema": {"type": "string"}}
            ]);
        }
        if let Some(req) = r.request {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{req}")}}}
            });
        }
        paths
            .entry(r.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item")
            .insert(r.method.into(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "khulasa",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Main story, topics, stance and extractive summaries of news articles. Bodies are the messages of proto/khulasa/v1/khulasa.proto in protobuf's canonical JSON mapping (the gRPC API's own contract). Offsets: `start`/`end` UTF-8 bytes, `char_start`/`char_end` code points, `utf16_start`/`utf16_end` UTF-16 code units (JavaScript string indices)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key, when the server is given keys (--api-keys-file, KHULASA_API_KEYS)."}}
        }
    })
}

/// The leading comment of every element of the files, by descriptor path.
fn comments(fds: &FileDescriptorSet) -> BTreeMap<(String, Vec<i32>), String> {
    let mut out = BTreeMap::new();
    for f in &fds.file {
        let Some(info) = &f.source_code_info else {
            continue;
        };
        for loc in &info.location {
            if let Some(c) = &loc.leading_comments {
                let c = c
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
                    .to_string();
                if !c.is_empty() {
                    out.insert((f.name().to_string(), loc.path.clone()), c);
                }
            }
        }
    }
    out
}

/// A schema per message and enum of `khulasa.v1` (nested ones by their
/// full name with `.` as `_`).
fn message_schemas(fds: &FileDescriptorSet) -> serde_json::Map<String, Value> {
    let comments = comments(fds);
    let mut schemas = serde_json::Map::new();
    for f in fds.file.iter().filter(|f| f.package() == "khulasa.v1") {
        // Descriptor paths: 4 = message_type, 2 = field, 3 = nested_type,
        // 5 = enum_type (file) / 4 = enum_type (message).
        for (i, m) in f.message_type.iter().enumerate() {
            add_message(f.name(), &comments, m, "", &[4, i as i32], &mut schemas);
        }
        for (i, e) in f.enum_type.iter().enumerate() {
            let doc = comments.get(&(f.name().to_string(), vec![5, i as i32]));
            schemas.insert(e.name().into(), enum_schema(e, doc));
        }
    }
    schemas
}

fn enum_schema(e: &prost_types::EnumDescriptorProto, doc: Option<&String>) -> Value {
    let names: Vec<&str> = e.value.iter().map(|v| v.name()).collect();
    let mut s = json!({"type": "string", "enum": names});
    if let Some(d) = doc {
        s["description"] = Value::from(d.clone());
    }
    s
}

/// The schema name of a type reference like `.khulasa.v1.Article.Nested`.
fn ref_name(type_name: &str) -> String {
    type_name
        .trim_start_matches(".khulasa.v1.")
        .replace('.', "_")
}

fn add_message(
    file: &str,
    comments: &BTreeMap<(String, Vec<i32>), String>,
    m: &DescriptorProto,
    prefix: &str,
    path: &[i32],
    schemas: &mut serde_json::Map<String, Value>,
) {
    let name = format!("{prefix}{}", m.name());
    // Map entries are written inline as `additionalProperties`.
    let map_entries: BTreeMap<String, &DescriptorProto> = m
        .nested_type
        .iter()
        .filter(|n| n.options.as_ref().is_some_and(|o| o.map_entry()))
        .map(|n| (format!("{name}_{}", n.name()), n))
        .collect();
    for (i, n) in m.nested_type.iter().enumerate() {
        if !n.options.as_ref().is_some_and(|o| o.map_entry()) {
            let mut p = path.to_vec();
            p.extend([3, i as i32]);
            add_message(file, comments, n, &format!("{name}_"), &p, schemas);
        }
    }
    for (i, e) in m.enum_type.iter().enumerate() {
        let mut p = path.to_vec();
        p.extend([4, i as i32]);
        let doc = comments.get(&(file.to_string(), p));
        schemas.insert(format!("{name}_{}", e.name()), enum_schema(e, doc));
    }
    let mut properties = serde_json::Map::new();
    let mut oneofs: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (i, f) in m.field.iter().enumerate() {
        let mut schema = field_type(f, &map_entries);
        if f.label() == Label::Repeated && !map_entries.contains_key(&ref_name(f.type_name())) {
            schema = json!({"type": "array", "items": schema});
        }
        let mut p = path.to_vec();
        p.extend([2, i as i32]);
        if let Some(doc) = comments.get(&(file.to_string(), p)) {
            schema = with_description(schema, doc);
        }
        if let Some(o) = f.oneof_index
            && !f.proto3_optional()
        {
            oneofs.entry(o).or_default().push(f.name().to_string());
        }
        properties.insert(f.name().to_string(), schema);
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if let Some(doc) = comments.get(&(file.to_string(), path.to_vec())) {
        schema["description"] = Value::from(doc.clone());
    }
    // At most one member of each oneof.
    let exclusive: Vec<Value> = oneofs
        .values()
        .flat_map(|members| {
            members.iter().enumerate().flat_map(move |(i, a)| {
                members[i + 1..]
                    .iter()
                    .map(move |b| json!({"not": {"required": [a, b]}}))
            })
        })
        .collect();
    if !exclusive.is_empty() {
        schema["allOf"] = Value::Array(exclusive);
    }
    schemas.insert(name, schema);
}

/// A `$ref` with a description beside it (allowed in OpenAPI 3.1).
fn with_description(mut schema: Value, doc: &str) -> Value {
    schema["description"] = Value::from(doc.to_string());
    schema
}

fn field_type(
    f: &prost_types::FieldDescriptorProto,
    map_entries: &BTreeMap<String, &DescriptorProto>,
) -> Value {
    match f.r#type() {
        Type::Double | Type::Float => json!({"type": "number"}),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        Type::Uint32 | Type::Fixed32 => {
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        }
        // 64-bit integers are strings in the canonical mapping.
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
            json!({"type": "string", "pattern": "^-?[0-9]+$"})
        }
        Type::Uint64 | Type::Fixed64 => json!({"type": "string", "pattern": "^[0-9]+$"}),
        Type::Bool => json!({"type": "boolean"}),
        Type::String => json!({"type": "string"}),
        Type::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Type::Enum => json!({"$ref": format!("#/components/schemas/{}", ref_name(f.type_name()))}),
        Type::Message | Type::Group => {
            let name = ref_name(f.type_name());
            match map_entries.get(&name) {
                Some(entry) => {
                    let value = entry
                        .field
                        .iter()
                        .find(|v| v.number() == 2)
                        .map(|v| field_type(v, &BTreeMap::new()))
                        .unwrap_or(json!({}));
                    json!({"type": "object", "additionalProperties": value})
                }
                None => json!({"$ref": format!("#/components/schemas/{name}")}),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_a_schema_and_every_ref_resolves() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "AnalyzeRequest",
            "AnalyzeResponse",
            "Span",
            "Article",
            "StanceLabel",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        // The canonical mapping: proto names, enums as strings, u64 as strings.
        let span = &schemas["Span"]["properties"];
        assert_eq!(span["utf16_start"]["type"], "integer");
        assert!(
            span["utf16_start"]["description"]
                .as_str()
                .unwrap()
                .contains("UTF-16")
        );
        assert_eq!(
            schemas["Limits"]["properties"]["max_message_bytes"]["type"],
            "string"
        );
        assert_eq!(schemas["StanceLabel"]["type"], "string");
        // Article's content is a oneof: text and html never both.
        assert_eq!(
            schemas["Article"]["allOf"],
            json!([{"not": {"required": ["text", "html"]}}])
        );
        let text = serde_json::to_string(doc).unwrap();
        for r in text.split("\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
        for route in ROUTES {
            assert!(
                doc["paths"][route.path][route.method].is_object(),
                "{}",
                route.path
            );
        }
    }
}
