//! GeoReport v2's XML format, written from the same JSON values the JSON format sends: an
//! object is a sequence of elements named by its keys, an array repeats the element its parent
//! names in the singular (`services` → `service`, `endpoints` → `endpoint`), `null` is an empty
//! element, text is escaped.

use serde_json::Value;
use std::fmt::Write as _;

/// The element each member of an array of `parent` is written as.
fn item_of(parent: &str) -> &'static str {
    match parent {
        "services" => "service",
        "service_requests" => "request",
        "errors" => "error",
        "endpoints" => "endpoint",
        "formats" => "format",
        "attributes" => "attribute",
        "values" => "value",
        _ => "item",
    }
}

/// A whole document: the declaration, then `root` holding `v`.
#[must_use]
pub fn document(root: &str, v: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    element(&mut out, root, v);
    out.push('\n');
    out
}

fn element(out: &mut String, name: &str, v: &Value) {
    match v {
        Value::Array(items) => {
            let _ = write!(out, "<{name}>");
            for it in items {
                element(out, item_of(name), it);
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Object(members) => {
            let _ = write!(out, "<{name}>");
            for (k, m) in members {
                element(out, k, m);
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Null => {
            let _ = write!(out, "<{name}></{name}>");
        }
        Value::String(s) => {
            let _ = write!(out, "<{name}>");
            escape(out, s);
            let _ = write!(out, "</{name}>");
        }
        Value::Bool(_) | Value::Number(_) => {
            let _ = write!(out, "<{name}>{v}</{name}>");
        }
    }
}

/// Text as XML character data: the five markup characters escaped, and characters XML 1.0
/// cannot carry (controls other than tab and line breaks) left out.
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_repeat_the_singular_and_text_is_escaped() {
        let v = json!([{ "service_code": "01-01", "description": "a < b & \"c\"", "metadata": false, "lat": 40.5, "x": null }]);
        assert_eq!(
            document("services", &v),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<services><service><service_code>01-01</service_code>\
<description>a &lt; b &amp; &quot;c&quot;</description><metadata>false</metadata><lat>40.5</lat><x></x></service></services>\n"
        );
    }

    #[test]
    fn nested_lists_take_their_own_names() {
        let v = json!({ "endpoints": [{ "formats": ["text/xml", "application/json"] }] });
        let x = document("discovery", &v);
        assert!(x.contains("<endpoints><endpoint><formats><format>text/xml</format><format>application/json</format></formats></endpoint></endpoints>"), "{x}");
    }

    #[test]
    fn control_characters_are_left_out() {
        let mut s = String::new();
        escape(&mut s, "a\u{1}b\tc\u{7f}");
        assert_eq!(s, "ab\tc");
    }
}
