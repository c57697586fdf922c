//! Helm's template engine run over a chart tree: one template set for every chart, each file named by its
//! path in the tree, parsed in Helm's order and executed with its chart's scope (`.Values`, `.Chart`,
//! `.Files`, `.Subcharts`, ...). Errors are reworded as helm v4 prints them.

use std::collections::BTreeMap;
use std::rc::Rc;

use gotmpl::value::Entries;
use gotmpl::{MissingKey, Options, Templates, Value};

use crate::Error;
use crate::chart::Chart;
use crate::files::Files;

/// A template file to parse (and, unless it is a partial, execute) with its chart's scope.
struct Renderable {
    name: String,
    source: String,
    /// The scope (`.`) of its chart: shared by every template of the chart, as in Helm.
    dot: Value,
    base_path: String,
}

/// The top-level objects every chart's scope shares.
pub(crate) struct Scope {
    /// `.Release`.
    pub(crate) release: Value,
    /// `.Capabilities`.
    pub(crate) capabilities: Value,
}

/// A map's entry, for reading chart scopes.
fn table(values: &Value, key: &str) -> Option<Value> {
    match values {
        Value::Map(map) => match map.borrow().get(key) {
            Some(v @ Value::Map(_)) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Collects the templates of `chart` and its subcharts (Helm's `recAllTpls`); returns the chart's scope.
fn collect(
    chart: &Chart,
    full_path: &str,
    values: Value,
    is_root: bool,
    scope: &Scope,
    out: &mut Vec<Renderable>,
) -> Value {
    let subcharts = Value::empty_map();
    let mut entries = Entries::new();
    entries.insert("Chart".into(), chart.metadata.to_value(is_root));
    entries.insert(
        "Files".into(),
        Value::Object(Rc::new(Files::new(&chart.files))),
    );
    entries.insert("Release".into(), scope.release.clone());
    entries.insert("Capabilities".into(), scope.capabilities.clone());
    entries.insert("Values".into(), values.clone());
    entries.insert("Subcharts".into(), subcharts.clone());
    let dot = Value::from(entries);
    for child in &chart.dependencies {
        let child_values = table(&values, child.name()).unwrap_or_else(Value::empty_map);
        let child_path = format!("{full_path}/charts/{}", child.name());
        let child_dot = collect(child, &child_path, child_values, false, scope, out);
        if let Value::Map(map) = &subcharts {
            map.borrow_mut().insert(child.name().to_string(), child_dot);
        }
    }
    for template in &chart.templates {
        let base = template.name.rsplit('/').next().unwrap_or(&template.name);
        // A library chart's templates are only its helpers.
        if chart.is_library() && !base.starts_with('_') {
            continue;
        }
        out.push(Renderable {
            name: format!("{full_path}/{}", template.name),
            source: String::from_utf8_lossy(&template.data).into_owned(),
            dot: dot.clone(),
            base_path: format!("{full_path}/templates"),
        });
    }
    dot
}

/// Renders every template of the chart tree; returns the output of each non-partial file by its path.
pub(crate) fn render_templates(
    chart: &Chart,
    values: &Value,
    scope: &Scope,
) -> Result<BTreeMap<String, String>, Error> {
    let mut renderables = Vec::new();
    collect(
        chart,
        chart.name(),
        values.clone(),
        true,
        scope,
        &mut renderables,
    );
    // Helm's parse order: deeper paths first, then names in reverse order, so that a parent's `define`
    // (parsed later) wins over a subchart's.
    renderables.sort_by(|a, b| {
        let depth = |s: &str| s.matches('/').count();
        (depth(&b.name), &b.name).cmp(&(depth(&a.name), &a.name))
    });
    let mut templates = Templates::new(Options {
        missing_key: MissingKey::Zero,
        helm: true,
    });
    for (name, function) in crate::bridge::helm_functions() {
        templates.add_function(name, function);
    }
    for r in &renderables {
        templates
            .parse(&r.name, &r.source)
            .map_err(|e| Error::rendering(parse_error(&r.name, &e.to_string())))?;
    }
    let mut rendered = BTreeMap::new();
    for r in &renderables {
        let base = r.name.rsplit('/').next().unwrap_or(&r.name);
        if base.starts_with('_') {
            continue;
        }
        if let Value::Map(map) = &r.dot {
            let mut template = Entries::new();
            template.insert("Name".into(), Value::from(r.name.as_str()));
            template.insert("BasePath".into(), Value::from(r.base_path.as_str()));
            map.borrow_mut()
                .insert("Template".into(), Value::from(template));
        }
        let text = templates
            .execute(&r.name, &r.dot)
            .map_err(|e| Error::rendering(exec_error(&r.name, &e.to_string())))?;
        rendered.insert(r.name.clone(), text.replace("<no value>", ""));
    }
    Ok(rendered)
}

/// Helm's `cleanupParseError`: `parse error at (LOCATION): MESSAGE` from Go's parse error text.
fn parse_error(filename: &str, go_error: &str) -> String {
    let tokens: Vec<&str> = go_error.split(": ").collect();
    if tokens.len() == 1 {
        return format!("parse error in ({filename}): {go_error}");
    }
    format!(
        "parse error at ({}): {}",
        tokens[1],
        tokens[tokens.len() - 1]
    )
}

/// The markers `fail` and `required` wrap their message in, so that Helm finds it through any `include`
/// or `tpl` and reports only the message, at the outermost location.
const WARN_START: &str = "HELM_ERR_START";
const WARN_END: &str = "HELM_ERR_END";

/// Helm's `cleanupExecError`, then helm v4's layout of execution traces.
fn exec_error(filename: &str, go_error: &str) -> String {
    let tokens: Vec<&str> = go_error.splitn(3, ": ").collect();
    if tokens.len() != 3 {
        return format!("execution error in ({filename}): {go_error}");
    }
    if let Some(start) = tokens[2].find(WARN_START) {
        let marked = &tokens[2][start + WARN_START.len()..];
        if let Some(end) = marked.rfind(WARN_END) {
            return format!("execution error at ({}): {}", tokens[1], &marked[..end]);
        }
    }
    trace(go_error).unwrap_or_else(|| go_error.to_string())
}

/// One level of a Go execution error: `template: LOCATION: executing "NAME" at <CONTEXT>: MESSAGE`.
fn exec_level(text: &str) -> Option<(&str, &str, &str, &str)> {
    let rest = text.strip_prefix("template: ")?;
    let (location, rest) = rest.split_once(": executing \"")?;
    let (name, rest) = rest.split_once("\" at <")?;
    let (context, message) = rest.split_once(">: ")?;
    Some((location, name, context, message))
}

/// helm v4's multi-line layout of an execution error and the `include` calls it passed through; `None`
/// when v4 keeps Go's one-line text (errors a function returned, `error calling NAME: ...`, other than
/// `include`).
fn trace(go_error: &str) -> Option<String> {
    let mut levels = Vec::new();
    let mut text = go_error;
    // The innermost message, and whether it is what an `include` call failed with (not a level's own).
    let (tail, after_include) = loop {
        let Some((location, name, context, message)) = exec_level(text) else {
            break (text, true);
        };
        levels.push((location, name, context));
        match message.strip_prefix("error calling include: ") {
            Some(inner) => text = inner,
            None => break (message, false),
        }
    };
    if levels.is_empty() || (!after_include && tail.starts_with("error calling ")) {
        return None;
    }
    let mut out = String::new();
    for (i, (location, name, context)) in levels.iter().enumerate() {
        out.push_str(&format!(
            "{location}\n  executing \"{name}\" at <{context}>:\n    "
        ));
        if i + 1 < levels.len() || after_include {
            out.push_str("error calling include:\n");
        }
    }
    out.push_str(tail);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_file_and_line() {
        assert_eq!(
            parse_error(
                "c/templates/t.yaml",
                "template: c/templates/t.yaml:2: unclosed action started at c/templates/t.yaml:1"
            ),
            "parse error at (c/templates/t.yaml:2): unclosed action started at c/templates/t.yaml:1"
        );
    }

    #[test]
    fn exec_errors_are_laid_out_as_helm_v4_prints_them() {
        let nil = "template: c/templates/t.yaml:1:13: executing \"c/templates/t.yaml\" at <.Values.x.y.z>: nil pointer evaluating interface {}.y";
        assert_eq!(
            exec_error("c/templates/t.yaml", nil),
            "c/templates/t.yaml:1:13\n  executing \"c/templates/t.yaml\" at <.Values.x.y.z>:\n    nil pointer evaluating interface {}.y"
        );
        let call = "template: c/t.yaml:1:6: executing \"c/t.yaml\" at <index .Values 1>: error calling index: value has type int; should be string";
        assert_eq!(exec_error("c/t.yaml", call), call);
        let nested = "template: c/t.yaml:1:48: executing \"c/t.yaml\" at <include \"x\" .>: error calling include: template: c/t.yaml:1:26: executing \"x\" at <.Values.a.b>: nil pointer evaluating interface {}.b";
        assert_eq!(
            exec_error("c/t.yaml", nested),
            "c/t.yaml:1:48\n  executing \"c/t.yaml\" at <include \"x\" .>:\n    error calling include:\nc/t.yaml:1:26\n  executing \"x\" at <.Values.a.b>:\n    nil pointer evaluating interface {}.b"
        );
        let missing = "template: c/t.yaml:1:3: executing \"c/t.yaml\" at <include \"nope\" .>: error calling include: template: no template \"nope\" associated with template \"gotpl\"";
        assert_eq!(
            exec_error("c/t.yaml", missing),
            "c/t.yaml:1:3\n  executing \"c/t.yaml\" at <include \"nope\" .>:\n    error calling include:\ntemplate: no template \"nope\" associated with template \"gotpl\""
        );
        let inner_call = "template: c/t.yaml:1:52: executing \"c/t.yaml\" at <include \"x\" .>: error calling include: template: c/t.yaml:1:19: executing \"x\" at <index .Values 1>: error calling index: value has type int; should be string";
        assert_eq!(exec_error("c/t.yaml", inner_call), inner_call);
        let failed = "template: c/t.yaml:1:6: executing \"c/t.yaml\" at <fail \"boom\">: error calling fail: HELM_ERR_STARTboomHELM_ERR_END";
        assert_eq!(
            exec_error("c/t.yaml", failed),
            "execution error at (c/t.yaml:1:6): boom"
        );
    }
}
