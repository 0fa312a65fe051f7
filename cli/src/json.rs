//! The little JSON that `--json` prints: one object on one line, of
//! numbers, booleans, strings, lists of strings and lists of objects.
//! Strings are escaped as JSON requires (quotes, backslashes, control
//! characters); keys and values of the database are given already escaped
//! as the tool prints them (`\xNN`), so they stay text.

use std::fmt::Write;

/// A JSON object being written.
pub struct Object {
    text: String,
}

impl Object {
    pub fn new() -> Object {
        Object {
            text: String::from("{"),
        }
    }

    fn field(mut self, name: &str, value: &str) -> Object {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        push_string(&mut self.text, name);
        self.text.push(':');
        self.text.push_str(value);
        self
    }

    pub fn num(self, name: &str, value: u64) -> Object {
        self.field(name, &value.to_string())
    }

    /// A number, or `null` for `None`.
    pub fn opt_num(self, name: &str, value: Option<u64>) -> Object {
        let text = value.map_or_else(|| "null".to_string(), |v| v.to_string());
        self.field(name, &text)
    }

    pub fn bool(self, name: &str, value: bool) -> Object {
        self.field(name, if value { "true" } else { "false" })
    }

    pub fn str(self, name: &str, value: &str) -> Object {
        let mut text = String::new();
        push_string(&mut text, value);
        self.field(name, &text)
    }

    /// A string, or `null` for `None`.
    pub fn opt_str(self, name: &str, value: Option<&str>) -> Object {
        match value {
            Some(value) => self.str(name, value),
            None => self.field(name, "null"),
        }
    }

    pub fn strings(self, name: &str, values: &[String]) -> Object {
        let mut text = String::from("[");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            push_string(&mut text, value);
        }
        text.push(']');
        self.field(name, &text)
    }

    pub fn objects(self, name: &str, values: Vec<Object>) -> Object {
        let items: Vec<String> = values.into_iter().map(Object::finish).collect();
        self.field(name, &format!("[{}]", items.join(",")))
    }

    /// The object's text, without a newline.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Appends `s` as a JSON string.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_nest_and_strings_are_escaped() {
        let inner = Object::new().str("reason", "a \"bad\"\\ one\n\x01");
        let text = Object::new()
            .num("n", 3)
            .opt_num("none", None)
            .bool("ok", false)
            .strings("names", &["a".to_string(), "b".to_string()])
            .objects("list", vec![inner])
            .finish();
        assert_eq!(
            text,
            r#"{"n":3,"none":null,"ok":false,"names":["a","b"],"list":[{"reason":"a \"bad\"\\ one\n\u0001"}]}"#
        );
    }
}
