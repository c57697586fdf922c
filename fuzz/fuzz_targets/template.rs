#![no_main]
//! Fuzzes the Go-template renderer of `*.tmpl` files: any text, rendered with a small env, never panics and
//! either renders or reports an error with a position inside the template.

use std::collections::BTreeMap;

/// The runtime's template module itself (it needs only gotmpl, base64 and thiserror).
#[path = "../../runtime/src/template.rs"]
mod template;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values: BTreeMap<String, String> = [("A", "a,b,c"), ("B", ""), ("N", "3"), ("Y", "k: v\nl: w")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Err(e) = template::render(text, &values) {
        let lines = text.split('\n').count();
        assert!(e.line >= 1 && e.line <= lines, "line {} outside the template: {e}", e.line);
        assert!(e.column >= 1, "column 0: {e}");
    }
});
