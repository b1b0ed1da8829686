//! The human-readable API reference: an OpenAPI document rendered into one
//! self-contained HTML page (served at `/api/docs`, see `openapi.rs`). Nothing is
//! downloaded, at build time or at run time: no script at all, one inline
//! style sheet, and every text taken from the document is HTML-escaped.
//!
//! The page lists, per tag, each operation with its summary, description,
//! authentication, parameters, request body and responses (status,
//! description, body schema, headers), then every schema with its fields.

use std::fmt::Write as _;

use serde_json::{Map, Value};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:0 auto;\
padding:1rem 1.5rem;color:#1d1d1f}code{font:13px ui-monospace,monospace;background:#f2f2f5;\
padding:0 .25em;border-radius:3px}h2{margin-top:2.5rem;border-bottom:1px solid #ddd}\
section.op{border:1px solid #ddd;border-radius:6px;padding:.25rem 1rem;margin:1rem 0}\
.m{display:inline-block;min-width:4.2em;text-align:center;color:#fff;border-radius:4px;\
font:bold 12px ui-monospace,monospace;padding:.2em .4em;margin-right:.5em}\
.get{background:#2f6fdb}.post{background:#1d8a4c}.delete{background:#c4372f}\
.put,.patch{background:#b56b00}table{border-collapse:collapse;width:100%;margin:.5rem 0}\
th,td{border:1px solid #e3e3e6;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f7f7f9}ul.toc{columns:2}.muted{color:#666}";

/// Renders an OpenAPI 3 document (as JSON) into a complete HTML page.
pub fn render(doc: &Value) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t} reference</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
        t = escape(title)
    );
    if let Some(version) = doc["info"]["version"].as_str() {
        let _ = write!(html, "<p class=\"muted\">Version {}. ", escape(version));
    }
    html.push_str(
        "The machine-readable document is <a href=\"openapi.json\"><code>openapi.json</code></a> \
         (OpenAPI 3.1).</p>",
    );
    html.push_str(&prose(doc["info"]["description"].as_str().unwrap_or("")));
    let groups = group_by_tag(doc);
    html.push_str(&contents(&groups));
    for group in &groups {
        html.push_str(&tag_section(doc, group));
    }
    html.push_str(&schemas_section(&doc["components"]["schemas"]));
    html.push_str("</body></html>");
    html
}

/// One operation of the document.
struct Op<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Value,
}

/// The operations of one tag, in the document's path order.
struct TagGroup<'a> {
    name: String,
    description: String,
    ops: Vec<Op<'a>>,
}

fn group_by_tag(doc: &Value) -> Vec<TagGroup<'_>> {
    let mut groups: Vec<TagGroup<'_>> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| TagGroup {
            name: t["name"].as_str().unwrap_or_default().to_owned(),
            description: t["description"].as_str().unwrap_or_default().to_owned(),
            ops: Vec::new(),
        })
        .collect();
    let paths = doc["paths"].as_object().into_iter().flatten();
    for (path, item) in paths {
        for method in METHODS {
            let op = &item[method];
            if !op.is_object() {
                continue;
            }
            let tag = op["tags"][0].as_str().unwrap_or("other");
            let index = match groups.iter().position(|g| g.name == tag) {
                Some(index) => index,
                None => {
                    groups.push(TagGroup {
                        name: tag.to_owned(),
                        description: String::new(),
                        ops: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            if let Some(group) = groups.get_mut(index) {
                group.ops.push(Op { method, path, op });
            }
        }
    }
    groups.retain(|g| !g.ops.is_empty());
    groups
}

fn contents(groups: &[TagGroup<'_>]) -> String {
    let mut html = String::from("<h2>Contents</h2><ul class=\"toc\">");
    for group in groups {
        let _ = write!(html, "<li><b>{}</b><ul>", escape(&group.name));
        for op in &group.ops {
            let _ = write!(
                html,
                "<li><a href=\"#{}\">{} <code>{}</code></a></li>",
                op_anchor(op.method, op.path),
                op.method.to_uppercase(),
                escape(op.path)
            );
        }
        html.push_str("</ul></li>");
    }
    html.push_str("<li><a href=\"#schemas\"><b>Schemas</b></a></li></ul>");
    html
}

fn tag_section(doc: &Value, group: &TagGroup<'_>) -> String {
    let mut html = format!(
        "<h2 id=\"tag-{}\">{}</h2>",
        anchor_part(&group.name),
        escape(&group.name)
    );
    if !group.description.is_empty() {
        let _ = write!(html, "<p>{}</p>", inline(&group.description));
    }
    for op in &group.ops {
        html.push_str(&operation(doc, op));
    }
    html
}

fn operation(doc: &Value, op: &Op<'_>) -> String {
    let mut html = format!(
        "<section class=\"op\" id=\"{}\"><h3><span class=\"m {m}\">{}</span><code>{}</code></h3>",
        op_anchor(op.method, op.path),
        op.method.to_uppercase(),
        escape(op.path),
        m = op.method
    );
    if let Some(summary) = op.op["summary"].as_str() {
        let _ = write!(html, "<p><b>{}</b></p>", inline(summary));
    }
    html.push_str(&prose(op.op["description"].as_str().unwrap_or("")));
    html.push_str(&auth(doc, &op.op["security"]));
    html.push_str(&parameters(&op.op["parameters"]));
    html.push_str(&request_body(&op.op["requestBody"]));
    html.push_str(&responses(&op.op["responses"]));
    html.push_str("</section>");
    html
}

fn auth(doc: &Value, security: &Value) -> String {
    let schemes: Vec<String> = security
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys())
        .map(|name| scheme_label(&doc["components"]["securitySchemes"][name.as_str()], name))
        .collect();
    if schemes.is_empty() {
        "<p><b>Auth:</b> none (public).</p>".to_owned()
    } else {
        format!("<p><b>Auth:</b> {}.</p>", schemes.join(" or "))
    }
}

fn scheme_label(scheme: &Value, name: &str) -> String {
    match (scheme["type"].as_str(), scheme["in"].as_str()) {
        (Some("http"), _) => format!(
            "<code>Authorization: {} &lt;token&gt;</code>",
            escape(&capitalize(scheme["scheme"].as_str().unwrap_or("bearer")))
        ),
        (Some("apiKey"), Some(place)) => format!(
            "{} <code>{}</code>",
            escape(place),
            escape(scheme["name"].as_str().unwrap_or(name))
        ),
        _ => format!("<code>{}</code>", escape(name)),
    }
}

fn parameters(params: &Value) -> String {
    let Some(params) = params.as_array().filter(|p| !p.is_empty()) else {
        return String::new();
    };
    let mut html = String::from(
        "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th>\
         <th>Required</th><th>Description</th></tr>",
    );
    for p in params {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(p["name"].as_str().unwrap_or_default()),
            escape(p["in"].as_str().unwrap_or_default()),
            type_html(&p["schema"]),
            yes_no(p["required"].as_bool() == Some(true)),
            inline(p["description"].as_str().unwrap_or_default())
        );
    }
    html.push_str("</table>");
    html
}

fn request_body(body: &Value) -> String {
    let Some(content) = body["content"].as_object() else {
        return String::new();
    };
    let mut html = String::from("<h4>Request body</h4><ul>");
    for (media_type, media) in content {
        let _ = write!(
            html,
            "<li><code>{}</code>: {}{}</li>",
            escape(media_type),
            type_html(&media["schema"]),
            if body["required"].as_bool() == Some(true) {
                " (required)"
            } else {
                ""
            }
        );
    }
    html.push_str("</ul>");
    html
}

fn responses(responses: &Value) -> String {
    let Some(responses) = responses.as_object() else {
        return String::new();
    };
    let mut html = String::from(
        "<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th>\
         <th>Headers</th></tr>",
    );
    for (status, response) in responses {
        let _ = write!(
            html,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(status),
            inline(response["description"].as_str().unwrap_or_default()),
            response_body(&response["content"]),
            response_headers(&response["headers"])
        );
    }
    html.push_str("</table>");
    html
}

fn response_body(content: &Value) -> String {
    let Some(content) = content.as_object() else {
        return "<span class=\"muted\">none</span>".to_owned();
    };
    content
        .iter()
        .map(|(media_type, media)| {
            let schema = &media["schema"];
            if schema.is_null() {
                format!("<code>{}</code>", escape(media_type))
            } else {
                format!(
                    "{} <span class=\"muted\">({})</span>",
                    type_html(schema),
                    escape(media_type)
                )
            }
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn response_headers(headers: &Value) -> String {
    let Some(headers) = headers.as_object() else {
        return String::new();
    };
    headers
        .iter()
        .map(|(name, h)| {
            format!(
                "<code>{}</code> {}",
                escape(name),
                inline(h["description"].as_str().unwrap_or_default())
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn schemas_section(schemas: &Value) -> String {
    let mut html = String::from("<h2 id=\"schemas\">Schemas</h2>");
    for (name, schema) in schemas.as_object().into_iter().flatten() {
        let _ = write!(
            html,
            "<section class=\"op\" id=\"schema-{}\"><h3>{}</h3>",
            anchor_part(name),
            escape(name)
        );
        html.push_str(&prose(schema["description"].as_str().unwrap_or("")));
        html.push_str(&fields(schema));
        html.push_str("</section>");
    }
    html
}

fn fields(schema: &Value) -> String {
    let Some(properties) = schema["properties"].as_object() else {
        return format!("<p>Type: {}</p>", type_html(schema));
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut html = String::from(
        "<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>",
    );
    for (name, property) in properties {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            escape(name),
            type_html(property),
            yes_no(required.contains(&name.as_str())),
            inline(property["description"].as_str().unwrap_or_default()),
            example(&property["example"])
        );
    }
    html.push_str("</table>");
    html
}

fn example(value: &Value) -> String {
    if value.is_null() {
        return String::new();
    }
    format!(
        " <span class=\"muted\">Example: <code>{}</code></span>",
        escape(&value.to_string())
    )
}

/// A schema's type in a few words, with links to named schemas.
fn type_html(schema: &Value) -> String {
    let Some(object) = schema.as_object() else {
        return "any".to_owned();
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!(
            "<a href=\"#schema-{}\">{}</a>",
            anchor_part(name),
            escape(name)
        );
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(variants) = object.get(key).and_then(Value::as_array) {
            let joiner = if key == "allOf" { " and " } else { " or " };
            return variants
                .iter()
                .map(type_html)
                .collect::<Vec<_>>()
                .join(joiner);
        }
    }
    let base = base_type(object);
    let constraints = constraints(object);
    if constraints.is_empty() {
        base
    } else {
        format!(
            "{base} <span class=\"muted\">({})</span>",
            constraints.join(", ")
        )
    }
}

fn base_type(object: &Map<String, Value>) -> String {
    let names: Vec<&str> = match object.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        return "any".to_owned();
    }
    names
        .iter()
        .map(|name| match *name {
            "array" => format!(
                "array of {}",
                type_html(object.get("items").unwrap_or(&Value::Null))
            ),
            other => match object.get("format").and_then(Value::as_str) {
                Some(format) if other != "null" => {
                    format!("{} ({})", escape(other), escape(format))
                }
                _ => escape(other),
            },
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn constraints(object: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, label) in [
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "min"),
        ("maximum", "max"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if let Some(value) = object.get(key) {
            out.push(format!("{label} {}", escape(&value.to_string())));
        }
    }
    if let Some(pattern) = object.get("pattern").and_then(Value::as_str) {
        out.push(format!("pattern <code>{}</code>", escape(pattern)));
    }
    if let Some(values) = object.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect();
        out.push(format!("one of {}", values.join(", ")));
    }
    out
}

/// Paragraphs (blank-line separated) of escaped text with `code` spans.
fn prose(text: &str) -> String {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", inline(&p.replace('\n', " "))))
        .collect()
}

/// Escaped text in which Markdown's `code` spans become `<code>`.
fn inline(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    // An odd number of backticks leaves the last span unclosed: keep the
    // backtick then, rather than swallowing the rest of the text.
    let closed = parts.len() % 2 == 1;
    let mut html = String::with_capacity(text.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if i % 2 == 1 && (closed || !last) {
            let _ = write!(html, "<code>{}</code>", escape(part));
        } else if i % 2 == 1 {
            let _ = write!(html, "`{}", escape(part));
        } else {
            html.push_str(&escape(part));
        }
    }
    html
}

/// Escapes text for HTML content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn op_anchor(method: &str, path: &str) -> String {
    format!("op-{method}-{}", anchor_part(path))
}

/// Letters, digits and `-` only: safe in an `id` and a `#fragment`.
fn anchor_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::document_for;
    use serde_json::json;

    #[test]
    fn every_operation_and_schema_of_the_document_is_listed() {
        let doc = serde_json::to_value(document_for("")).expect("serializes");
        let html = render(&doc);
        assert!(html.starts_with("<!DOCTYPE html>"));
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if item[method].is_object() {
                    let anchor = format!("id=\"{}\"", op_anchor(method, path));
                    assert!(html.contains(&anchor), "{method} {path}");
                    assert!(html.contains(&format!("<code>{}</code>", escape(path))));
                }
            }
        }
        for name in doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .keys()
        {
            assert!(html.contains(&format!("id=\"schema-{name}\"")), "{name}");
        }
        assert!(!html.contains("<script"), "no script at all");
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn text_from_the_document_is_escaped() {
        let doc = json!({
            "info": {"title": "<script>alert(1)</script>", "description": "a `<b>` & \"q\""},
            "paths": {"/x/{id}": {"get": {
                "summary": "<img src=x onerror=alert(1)>",
                "tags": ["t\"><script>"],
                "parameters": [{"name": "<p>", "in": "query", "schema": {"type": "string", "pattern": "^<a>$"}}],
                "responses": {"200": {"description": "ok `x`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A\"B"}}}}}
            }}}
        });
        let html = render(&doc);
        assert!(!html.contains("<script>") && !html.contains("<img"));
        assert!(html.contains("<code>&lt;p&gt;</code>") && html.contains("^&lt;a&gt;$"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("a <code>&lt;b&gt;</code> &amp; &quot;q&quot;"));
        assert!(html.contains("href=\"#schema-A-B\""));
        assert!(html.contains("ok <code>x</code>"));
    }

    #[test]
    fn an_unclosed_backtick_is_kept() {
        assert_eq!(inline("a `b` c `d"), "a <code>b</code> c `d");
        assert_eq!(anchor_part("/api/users/{userId}"), "api-users-userId");
    }
}
