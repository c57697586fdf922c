//! YAML documents as small trees that remember where each value came from (file and line), and the walk
//! that finds image references in them: strings under an `image` key, maps that split an image into
//! `registry`/`repository`/`tag`/`digest` fields, and `RELATED_IMAGE_*` environment values.
//!
//! Scalars stay text exactly as written (`tag: 1.10` is `1.10`, not a float). Aliases are expanded within a
//! budget and nesting is bounded, so a hostile file costs bounded memory and stack.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// Deepest nesting accepted; deeper documents are rejected (the walks below recurse).
const MAX_DEPTH: usize = 200;
/// Most nodes one file may expand to, aliases included.
const MAX_NODES: usize = 1_000_000;

/// One YAML value with its position: `origin` says which file (an index chosen by the caller) and `line`
/// is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub line: usize,
    pub origin: usize,
    pub value: Value,
    size: usize,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Scalar(String),
    Seq(Vec<Node>),
    /// Keys are kept as text; a non-scalar key becomes the empty string (no rule matches it).
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn scalar(text: &str, origin: usize, line: usize) -> Node {
        Node {
            line,
            origin,
            value: Value::Scalar(text.to_string()),
            size: 1,
        }
    }

    fn map(entries: Vec<(String, Node)>, origin: usize, line: usize) -> Node {
        let size = 1 + entries.iter().map(|(_, n)| n.size).sum::<usize>();
        Node {
            line,
            origin,
            value: Value::Map(entries),
            size,
        }
    }

    /// The value under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, n)| n),
            _ => None,
        }
    }

    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Helm's value merge: maps merge key by key (recursively), anything else is replaced by `over`.
    pub fn merge(&mut self, over: Node) {
        match (&mut self.value, over.value) {
            (Value::Map(base), Value::Map(entries)) => {
                for (key, value) in entries {
                    match base.iter_mut().rev().find(|(k, _)| *k == key) {
                        Some((_, existing)) => existing.merge(value),
                        None => base.push((key, value)),
                    }
                }
            }
            (_, value) => {
                self.value = value;
                self.line = over.line;
                self.origin = over.origin;
            }
        }
    }

    /// Sets `path` (`a.b.c`) to `value`, creating maps on the way (what `helm --set a.b.c=v` does).
    pub fn set_path(&mut self, path: &[&str], value: Node) {
        let mut tree = value;
        for key in path.iter().rev() {
            let (origin, line) = (tree.origin, tree.line);
            tree = Node::map(vec![(key.to_string(), tree)], origin, line);
        }
        self.merge(tree);
    }
}

/// Why a file is not readable as YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// 1-based line of the problem.
    pub line: usize,
    pub message: String,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        line: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(String, Node)>,
        key: Option<String>,
        line: usize,
        anchor: usize,
    },
}

/// Parses every document of `text`; each node gets `origin`. Empty documents are skipped.
pub(crate) fn load_documents(text: &str, origin: usize) -> Result<Vec<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut budget = MAX_NODES;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError {
            line: e.marker().line(),
            message: e.info().to_string(),
        })?;
        let line = mark.line();
        let (node, anchor) = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart => continue,
            Event::DocumentEnd => {
                anchors.clear();
                continue;
            }
            Event::Alias(id) => {
                let node = anchors
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| Node::scalar("", origin, line));
                (node, 0)
            }
            Event::Scalar(text, _, anchor, _) => (Node::scalar(&text, origin, line), anchor),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        line,
                        message: format!("nested deeper than {MAX_DEPTH} levels"),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        line,
                        anchor,
                    }
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        line,
                        anchor,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    line,
                    anchor,
                }) => {
                    let size = 1 + items.iter().map(|n| n.size).sum::<usize>();
                    let node = Node {
                        line,
                        origin,
                        value: Value::Seq(items),
                        size,
                    };
                    (node, anchor)
                }
                Some(Frame::Map {
                    entries,
                    line,
                    anchor,
                    ..
                }) => (Node::map(entries, origin, line), anchor),
                None => continue,
            },
        };
        budget = budget.checked_sub(node.size).ok_or_else(|| YamlError {
            line,
            message: format!("expands to more than {MAX_NODES} values (aliases)"),
        })?;
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => {
                if !matches!(&node.value, Value::Scalar(s) if s.is_empty()) {
                    docs.push(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node.as_str().unwrap_or_default().to_string()),
            },
        }
    }
    Ok(docs)
}

/// One image-looking value found in a tree, before it is checked as a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The reference text (for split maps, the joined fields).
    pub text: String,
    /// Where it came from (for split maps, the field set last: the most specific override).
    pub origin: usize,
    pub line: usize,
    /// The key path, like `spec.containers[0].image`.
    pub path: String,
}

/// How a tree is walked.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScanOptions<'a> {
    /// Tag for a split map with no (or an empty) `tag` and no digest: a chart's `appVersion`, as most
    /// charts' templates default it.
    pub default_tag: Option<&'a str>,
    /// Top-level keys not to walk (a chart's subcharts, which are scanned with their own values).
    pub skip_top_level: &'a [String],
    /// Precedence of each origin when a split map's fields come from several files (higher wins, then the
    /// later line); an origin without an entry ranks as its index.
    pub ranks: &'a [usize],
}

impl ScanOptions<'_> {
    fn rank(&self, origin: usize) -> usize {
        self.ranks.get(origin).copied().unwrap_or(origin)
    }
}

/// Every image candidate in `node`, in document order.
pub(crate) fn scan(node: &Node, opts: &ScanOptions<'_>) -> Vec<Candidate> {
    let mut out = Vec::new();
    walk(node, "", opts, true, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn non_empty<'n>(map: &'n Node, key: &str) -> Option<&'n Node> {
    map.get(key)
        .filter(|n| n.as_str().is_some_and(|s| !s.trim().is_empty()))
}

fn text_of(n: Option<&Node>) -> &str {
    n.and_then(Node::as_str).map(str::trim).unwrap_or_default()
}

/// A map splitting an image into fields: `repository` with at least one of `registry`/`tag`/`digest` (or any
/// `repository` when the map is the value of an `image` key), or `registry` with an `image` string (the
/// ingress-nginx shape). Returns the candidate and the keys it consumed.
fn split_image(map: &Node, under_image_key: bool, opts: &ScanOptions<'_>) -> Option<Candidate> {
    let registry = non_empty(map, "registry");
    let tag = map.get("tag").filter(|n| n.as_str().is_some());
    let digest = non_empty(map, "digest");
    let repository = match non_empty(map, "repository") {
        Some(r) if under_image_key || registry.is_some() || tag.is_some() || digest.is_some() => r,
        Some(_) => return None,
        None => match (registry, non_empty(map, "image")) {
            (Some(_), Some(image)) => image,
            _ => return None,
        },
    };
    let mut text = String::new();
    let registry_text = text_of(registry).trim_end_matches('/');
    if !registry_text.is_empty() {
        text.push_str(registry_text);
        text.push('/');
    }
    text.push_str(text_of(Some(repository)));
    let mut tag_text = text_of(tag);
    if tag_text.is_empty() && digest.is_none() {
        tag_text = opts.default_tag.unwrap_or_default();
    }
    if !tag_text.is_empty() {
        text.push(':');
        text.push_str(tag_text);
    }
    let digest_text = text_of(digest);
    if !digest_text.is_empty() {
        text.push('@');
        text.push_str(digest_text);
    }
    let last = [registry, Some(repository), tag, digest]
        .into_iter()
        .flatten()
        .max_by_key(|n| (opts.rank(n.origin), n.line))
        .unwrap_or(repository);
    Some(Candidate {
        text,
        origin: last.origin,
        line: last.line,
        path: String::new(),
    })
}

const SPLIT_FIELDS: [&str; 5] = ["registry", "repository", "tag", "digest", "image"];

fn walk(node: &Node, path: &str, opts: &ScanOptions<'_>, top: bool, out: &mut Vec<Candidate>) {
    match &node.value {
        Value::Scalar(_) => {}
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), opts, false, out);
            }
        }
        Value::Map(entries) => {
            let under_image_key = path == "image" || path.ends_with(".image");
            let split = split_image(node, under_image_key, opts);
            let consumed = split.is_some();
            if let Some(mut c) = split {
                c.path = path.to_string();
                out.push(c);
            }
            if let (Some(name), Some(value)) = (node.get("name"), node.get("value"))
                && let (Some(name), Some(text)) = (name.as_str(), value.as_str())
                && name.starts_with("RELATED_IMAGE_")
                && !text.trim().is_empty()
            {
                out.push(Candidate {
                    text: text.trim().to_string(),
                    origin: value.origin,
                    line: value.line,
                    path: format!("{path}({name})"),
                });
            }
            for (key, value) in entries {
                if consumed && SPLIT_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                if top && opts.skip_top_level.contains(key) {
                    continue;
                }
                let child = join(path, key);
                match (&value.value, key.as_str()) {
                    (Value::Scalar(text), "image") => {
                        if !text.trim().is_empty() {
                            out.push(Candidate {
                                text: text.trim().to_string(),
                                origin: value.origin,
                                line: value.line,
                                path: child,
                            });
                        }
                    }
                    _ => walk(value, &child, opts, false, out),
                }
            }
        }
    }
}

/// What a line-based scan of text that is not YAML (a template) found on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineImage {
    /// A literal value.
    Literal(String),
    /// A value with template syntax (`{{`): not an image until rendered.
    Template(String),
}

/// Every `image: value` line of `text` (also `- image: value`), with its 1-based line number. Values are
/// unquoted and trailing ` #` comments dropped; empty values (a map follows) are skipped.
pub(crate) fn image_lines(text: &str) -> Vec<(usize, LineImage)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let body = body.strip_prefix("- ").map_or(body, str::trim_start);
        let Some(rest) = body.strip_prefix("image:") else {
            continue;
        };
        let mut value = rest.trim();
        if let Some(pos) = value.find(" #") {
            value = value[..pos].trim_end();
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .trim();
        if value.is_empty() {
            continue;
        }
        let found = if value.contains("{{") {
            LineImage::Template(value.to_string())
        } else {
            LineImage::Literal(value.to_string())
        };
        out.push((i + 1, found));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(yaml: &str) -> Vec<(String, usize, String)> {
        let docs = load_documents(yaml, 0).unwrap();
        docs.iter()
            .flat_map(|d| scan(d, &ScanOptions::default()))
            .map(|c| (c.text, c.line, c.path))
            .collect()
    }

    #[test]
    fn image_keys_at_any_depth_are_found_with_their_lines() {
        let yaml = "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx:1.25\n  initContainers:\n  - image: \"busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n---\nkind: Other\nimage: x\n";
        assert_eq!(
            texts(yaml),
            vec![
                ("nginx:1.25".into(), 5, "spec.containers[0].image".into()),
                (
                    "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
                    7,
                    "spec.initContainers[0].image".into()
                ),
                ("x".into(), 10, "image".into()),
            ]
        );
    }

    #[test]
    fn split_fields_are_joined_and_numeric_tags_keep_their_text() {
        let yaml = "image:\n  registry: quay.io/\n  repository: org/app\n  tag: 1.10\nother:\n  repository: a/b\n  digest: sha256:1111111111111111111111111111111111111111111111111111111111111111\nchart:\n  repository: https://charts.example.com\n";
        assert_eq!(
            texts(yaml),
            vec![
                ("quay.io/org/app:1.10".into(), 4, "image".into()),
                (
                    "a/b@sha256:1111111111111111111111111111111111111111111111111111111111111111"
                        .into(),
                    7,
                    "other".into()
                ),
            ]
        );
    }

    #[test]
    fn ingress_nginx_shape_uses_registry_and_image_fields() {
        let yaml = "controller:\n  image:\n    registry: registry.k8s.io\n    image: ingress-nginx/controller\n    tag: v1.8.1\n";
        assert_eq!(
            texts(yaml),
            vec![(
                "registry.k8s.io/ingress-nginx/controller:v1.8.1".into(),
                5,
                "controller.image".into()
            )]
        );
    }

    #[test]
    fn related_image_env_values_are_images_and_other_env_is_not() {
        let yaml =
            "env:\n- name: RELATED_IMAGE_DB\n  value: postgres:16\n- name: LOG\n  value: debug\n";
        assert_eq!(
            texts(yaml),
            vec![("postgres:16".into(), 3, "env[0](RELATED_IMAGE_DB)".into())]
        );
    }

    #[test]
    fn aliases_are_followed_and_empty_images_skipped() {
        let yaml = "defaults: &img nginx:1\na:\n  image: *img\nb:\n  image: \"\"\n";
        assert_eq!(texts(yaml), vec![("nginx:1".into(), 1, "a.image".into())]);
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_errors_not_crashes() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!(
                "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(
            load_documents(&bomb, 0)
                .unwrap_err()
                .message
                .contains("aliases")
        );
        let deep = "[".repeat(1000);
        assert!(load_documents(&deep, 0).is_err());
    }

    #[test]
    fn merge_overrides_leaves_and_keeps_the_override_position() {
        let mut base = load_documents("image:\n  repository: a\n  tag: v1\n", 0)
            .unwrap()
            .remove(0);
        let over = load_documents("image:\n  tag: v2\n", 1).unwrap().remove(0);
        base.merge(over);
        base.set_path(&["image", "registry"], Node::scalar("r.io", 2, 0));
        let found = scan(&base, &ScanOptions::default());
        assert_eq!(found[0].text, "r.io/a:v2");
        assert_eq!((found[0].origin, found[0].line), (2, 0));
    }

    #[test]
    fn image_lines_read_literal_and_template_values() {
        let text =
            "  - image: \"nginx:1\" # web\n    image: {{ .Values.x }}\n  image:\n foo: image: no\n";
        assert_eq!(
            image_lines(text),
            vec![
                (1, LineImage::Literal("nginx:1".into())),
                (2, LineImage::Template("{{ .Values.x }}".into())),
            ]
        );
    }
}
