//! YAML documents as small trees that remember where each value came from (file and line), and the walk
//! that finds image references in them: strings under an `image` key, maps that split an image into
//! `registry`/`repository`/`tag`/`digest` fields (or `baseImage` and `tag`/`sha`/`version`), env values
//! whose name contains `IMAGE`, `args`/`command` items that are fully qualified references (alone or as
//! `--flag=REF`), and pod templates held in ConfigMap data (sidecar injectors). The rules past `image` keys
//! only take strings that look like images beyond doubt (see [`qualifies`]).
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
///
/// go-yaml (what kubectl and helm use) accepts more than the YAML 1.2 spec in one place: the continuation
/// lines of a quoted scalar or a flow collection (`[..]`, `{..}`) may be indented as little as they like,
/// even with tabs. When the strict parse fails, the text is retried with those lines re-indented
/// ([`relax_indentation`]): that whitespace is folded away, so values and line numbers are unchanged.
/// A byte order mark at the start of a line is dropped ([`without_boms`]).
pub(crate) fn load_documents(text: &str, origin: usize) -> Result<Vec<Node>, YamlError> {
    let stripped = without_boms(text);
    let text = stripped.as_deref().unwrap_or(text);
    match load_strict(text, origin) {
        Ok(docs) => Ok(docs),
        Err(e) => match relax_indentation(text) {
            Some(relaxed) => load_strict(&relaxed, origin).map_err(|_| e),
            None => Err(e),
        },
    }
}

/// `text` without the byte order marks that start a line, `None` when it has none. go-yaml skips a BOM at
/// column 0 wherever it looks for the next token, so each document of a stream may start with one (files
/// concatenated with `---` keep their editors' BOMs); the parser here would make it part of the first key.
/// Line numbers are unchanged.
fn without_boms(text: &str) -> Option<String> {
    const BOM: char = '\u{feff}';
    if !text.contains(BOM) {
        return None;
    }
    let lines = text.split_inclusive('\n');
    Some(lines.map(|l| l.strip_prefix(BOM).unwrap_or(l)).collect())
}

/// The style of a quoted scalar open across lines, for [`relax_indentation`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Single,
    Double,
}

/// `text` with every continuation line of a quoted scalar or flow collection indented at least to the
/// column where that scalar or collection starts (leading tabs become spaces), and tabs after a `:` or `-`
/// indicator made spaces; `None` when nothing changes. Block scalars (`|`, `>`) and plain multi-line
/// scalars are copied as they are. The line count and, but for those tabs, each line's content after its
/// indentation are kept.
fn relax_indentation(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut changed = false;
    // Open quoted scalar (style, start column) and open flow collections (depth, outermost start column).
    let mut quote: Option<(Quote, usize)> = None;
    let mut flow: (usize, usize) = (0, 0);
    // Content lines of a block scalar are more indented than this; plain continuation lines likewise.
    let mut block_scalar: Option<usize> = None;
    let mut plain: Option<usize> = None;
    for raw in text.split_inclusive('\n') {
        let line: Vec<char> = raw.chars().collect();
        let indent = line.iter().take_while(|c| **c == ' ').count();
        let blank = line.iter().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        let open = quote.is_some() || flow.0 > 0;
        let document_marker = (raw.starts_with("---") || raw.starts_with("..."))
            && line.get(3).is_none_or(|c| c.is_whitespace());
        if !open && document_marker {
            block_scalar = None;
            plain = None;
            out.push_str(raw);
            continue;
        }
        if !open {
            if let Some(parent) = block_scalar {
                if blank || indent > parent {
                    out.push_str(raw);
                    continue;
                }
                block_scalar = None;
            }
            if let Some(parent) = plain {
                let comment = line.get(indent) == Some(&'#');
                if blank || (indent > parent && !comment) {
                    out.push_str(raw);
                    continue;
                }
                plain = None;
            }
        }
        let mut chars = line.clone();
        let mut start = indent;
        if open {
            let lead = line.iter().take_while(|c| matches!(c, ' ' | '\t')).count();
            let target = match quote {
                Some((_, col)) if flow.0 == 0 => col,
                _ => flow.1,
            };
            if !blank && !document_marker && (lead < target || line[..lead].contains(&'\t')) {
                let width = target.max(lead);
                chars.splice(..lead, std::iter::repeat_n(' ', width));
                changed = true;
                start = width;
            } else {
                start = lead;
            }
        }
        let (line_changed, ends) = relax_line(&mut chars, start, &mut quote, &mut flow);
        changed |= line_changed;
        match ends {
            LineEnd::Plain(parent) => plain = Some(parent),
            LineEnd::BlockScalar(parent) => block_scalar = Some(parent),
            LineEnd::Other => {}
        }
        out.extend(chars);
    }
    changed.then_some(out)
}

/// How a line scanned by [`relax_line`] ends.
enum LineEnd {
    /// With a plain scalar in block context, whose parent node is at this column.
    Plain(usize),
    /// With a block scalar header; the parent node is at this column.
    BlockScalar(usize),
    Other,
}

/// Scans one line from `start`, updating the open quote and flow state; returns whether a tab separator
/// was made a space, and how the line ends.
fn relax_line(
    chars: &mut [char],
    start: usize,
    quote: &mut Option<(Quote, usize)>,
    flow: &mut (usize, usize),
) -> (bool, LineEnd) {
    let mut changed = false;
    // Column of the node that owns what follows: the last block key or sequence dash on this line.
    let mut parent = start;
    let mut token_start = true;
    let mut token_col = start;
    let mut in_plain = false;
    // Whether the last token so far is a plain scalar in block context (a value that may go on).
    let mut plain_value = false;
    let mut i = start;
    let blank_at = |chars: &[char], j: usize| {
        chars
            .get(j)
            .is_none_or(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
    };
    while i < chars.len() {
        let c = chars[i];
        if let Some((style, _)) = *quote {
            match (style, c) {
                (Quote::Single, '\'') if chars.get(i + 1) == Some(&'\'') => i += 1,
                (Quote::Single, '\'') | (Quote::Double, '"') => *quote = None,
                (Quote::Double, '\\') => i += 1,
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                in_plain = false;
                i += 1;
                continue;
            }
            '#' if i == 0 || matches!(chars[i - 1], ' ' | '\t') => {
                return (changed, LineEnd::Other);
            }
            _ => {}
        }
        if in_plain {
            if c == ':' && blank_at(chars, i + 1) {
                if chars.get(i + 1) == Some(&'\t') {
                    chars[i + 1] = ' ';
                    changed = true;
                }
                if flow.0 == 0 {
                    parent = token_col;
                }
                in_plain = false;
                plain_value = false;
                token_start = true;
            } else if flow.0 > 0 && matches!(c, ',' | '[' | ']' | '{' | '}') {
                in_plain = false;
                continue;
            }
            i += 1;
            continue;
        }
        if token_start {
            token_col = i;
            match c {
                '-' | '?' if flow.0 == 0 && blank_at(chars, i + 1) => {
                    if chars.get(i + 1) == Some(&'\t') {
                        chars[i + 1] = ' ';
                        changed = true;
                    }
                    parent = i;
                    i += 1;
                    continue;
                }
                '\'' | '"' => {
                    plain_value = false;
                    *quote = Some((
                        if c == '"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        },
                        i,
                    ));
                    token_start = false;
                    i += 1;
                    continue;
                }
                '|' | '>' if flow.0 == 0 => return (changed, LineEnd::BlockScalar(parent)),
                '&' | '!' | '*' => {
                    plain_value = false;
                    while i < chars.len()
                        && !blank_at(chars, i)
                        && !matches!(chars[i], ',' | '[' | ']' | '{' | '}')
                    {
                        i += 1;
                    }
                    continue;
                }
                _ => {}
            }
        }
        match c {
            '[' | '{' if token_start || flow.0 > 0 => {
                plain_value = false;
                if flow.0 == 0 {
                    flow.1 = i;
                }
                flow.0 += 1;
                token_start = true;
            }
            ']' | '}' if flow.0 > 0 => {
                flow.0 -= 1;
                token_start = false;
            }
            ',' if flow.0 > 0 => token_start = true,
            ':' if blank_at(chars, i + 1) || flow.0 > 0 => {
                if chars.get(i + 1) == Some(&'\t') {
                    chars[i + 1] = ' ';
                    changed = true;
                }
                if flow.0 == 0 {
                    parent = token_col;
                }
                plain_value = false;
                token_start = true;
            }
            _ => {
                plain_value = flow.0 == 0;
                in_plain = true;
                token_start = false;
            }
        }
        i += 1;
    }
    let ends = if plain_value && quote.is_none() && flow.0 == 0 {
        LineEnd::Plain(parent)
    } else {
        LineEnd::Other
    };
    (changed, ends)
}

/// A merge key (`<<: *base` or `<<: [*a, *b]`): the merged maps' entries go before the map's own, so its
/// own keys win (lookups take the last entry), and an earlier map in the list wins over a later one.
fn merge_key(entries: &mut Vec<(String, Node)>, value: Node) {
    let maps = match value.value {
        Value::Map(_) => vec![value],
        Value::Seq(items) => items,
        Value::Scalar(_) => {
            entries.push(("<<".to_string(), value));
            return;
        }
    };
    let merged: Vec<(String, Node)> = maps
        .into_iter()
        .rev()
        .filter_map(|m| match m.value {
            Value::Map(e) => Some(e),
            _ => None,
        })
        .flatten()
        .collect();
    entries.splice(0..0, merged);
}

fn load_strict(text: &str, origin: usize) -> Result<Vec<Node>, YamlError> {
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
                Some(k) if k == "<<" => merge_key(entries, node),
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

/// How sure a rule must be before a string is an image (see [`qualifies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A valid reference, whatever it looks like (`image` keys of an embedded pod template).
    Valid,
    /// A valid reference with a registry host or an explicit tag or digest (env values, CR fields).
    HostOrPin,
    /// A valid reference with a registry host and a tag or digest (`args`/`command` items).
    HostAndPin,
}

/// Whether `text` is an image by the rule `need`: it parses as a reference, and has what `need` asks of
/// a registry host (a first component with a `.` or `:`, or `localhost`, before a `/`) and of an explicit
/// tag or digest. Plain words (`Always`, `debug`, `v1.2`) never qualify but with [`Need::Valid`].
fn qualifies(text: &str, need: Need) -> bool {
    if text.is_empty() || formats::reference::Reference::parse(text).is_err() {
        return false;
    }
    let host = text
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
    let after_slash = &text[text.rfind('/').map_or(0, |i| i + 1)..];
    let pinned = text.contains('@') || after_slash.contains(':');
    match need {
        Need::Valid => true,
        Need::HostOrPin => host || pinned,
        Need::HostAndPin => host && pinned,
    }
}

/// The image of one `args`/`command` item: the item itself, or the value of `--flag=VALUE`, when it has a
/// registry host and a tag or digest.
fn arg_image(item: &str) -> Option<&str> {
    let item = item.trim();
    let text = match item.split_once('=') {
        Some((flag, value)) if flag.starts_with('-') => value.trim_matches(['"', '\'']),
        _ => item,
    };
    qualifies(text, Need::HostAndPin).then_some(text)
}

/// `path` of a list item (`env[3]`) with the index replaced by `name` (`env[CSI_IMAGE]`).
fn named_item(path: &str, name: &str) -> String {
    match path.rfind('[') {
        Some(open) if path.ends_with(']') => format!("{}[{name}]", &path[..open]),
        _ => format!("{path}[{name}]"),
    }
}

/// An env entry `{name: N, value: V}`: `V` when `N` is `RELATED_IMAGE_*` (always taken, a bad value is a
/// warning), or contains `IMAGE` and `V` has a registry host or a tag or digest.
fn env_image(map: &Node, path: &str) -> Option<Candidate> {
    let name = map.get("name")?.as_str()?;
    let value = map.get("value")?;
    let text = value.as_str()?.trim();
    let related = name.starts_with("RELATED_IMAGE_");
    let named = name.to_ascii_uppercase().contains("IMAGE") && qualifies(text, Need::HostOrPin);
    (!text.is_empty() && (related || named)).then(|| Candidate {
        text: text.to_string(),
        origin: value.origin,
        line: value.line,
        path: named_item(path, name),
    })
}

/// A prometheus-operator style image split into `baseImage` and `tag`, `sha` or `version` (in the
/// operator's order of precedence), in a map without an `image` key (which would win).
fn base_image(map: &Node, path: &str) -> Option<Candidate> {
    if map.get("image").is_some() {
        return None;
    }
    let base = non_empty(map, "baseImage")?;
    let base_text = text_of(Some(base));
    let (text, field) = if let Some(tag) = non_empty(map, "tag") {
        (format!("{base_text}:{}", text_of(Some(tag))), tag)
    } else if let Some(sha) = non_empty(map, "sha") {
        let sha_text = text_of(Some(sha));
        let digest = if sha_text.contains(':') {
            sha_text.to_string()
        } else {
            format!("sha256:{sha_text}")
        };
        (format!("{base_text}@{digest}"), sha)
    } else {
        let version = non_empty(map, "version")?;
        (format!("{base_text}:{}", text_of(Some(version))), version)
    };
    qualifies(&text, Need::HostOrPin).then(|| Candidate {
        text,
        origin: field.origin,
        line: field.line,
        path: join(path, "baseImage"),
    })
}

/// The images of a ConfigMap's `data` values that are YAML (or JSON) holding a pod template: a
/// `containers` or `initContainers` list, as sidecar injectors keep them (also inside a string of such a
/// value, as in `config: {template: "..."}`, two levels deep at most). Each pod template is walked with the
/// usual rules, its `image` values kept only when they are valid references (a template's `{{ }}` is
/// dropped silently: the injector fills it, not the install); lines are the lines of the file.
fn config_map_images(doc: &Node, opts: &ScanOptions<'_>, out: &mut Vec<Candidate>) {
    if doc.get("kind").and_then(Node::as_str) != Some("ConfigMap") {
        return;
    }
    let Some(Value::Map(data)) = doc.get("data").map(|d| &d.value) else {
        return;
    };
    for (key, value) in data {
        if let Some(text) = value.as_str() {
            let at = Embedded {
                origin: value.origin,
                // The parser places a block scalar (`|`) at its first content line, like any other scalar.
                first_line: value.line,
                path: format!("data[{key}]"),
            };
            embedded_images(text, &at, opts, out, 0);
        }
    }
}

/// Where a string holding YAML sits in its file.
struct Embedded {
    origin: usize,
    /// The file line of the string's first line.
    first_line: usize,
    /// The key path of the string.
    path: String,
}

/// Deepest nesting of YAML held in strings that [`config_map_images`] reads.
const MAX_EMBEDDED: usize = 2;

fn embedded_images(
    text: &str,
    at: &Embedded,
    opts: &ScanOptions<'_>,
    out: &mut Vec<Candidate>,
    depth: usize,
) {
    if depth >= MAX_EMBEDDED || !text.contains("ontainers") {
        return;
    }
    let Ok(docs) = load_documents(text, at.origin) else {
        return;
    };
    let file_line = |line: usize| at.first_line + line.saturating_sub(1);
    for doc in &docs {
        if has_pod_template(doc, 0) {
            let mut found = Vec::new();
            walk(doc, &at.path, opts, false, &mut found);
            out.extend(
                found
                    .into_iter()
                    .filter(|c| qualifies(&c.text, Need::Valid))
                    .map(|c| Candidate {
                        line: file_line(c.line),
                        origin: at.origin,
                        ..c
                    }),
            );
        }
        let mut strings = Vec::new();
        nested_strings(doc, &at.path, &mut strings, 0);
        for (path, node) in strings {
            let text = node.as_str().unwrap_or_default();
            let inner = Embedded {
                origin: at.origin,
                first_line: file_line(node.line),
                path,
            };
            embedded_images(text, &inner, opts, out, depth + 1);
        }
    }
}

/// Every string scalar of `node` that may hold a pod template, with its key path.
fn nested_strings<'n>(node: &'n Node, path: &str, out: &mut Vec<(String, &'n Node)>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match &node.value {
        Value::Scalar(text) => {
            if text.contains("ontainers") {
                out.push((path.to_string(), node));
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                nested_strings(item, &format!("{path}[{i}]"), out, depth + 1);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                nested_strings(value, &join(path, key), out, depth + 1);
            }
        }
    }
}

/// Whether `node` holds a `containers` or `initContainers` list of maps at any depth.
fn has_pod_template(node: &Node, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match &node.value {
        Value::Scalar(_) => false,
        Value::Seq(items) => items.iter().any(|n| has_pod_template(n, depth + 1)),
        Value::Map(entries) => entries.iter().any(|(key, value)| {
            let list_of_maps = matches!(&value.value, Value::Seq(items)
                if items.iter().any(|i| matches!(i.value, Value::Map(_))));
            (matches!(key.as_str(), "containers" | "initContainers") && list_of_maps)
                || has_pod_template(value, depth + 1)
        }),
    }
}

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
            out.extend(env_image(node, path));
            out.extend(base_image(node, path));
            if top {
                config_map_images(node, opts, out);
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
                    (Value::Seq(items), "args" | "command") => {
                        for (i, item) in items.iter().enumerate() {
                            match item.as_str().map(arg_image) {
                                Some(Some(text)) => out.push(Candidate {
                                    text: text.to_string(),
                                    origin: item.origin,
                                    line: item.line,
                                    path: format!("{child}[{i}]"),
                                }),
                                Some(None) => {}
                                None => walk(item, &format!("{child}[{i}]"), opts, false, out),
                            }
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
            vec![("postgres:16".into(), 3, "env[RELATED_IMAGE_DB]".into())]
        );
    }

    #[test]
    fn env_values_named_image_are_images_when_they_look_like_one() {
        let yaml = "spec:\n  containers:\n  - name: csi\n    env:\n    - name: CSI_ATTACHER_IMAGE\n      value: registry.k8s.io/sig-storage/csi-attacher:v4.5.0\n    - name: IMAGE_PULL_POLICY\n      value: Always\n    - name: HELPER_IMAGE\n      value: busybox\n    - name: DEFAULT_IMAGE\n      value: quay.io/org/helper\n    - name: BASE_IMAGE_TAG\n      value: v1.2\n    - name: RELATED_IMAGE_DB\n      value: postgres:16\n    - name: SIDE_IMAGE\n      value: \"{{ .Values.x }}\"\n";
        assert_eq!(
            texts(yaml),
            vec![
                (
                    "registry.k8s.io/sig-storage/csi-attacher:v4.5.0".into(),
                    6,
                    "spec.containers[0].env[CSI_ATTACHER_IMAGE]".into()
                ),
                (
                    "quay.io/org/helper".into(),
                    12,
                    "spec.containers[0].env[DEFAULT_IMAGE]".into()
                ),
                (
                    "postgres:16".into(),
                    16,
                    "spec.containers[0].env[RELATED_IMAGE_DB]".into()
                ),
            ]
        );
    }

    #[test]
    fn args_and_command_items_are_images_only_when_fully_qualified() {
        let yaml = "containers:\n- image: a.io/ctl:v1\n  command:\n  - /manager\n  - quay.io/org/tool:v2\n  args:\n  - --engine-image=docker.io/org/engine:v1.6.0\n  - --acme-http01-solver-image=\"ghcr.io/org/solver@sha256:1111111111111111111111111111111111111111111111111111111111111111\"\n  - --leader-elect=true\n  - --image=nginx:1.25\n  - --registry=quay.io/org/repo\n  - --listen=localhost:8080\n  - serve:8080\n  - --url=https://example.com:443/x\n  - --prometheus-config-reloader\n  - quay.io/prometheus-operator/prometheus-config-reloader:v0.70.0\n";
        assert_eq!(
            texts(yaml),
            vec![
                ("a.io/ctl:v1".into(), 2, "containers[0].image".into()),
                ("quay.io/org/tool:v2".into(), 5, "containers[0].command[1]".into()),
                (
                    "docker.io/org/engine:v1.6.0".into(),
                    7,
                    "containers[0].args[0]".into()
                ),
                (
                    "ghcr.io/org/solver@sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
                    8,
                    "containers[0].args[1]".into()
                ),
                (
                    "quay.io/prometheus-operator/prometheus-config-reloader:v0.70.0".into(),
                    16,
                    "containers[0].args[9]".into()
                ),
            ]
        );
    }

    #[test]
    fn custom_resources_give_spec_image_and_base_image_with_version() {
        let yaml = "kind: Prometheus\nspec:\n  baseImage: quay.io/prometheus/prometheus\n  version: v2.48.0\n---\nkind: Alertmanager\nspec:\n  baseImage: quay.io/prometheus/alertmanager\n  version: v0.26.0\n  tag: v0.27.0\n---\nkind: Thanos\nspec:\n  image: quay.io/thanos/thanos:v0.34.0\n  baseImage: ignored.io/x\n  version: v1\n---\nkind: Other\nspec:\n  baseImage: quay.io/org/base\n---\nkind: Chart\nspec:\n  baseImage: ubuntu\n  version: 1.0.0\n";
        assert_eq!(
            texts(yaml),
            vec![
                (
                    "quay.io/prometheus/prometheus:v2.48.0".into(),
                    4,
                    "spec.baseImage".into()
                ),
                (
                    "quay.io/prometheus/alertmanager:v0.27.0".into(),
                    10,
                    "spec.baseImage".into()
                ),
                (
                    "quay.io/thanos/thanos:v0.34.0".into(),
                    14,
                    "spec.image".into()
                ),
                ("ubuntu:1.0.0".into(), 25, "spec.baseImage".into()),
            ]
        );
    }

    #[test]
    fn pod_templates_in_config_map_data_are_scanned_with_their_lines() {
        let yaml = "kind: ConfigMap\ndata:\n  config: |\n    policy: enabled\n    template: |\n      spec: {}\n  sidecar: |\n    initContainers:\n    - name: init\n      image: \"{{ .Values.hub }}/init:1\"\n    containers:\n    - name: proxy\n      image: docker.io/istio/proxyv2:1.20.0\n      args:\n      - --helper=quay.io/org/helper:v1\n  values: '{\"global\":{\"image\":\"x\"}}'\n  plain: 'containers: [{image: \"ghcr.io/org/one:v1\"}]'\n---\nkind: Secret\ndata:\n  t: |\n    containers:\n    - image: ghcr.io/org/no:v1\n";
        assert_eq!(
            texts(yaml),
            vec![
                (
                    "docker.io/istio/proxyv2:1.20.0".into(),
                    13,
                    "data[sidecar].containers[0].image".into()
                ),
                (
                    "quay.io/org/helper:v1".into(),
                    15,
                    "data[sidecar].containers[0].args[0]".into()
                ),
                (
                    "ghcr.io/org/one:v1".into(),
                    17,
                    "data[plain].containers[0].image".into()
                ),
            ]
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

    /// Shapes go-yaml loads that a strict YAML 1.2 parser rejects: quoted scalars and flow collections
    /// continued at (or left of) their key's column, or indented with tabs; tab separators.
    #[test]
    fn scalars_and_flows_continued_at_the_key_column_load_like_go_yaml() {
        let cases = [
            "items:\n- description: 'Foo bar\n  continued at the key'\n  image: nginx:1\n",
            "items:\n  - description: \"Foo bar\n    continued\"\n    image: nginx:1\n",
            "spec:\n  description: 'Foo\n continued left of the key'\n  image: nginx:1\n",
            "spec:\n  description: 'Foo\ncontinued at column 0'\n  image: nginx:1\n",
            "description: \"Foo \\\"quoted\\\"\ncontinued\"\nimage: nginx:1\n",
            "spec:\n  d: 'tab\n\tindented'\n  image: nginx:1\n",
            "spec:\n  args: [a,\n  b]\n  image: nginx:1\n",
            "spec:\n  labels: {a: '1',\nb: \"2\"}\n  image: nginx:1\n",
            "spec:\n  image:\tnginx:1\n",
        ];
        for yaml in cases {
            assert!(
                load_strict(yaml, 0).is_err(),
                "strict parser accepts {yaml:?}"
            );
            let found = texts(yaml);
            assert_eq!(found.len(), 1, "{yaml:?}: {found:?}");
            assert_eq!(found[0].0, "nginx:1", "{yaml:?}");
        }
        let docs = load_documents(cases[0], 0).unwrap();
        let item = &docs[0].get("items").unwrap();
        let Value::Seq(items) = &item.value else {
            panic!("not a list")
        };
        assert_eq!(
            items[0].get("description").unwrap().as_str(),
            Some("Foo bar continued at the key")
        );
        assert_eq!(items[0].get("image").unwrap().line, 4);
    }

    #[test]
    fn relaxing_keeps_block_scalars_plain_scalars_and_comments_as_written() {
        let yaml = "a:\n  script: |\n    echo 'unclosed\n  note: it's [plain\n  image: nginx:1 # it's\n  d: 'x\n  y'\n";
        let relaxed = relax_indentation(yaml).unwrap();
        assert_eq!(
            relaxed,
            "a:\n  script: |\n    echo 'unclosed\n  note: it's [plain\n  image: nginx:1 # it's\n  d: 'x\n     y'\n"
        );
        assert_eq!(texts(yaml)[0].0, "nginx:1");
        assert_eq!(relax_indentation("a: 'x\n   y'\n"), None);
    }

    #[test]
    fn invalid_yaml_stays_invalid_after_relaxing() {
        for yaml in [
            "a:\n  description: plain\n  continued at the key\n",
            "a: 'never closed\nb: c\n",
            "a: 'x\n---\ny'\n",
        ] {
            assert!(load_documents(yaml, 0).is_err(), "{yaml:?}");
        }
    }

    #[test]
    fn merge_keys_multi_documents_bom_and_crlf_are_read() {
        let yaml = "\u{feff}base: &base\n  repository: org/app\n  tag: v1\nother: &other {registry: r.io, tag: v0}\nimage:\n  tag: v2\n  <<: [*base, *other]\n...\n---\r\nkind: Pod\r\nspec:\r\n  containers:\r\n  - image: 'nginx:1\r\n    '\r\n";
        let found = texts(yaml);
        let images: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            images,
            ["org/app:v1", "r.io/org/app:v2", "nginx:1"],
            "{found:?}"
        );
        assert_eq!(found[2].1, 13);
        assert_eq!(
            texts("\u{feff}image: nginx:1\n"),
            [("nginx:1".to_string(), 1, "image".to_string())]
        );
    }

    #[test]
    fn a_bom_starting_any_document_is_dropped_as_go_yaml_does() {
        let yaml = "\u{feff}image: a:1\n---\n\u{feff}image: b:1\n---\r\n\u{feff}# c\r\n\u{feff}image: c:1\r\n";
        assert_eq!(
            texts(yaml),
            [
                ("a:1".to_string(), 1, "image".to_string()),
                ("b:1".to_string(), 3, "image".to_string()),
                ("c:1".to_string(), 6, "image".to_string()),
            ]
        );
        assert_eq!(without_boms("a: b\n"), None);
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
