//! Reading YAML text into values as sigs.k8s.io/yaml does for Helm: go-yaml v2 builds Go values (YAML 1.1
//! scalars, anchors, aliases, `<<` merges, later duplicate keys winning), then a JSON round trip turns every
//! number into a float64 and every map key into a string.

use std::collections::HashMap;

use gotmpl::Value;
use gotmpl::value::Entries;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use super::YamlError;
use super::resolve::{Scalar, resolve_plain};

/// A node as go-yaml v2 decodes it into `interface{}`, before the JSON round trip.
#[derive(Clone, Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    /// Entries in insertion order with Go-typed keys, later duplicates replacing earlier ones.
    Map(Vec<(Node, Node)>),
}

/// Reads the documents of `text` (only the first with `first_only`, as go-yaml v2's `Unmarshal` does,
/// which never looks at what follows it); empty documents are `Nil`.
pub(crate) fn documents(text: &str, first_only: bool) -> Result<Vec<Value>, YamlError> {
    let mut loader = Loader {
        parser: Parser::new_from_str(text),
        text,
        anchors: HashMap::new(),
    };
    let mut docs = Vec::new();
    loop {
        let (event, mark) = loader.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                let (event, mark) = loader.next()?;
                if event == Event::DocumentEnd {
                    docs.push(Value::Nil);
                    if first_only {
                        break;
                    }
                    continue;
                }
                let node = loader.node(event, mark)?;
                docs.push(to_json_value(&node)?);
                if first_only {
                    break;
                }
            }
            other => {
                // A stream without explicit document markers still starts documents; be lenient.
                let node = loader.node(other, mark)?;
                docs.push(to_json_value(&node)?);
                if first_only {
                    break;
                }
            }
        }
    }
    Ok(docs)
}

struct Loader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    text: &'a str,
    anchors: HashMap<usize, Node>,
}

/// A parser error worded and located as go-yaml reports it: the problem without yaml-rust2's context,
/// scanner errors on their 1-based line, parser errors on the 0-based line go-yaml prints (its stream end
/// sits on the line after the last).
fn scan_error(err: ScanError, text: &str) -> YamlError {
    let info = err.info();
    let line = err.marker().line();
    if info == "while parsing node, found unknown anchor" {
        let name: String = text
            .chars()
            .skip(err.marker().index() + 1)
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
            .collect();
        return YamlError::syntax(None, &format!("unknown anchor '{name}' referenced"));
    }
    if let Some((_, problem)) = info
        .strip_prefix("while parsing a ")
        .and_then(|rest| rest.split_once(", "))
    {
        let problem = if problem.starts_with("expected") {
            format!("did not find {problem}")
        } else {
            problem.to_string()
        };
        let line = line.saturating_sub(1);
        return YamlError::syntax((line > 0).then_some(line), &problem);
    }
    let problem = match info.strip_prefix("while ") {
        Some(rest) => rest.split_once(", ").map_or(info, |(_, problem)| problem),
        None => info,
    };
    // libyaml's words for yaml-rust2's.
    let problem = if problem.starts_with("unexpected character: ") {
        "found character that cannot start any token"
    } else if problem == "simple key expected" {
        "could not find expected ':'"
    } else {
        problem
    };
    // go-yaml names no line for a problem on the first line (its line counter is still zero there).
    let line = (line > 1).then_some(line);
    if problem.contains("tab") {
        // yaml-rust2 words tab errors its own way and may place them on the scalar before the tab.
        let tab_line = text
            .char_indices()
            .skip(err.marker().index())
            .find(|(_, c)| *c == '\t')
            .map(|(at, _)| text[..at].matches('\n').count() + 1);
        let message = "found a tab character that violates indentation";
        return YamlError::syntax(tab_line.or(line).filter(|&l| l > 1), message);
    }
    YamlError::syntax(line, problem)
}

impl Loader<'_> {
    fn next(&mut self) -> Result<(Event, Marker), YamlError> {
        self.parser
            .next_token()
            .map_err(|e| scan_error(e, self.text))
    }

    fn node(&mut self, event: Event, mark: Marker) -> Result<Node, YamlError> {
        match event {
            Event::Alias(id) => self
                .anchors
                .get(&id)
                .cloned()
                .ok_or_else(|| YamlError::syntax(None, "unknown anchor referenced")),
            Event::Scalar(text, style, anchor, tag) => {
                let node = scalar(text, style, tag.as_ref(), mark)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, mark)?);
                }
                let node = Node::List(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let is_merge = matches!(&event, Event::Scalar(k, TScalarStyle::Plain, _, None) if k == "<<");
                    let key = self.node(event, mark)?;
                    let (event, mark) = self.next()?;
                    let value = self.node(event, mark)?;
                    if is_merge {
                        merge_into(&mut entries, value, mark)?;
                    } else {
                        set_entry(&mut entries, key, value);
                    }
                }
                let node = Node::Map(entries);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            other => Err(YamlError::syntax(
                Some(mark.line()),
                &format!("unexpected {other:?}"),
            )),
        }
    }
}

fn set_entry(entries: &mut Vec<(Node, Node)>, key: Node, value: Node) {
    if let Some(slot) = entries.iter_mut().find(|(k, _)| same_key(k, &key)) {
        slot.1 = value;
    } else {
        entries.push((key, value));
    }
}

/// Go map key equality for the key types go-yaml produces.
fn same_key(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Null, Node::Null) => true,
        (Node::Bool(x), Node::Bool(y)) => x == y,
        (Node::Int(x), Node::Int(y)) => x == y,
        (Node::Uint(x), Node::Uint(y)) => x == y,
        (Node::Float(x), Node::Float(y)) => x == y,
        (Node::Str(x), Node::Str(y)) => x == y,
        _ => false,
    }
}

/// go-yaml v2's `<<`: a map, or a list of maps where earlier maps win; merged keys replace keys set
/// before the merge, keys after it replace merged ones.
fn merge_into(entries: &mut Vec<(Node, Node)>, value: Node, mark: Marker) -> Result<(), YamlError> {
    let want_map = || {
        YamlError::syntax(
            Some(mark.line()),
            "map merge requires map or sequence of maps as the value",
        )
    };
    match value {
        Node::Map(source) => {
            for (k, v) in source {
                set_entry(entries, k, v);
            }
        }
        Node::List(items) => {
            for item in items.into_iter().rev() {
                let Node::Map(source) = item else {
                    return Err(want_map());
                };
                for (k, v) in source {
                    set_entry(entries, k, v);
                }
            }
        }
        _ => return Err(want_map()),
    }
    Ok(())
}

fn scalar(
    text: String,
    style: TScalarStyle,
    tag: Option<&Tag>,
    mark: Marker,
) -> Result<Node, YamlError> {
    if let Some(tag) = tag {
        let suffix = tag.suffix.as_str();
        let standard = tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:";
        if standard {
            return match suffix {
                "str" => Ok(Node::Str(text)),
                "binary" => {
                    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                    let bytes = base64_decode(&compact).ok_or_else(|| {
                        YamlError::syntax(
                            Some(mark.line()),
                            "!!binary value contains invalid base64 data",
                        )
                    })?;
                    Ok(Node::Str(String::from_utf8_lossy(&bytes).into_owned()))
                }
                "float" => Ok(match resolved(&text) {
                    Node::Int(i) => Node::Float(i as f64),
                    other => other,
                }),
                _ => Ok(resolved(&text)),
            };
        }
        // Unknown tags: go-yaml keeps the text.
        return Ok(Node::Str(text));
    }
    if style != TScalarStyle::Plain {
        return Ok(Node::Str(text));
    }
    Ok(resolved(&text))
}

fn resolved(text: &str) -> Node {
    match resolve_plain(text) {
        Scalar::Null => Node::Null,
        Scalar::Bool(b) => Node::Bool(b),
        Scalar::Int(i) => Node::Int(i),
        Scalar::Uint(u) => Node::Uint(u),
        Scalar::Float(f) => Node::Float(f),
        Scalar::Str | Scalar::Merge => Node::Str(text.to_string()),
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// sigs.k8s.io/yaml's conversion of a map key to a JSON key.
fn key_string(key: &Node, value: &Node) -> Result<String, YamlError> {
    Ok(match key {
        Node::Str(s) => s.clone(),
        Node::Int(i) => i.to_string(),
        Node::Bool(b) => b.to_string(),
        Node::Float(f) => float32_key(*f),
        Node::Null => {
            return Err(YamlError::conversion(format!(
                "unsupported map key of type: %!s(<nil>), key: <nil>, value: {}",
                go_sharp_v(value)
            )));
        }
        Node::Uint(_) => {
            return Err(YamlError::conversion(format!(
                "unsupported map key of type: uint64, key: {}, value: {}",
                go_sharp_v(key),
                go_sharp_v(value)
            )));
        }
        Node::List(_) | Node::Map(_) => {
            return Err(YamlError::syntax(
                None,
                &format!("invalid map key: {}", go_sharp_v(key)),
            ));
        }
    })
}

/// `strconv.FormatFloat(f, 'g', -1, 32)` with go-yaml's names for infinities and NaN.
fn float32_key(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    let x = f as f32;
    let s = format!("{x:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if x != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{x}")
}

/// A rough Go `%#v` of a decoded node, for error messages.
fn go_sharp_v(node: &Node) -> String {
    match node {
        Node::Null => "<nil>".to_string(),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Uint(u) => format!("0x{u:x}"),
        Node::Float(f) => gotmpl::value::go_float(*f),
        Node::Str(s) => gotmpl::value::go_quote(s),
        Node::List(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Node::Map(entries) => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_sharp_v(k), go_sharp_v(v)))
                .collect();
            format!("map[interface {{}}]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

/// The JSON round trip: numbers become float64 (NaN and infinities are an error, as `json.Marshal`
/// reports), keys become strings.
fn to_json_value(node: &Node) -> Result<Value, YamlError> {
    Ok(match node {
        Node::Null => Value::Nil,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::Float(*i as f64),
        Node::Uint(u) => Value::Float(*u as f64),
        Node::Float(f) => {
            if !f.is_finite() {
                return Err(YamlError::conversion(format!(
                    "json: unsupported value: {}",
                    gotmpl::value::go_float(*f)
                )));
            }
            Value::Float(*f)
        }
        Node::Str(s) => Value::from(s.as_str()),
        Node::List(items) => Value::from(
            items
                .iter()
                .map(to_json_value)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Node::Map(entries) => {
            let mut out = Entries::new();
            for (k, v) in entries {
                out.insert(key_string(k, v)?, to_json_value(v)?);
            }
            Value::from(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_keys_print_with_float32_precision() {
        assert_eq!(float32_key(1.5), "1.5");
        assert_eq!(float32_key(0.1), "0.1");
        assert_eq!(float32_key(1e21), "1e+21");
        assert_eq!(float32_key(123456789.0), "1.2345679e+08");
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    }
}
