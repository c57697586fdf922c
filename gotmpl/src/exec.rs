//! Executes parsed templates: Go's evaluation of pipelines, variables, field chains, control structures and
//! function calls, with bounds (steps, nesting, output size) so hostile templates fail cleanly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use crate::ast::{Branch, Cmd, Node, Pipe, Term, Tree, template_context};
use crate::builtins::{self, Builtin, Callee};
use crate::error::{ErrorKind, TemplateError};
use crate::value::Value;
use crate::{MissingKey, Templates};

mod helm;

/// Most evaluation steps (actions, commands, loop iterations) one execution may take.
pub(crate) const MAX_STEPS: u64 = 10_000_000;
/// Deepest nesting of blocks, parenthesized pipelines and template calls during execution.
pub(crate) const MAX_EXEC_DEPTH: usize = 300;
/// Largest output or string result, in bytes.
pub(crate) const MAX_OUTPUT: usize = 64 << 20;
/// Most stack one execution may use for nesting; deeper templates fail cleanly instead of overflowing
/// the thread's stack (debug builds use several kilobytes per nesting level).
const MAX_STACK: usize = 1 << 20;
/// Helm's limit on nested `include`s of one template name.
const MAX_INCLUDE_RECURSION: usize = 1000;

/// Functions that take a missing value without complaint under [`MissingKey::Strict`].
const STRICT_TOLERANT: &[&str] = &[
    "default", "empty", "coalesce", "ternary", "required", "eq", "ne", "not", "and", "or",
];

/// What one top-level execution may still spend; shared by `include` and `tpl`.
#[derive(Default)]
pub(crate) struct Budget {
    steps: u64,
    depth: usize,
    /// Where the stack was when execution started (an address, only compared).
    stack_base: usize,
    included: HashMap<String, usize>,
}

/// A variable in scope. `iface`: bound to a range element, which Go types `interface {}`.
struct Var {
    name: Rc<str>,
    value: Value,
    iface: bool,
}

impl Var {
    fn new(name: Rc<str>, value: Value) -> Var {
        Var {
            name,
            value,
            iface: false,
        }
    }
}

/// How a list of nodes ended.
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Errors are boxed while they travel up the (deep) call chain: results stay small.
type Res<T> = Result<T, Box<TemplateError>>;

/// The state of one execution.
pub(crate) struct Exec<'a, 'b> {
    set: &'a Templates,
    tree: &'a Tree,
    out: String,
    vars: Vec<Var>,
    /// Whether `.` is an element of a list or map being ranged over: Go then sees it as `interface {}`
    /// (only its error messages differ).
    dot_iface: bool,
    budget: &'b mut Budget,
}

/// Executes template `tree` of `set` with `dot`.
pub(crate) fn execute(
    set: &Templates,
    tree: &Tree,
    dot: &Value,
    budget: &mut Budget,
) -> Res<String> {
    if budget.stack_base == 0 {
        budget.stack_base = stack_address();
    }
    let mut exec = Exec {
        set,
        tree,
        out: String::new(),
        vars: vec![Var::new("$".into(), dot.clone())],
        dot_iface: false,
        budget,
    };
    exec.walk(&tree.root, dot)?;
    Ok(exec.out)
}

/// The address of a local: how deep the stack is, to compare with where execution started.
#[inline(never)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

thread_local! {
    static INVALID: Value = Value::Missing("".into());
}

/// Go's invalid value (a nil interface unwrapped), without a name for messages.
fn invalid() -> Value {
    INVALID.with(Value::clone)
}

fn missing_in(prefix: &str, names: &[Rc<str>]) -> Value {
    let mut path = prefix.to_string();
    for name in names {
        path.push('.');
        path.push_str(name);
    }
    Value::Missing(path.into())
}

impl<'a> Exec<'a, '_> {
    fn error(&self, pos: usize, context: String, message: String) -> Box<TemplateError> {
        let mut e = TemplateError::at(
            ErrorKind::Exec,
            &self.tree.parse_name,
            &self.tree.source,
            pos,
            message,
        );
        e.context = context;
        e.executing = self.tree.name.to_string();
        Box::new(e)
    }

    /// An error about a pipeline's value, located where Go's executor is then (its last term).
    fn pipe_error(&self, pipe: &Pipe, message: String) -> Box<TemplateError> {
        match pipe.last_term() {
            Some(term) => self.error(term.pos(), term.to_string(), message),
            None => self.error(pipe.pos, pipe.to_string(), message),
        }
    }

    fn step(&mut self, pos: usize, context: &dyn Fn() -> String) -> Res<()> {
        self.budget.steps += 1;
        if self.budget.steps > MAX_STEPS {
            return Err(self.error(
                pos,
                context(),
                format!("execution takes more than {MAX_STEPS} steps: is a `range` too large?"),
            ));
        }
        Ok(())
    }

    fn enter(&mut self, pos: usize, context: &dyn Fn() -> String) -> Res<()> {
        self.budget.depth += 1;
        if self.budget.depth > MAX_EXEC_DEPTH
            || stack_address().abs_diff(self.budget.stack_base) > MAX_STACK
        {
            self.budget.depth -= 1;
            return Err(self.error(
                pos,
                context(),
                format!("exceeded maximum template depth ({MAX_EXEC_DEPTH})"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.budget.depth -= 1;
    }

    fn emit(&mut self, pos: usize, text: &str) -> Res<()> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(self.error(
                pos,
                String::new(),
                format!("output grows beyond {MAX_OUTPUT} bytes"),
            ));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk(&mut self, nodes: &'a [Node], dot: &Value) -> Res<Flow> {
        for node in nodes {
            match self.node(node, dot)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, node: &'a Node, dot: &Value) -> Res<Flow> {
        match node {
            Node::Text(a, b) => {
                let tree = self.tree;
                self.emit(*a, &tree.source[*a..*b])?;
            }
            Node::Action(pipe) => {
                self.step(pipe.pos, &|| pipe.to_string())?;
                let value = self.pipeline(pipe, dot)?;
                if pipe.decl.is_empty() {
                    self.print(pipe, &value)?;
                }
            }
            Node::If(branch) => return self.if_with(branch, dot, false),
            Node::With(branch) => return self.if_with(branch, dot, true),
            Node::Range(branch) => return self.range(branch, dot),
            Node::Template { pos, name, pipe } => {
                let context = || template_context(name, pipe.as_ref());
                self.step(*pos, &context)?;
                let Some(tree) = self.set.tree(name) else {
                    return Err(self.error(
                        *pos,
                        context(),
                        format!("template {} not defined", crate::value::go_quote(name)),
                    ));
                };
                let new_dot = match pipe {
                    Some(pipe) => self.pipeline(pipe, dot)?,
                    None => invalid(),
                };
                self.enter(*pos, &context)?;
                let saved_tree = std::mem::replace(&mut self.tree, tree);
                let saved_vars =
                    std::mem::replace(&mut self.vars, vec![Var::new("$".into(), new_dot.clone())]);
                let outer_iface = std::mem::replace(&mut self.dot_iface, false);
                let result = self.walk(&tree.root, &new_dot);
                self.dot_iface = outer_iface;
                self.tree = saved_tree;
                self.vars = saved_vars;
                self.leave();
                result?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    /// Prints an action's value as Go's `fmt.Fprint` does (nil and missing print `<no value>`).
    fn print(&mut self, pipe: &Pipe, value: &Value) -> Res<()> {
        match value {
            Value::Str(s) => self.emit(pipe.pos, s),
            Value::Int(i) | Value::Int64(i) => {
                let mut buf = String::new();
                let _ = write!(buf, "{i}");
                self.emit(pipe.pos, &buf)
            }
            Value::Missing(key) => {
                if let MissingKey::Strict(message) = self.set.options.missing_key
                    && !key.is_empty()
                {
                    return Err(self.error(pipe.pos, pipe.to_string(), message(key)));
                }
                self.emit(pipe.pos, "<no value>")
            }
            Value::Nil => self.emit(pipe.pos, "<no value>"),
            other => {
                let text = other.to_go_string();
                self.emit(pipe.pos, &text)
            }
        }
    }

    fn if_with(&mut self, branch: &'a Branch, dot: &Value, with: bool) -> Res<Flow> {
        let pipe = &branch.pipe;
        self.step(pipe.pos, &|| pipe.to_string())?;
        self.enter(pipe.pos, &|| pipe.to_string())?;
        let mark = self.vars.len();
        let result = (|| {
            let value = self.pipeline(pipe, dot)?;
            if value.truth() && with {
                let outer_iface = std::mem::replace(&mut self.dot_iface, false);
                let flow = self.walk(&branch.list, &value);
                self.dot_iface = outer_iface;
                flow
            } else if value.truth() {
                self.walk(&branch.list, dot)
            } else if let Some(list) = &branch.else_list {
                self.walk(list, dot)
            } else {
                Ok(Flow::Normal)
            }
        })();
        self.vars.truncate(mark);
        self.leave();
        result
    }

    fn range(&mut self, branch: &'a Branch, dot: &Value) -> Res<Flow> {
        let pipe = &branch.pipe;
        self.step(pipe.pos, &|| pipe.to_string())?;
        self.enter(pipe.pos, &|| pipe.to_string())?;
        let mark = self.vars.len();
        let result = self.range_items(branch, dot, mark);
        self.vars.truncate(mark);
        self.leave();
        result.map(|()| Flow::Normal)
    }

    fn range_items(&mut self, branch: &'a Branch, dot: &Value, mark: usize) -> Res<()> {
        let pipe = &branch.pipe;
        let value = self.pipeline(pipe, dot)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(map) => map
                .borrow()
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                .collect(),
            Value::Int(n) | Value::Int64(n) => {
                if pipe.decl.len() > 1 {
                    return Err(self.pipe_error(
                        pipe,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                if *n > MAX_STEPS as i64 {
                    return Err(self.error(
                        pipe.pos,
                        pipe.to_string(),
                        format!(
                            "execution takes more than {MAX_STEPS} steps: is a `range` too large?"
                        ),
                    ));
                }
                // Go yields integers of the ranged value's own type.
                let int64 = matches!(value, Value::Int64(_));
                let of = |i| {
                    if int64 {
                        Value::Int64(i)
                    } else {
                        Value::Int(i)
                    }
                };
                (0..(*n).max(0)).map(|i| (of(i), of(i))).collect()
            }
            Value::Missing(_) | Value::Nil => Vec::new(),
            Value::Object(obj) if obj.entries().is_some() => obj.entries().unwrap_or_default(),
            other => {
                return Err(self.pipe_error(
                    pipe,
                    format!("range can't iterate over {}", other.to_go_string()),
                ));
            }
        };
        if items.is_empty() {
            if let Some(list) = &branch.else_list {
                self.walk(list, dot)?;
            }
            return Ok(());
        }
        // Elements of lists and maps are interface values to Go; integers of `range N` are not.
        let iface = value.as_int().is_none();
        let body_mark = self.vars.len();
        for (key, item) in items {
            self.step(pipe.pos, &|| pipe.to_string())?;
            match (pipe.decl.len(), pipe.assign) {
                (0, _) => {}
                (1, false) => {
                    self.vars[mark].value = item.clone();
                    self.vars[mark].iface = iface;
                }
                (_, false) => {
                    self.vars[mark].value = key;
                    self.vars[mark + 1].value = item.clone();
                    self.vars[mark + 1].iface = iface;
                }
                (n, true) => {
                    let (first, second) = if n == 1 {
                        (item.clone(), None)
                    } else {
                        (key, Some(item.clone()))
                    };
                    self.set_var(pipe, &pipe.decl[0], first, n == 1 && iface)?;
                    if let Some(second) = second {
                        self.set_var(pipe, &pipe.decl[1], second, iface)?;
                    }
                }
            }
            let outer_iface = std::mem::replace(&mut self.dot_iface, iface);
            let flow = self.walk(&branch.list, &item);
            self.dot_iface = outer_iface;
            self.vars.truncate(body_mark);
            if let Flow::Break = flow? {
                break;
            }
        }
        Ok(())
    }

    fn set_var(&mut self, pipe: &Pipe, name: &str, value: Value, iface: bool) -> Res<()> {
        match self.vars.iter_mut().rev().find(|v| &*v.name == name) {
            Some(slot) => {
                slot.value = value;
                slot.iface = iface;
                Ok(())
            }
            None => Err(self.error(
                pipe.pos,
                pipe.to_string(),
                format!("undefined variable: {name}"),
            )),
        }
    }

    /// Evaluates a pipeline and declares or assigns its variables.
    fn pipeline(&mut self, pipe: &Pipe, dot: &Value) -> Res<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let mut next = self.command(cmd, dot, value.take())?;
            // Go unwraps a nil interface into the invalid value between commands.
            if let Value::Nil = next {
                next = invalid();
            }
            value = Some(next);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.assign {
                self.set_var(pipe, name, value.clone(), false)?;
            } else {
                self.vars.push(Var::new(name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn command(&mut self, cmd: &Cmd, dot: &Value, last: Option<Value>) -> Res<Value> {
        self.step(cmd.pos, &|| cmd.to_string())?;
        let first = &cmd.args[0];
        let args = &cmd.args[1..];
        match first {
            Term::Field { pos, names } => {
                let iface = self.dot_iface;
                self.fields(dot.clone(), "", names, args, last, *pos, first, dot, iface)
            }
            Term::Var { pos, name, fields } => {
                let (value, iface) = self.var(*pos, name)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, last.is_some())?;
                    return Ok(value);
                }
                self.fields(value, name, fields, args, last, *pos, first, dot, iface)
            }
            Term::Chain { base, fields, .. } => {
                let value = self.arg(base, dot)?;
                let value = if value.is_nil() { invalid() } else { value };
                let prefix = base.to_string();
                // Go evaluates a chain without noting it: errors are located at the base's last node.
                let at = base.last_visited();
                self.fields(value, &prefix, fields, args, last, at.pos(), at, dot, false)
            }
            Term::Func { name, callee, .. } => self.call(cmd, name, *callee, args, last, dot),
            Term::Pipe(_, pipe) => {
                self.not_a_function(cmd, last.is_some())?;
                self.nested(pipe, dot)
            }
            Term::Nil(pos) => Err(self.error(*pos, cmd.to_string(), "nil is not a command".into())),
            Term::Dot(_) => {
                self.not_a_function(cmd, last.is_some())?;
                Ok(dot.clone())
            }
            Term::Const { value, .. } => {
                self.not_a_function(cmd, last.is_some())?;
                Ok(value.clone())
            }
        }
    }

    fn not_a_function(&self, cmd: &Cmd, piped: bool) -> Res<()> {
        if cmd.args.len() > 1 || piped {
            return Err(self.error(
                cmd.args[0].pos(),
                cmd.args[0].to_string(),
                format!("can't give argument to non-function {}", cmd.args[0]),
            ));
        }
        Ok(())
    }

    fn nested(&mut self, pipe: &Pipe, dot: &Value) -> Res<Value> {
        self.enter(pipe.pos, &|| pipe.to_string())?;
        let value = self.pipeline(pipe, dot);
        self.leave();
        value
    }

    /// A variable's value, and whether Go types it `interface {}`.
    fn var(&self, pos: usize, name: &str) -> Res<(Value, bool)> {
        match self.vars.iter().rev().find(|v| &*v.name == name) {
            Some(v) => Ok((v.value.clone(), v.iface)),
            None => Err(self.error(pos, name.to_string(), format!("undefined variable: {name}"))),
        }
    }

    /// Evaluates an argument of a function.
    fn arg(&mut self, term: &Term, dot: &Value) -> Res<Value> {
        match term {
            Term::Dot(_) => Ok(dot.clone()),
            Term::Nil(_) => Ok(Value::Nil),
            Term::Const { value, .. } => Ok(value.clone()),
            Term::Field { pos, names } => {
                let iface = self.dot_iface;
                self.fields(dot.clone(), "", names, &[], None, *pos, term, dot, iface)
            }
            Term::Var { pos, name, fields } => {
                let (value, iface) = self.var(*pos, name)?;
                self.fields(value, name, fields, &[], None, *pos, term, dot, iface)
            }
            Term::Chain { base, fields, .. } => {
                let value = self.arg(base, dot)?;
                let value = if value.is_nil() { invalid() } else { value };
                let prefix = base.to_string();
                let at = base.last_visited();
                self.fields(value, &prefix, fields, &[], None, at.pos(), at, dot, false)
            }
            Term::Func { pos, name, callee } => {
                let cmd = Cmd {
                    pos: *pos,
                    args: Vec::new(),
                };
                self.call_named(&cmd, term, name, *callee, &[], None, dot)
            }
            Term::Pipe(_, pipe) => self.nested(pipe, dot),
        }
    }

    /// Follows the field chain `names` from `receiver`; the last field gets `args` and `last` (a method
    /// call on an object). `prefix` names the receiver for missing-value messages.
    #[allow(clippy::too_many_arguments)]
    fn fields(
        &mut self,
        mut receiver: Value,
        prefix: &str,
        names: &[Rc<str>],
        args: &[Term],
        last: Option<Value>,
        pos: usize,
        term: &Term,
        dot: &Value,
        mut from_map: bool,
    ) -> Res<Value> {
        let mut last = last;
        for (i, name) in names.iter().enumerate() {
            let is_last = i + 1 == names.len();
            let has_args = is_last && (!args.is_empty() || last.is_some());
            let was_map = matches!(receiver, Value::Map(_));
            receiver = match &receiver {
                Value::Missing(_) => {
                    if let MissingKey::Error = self.set.options.missing_key {
                        return Err(self.error(
                            pos,
                            term.to_string(),
                            format!("nil data; no entry for key \"{name}\""),
                        ));
                    }
                    return Ok(missing_in(prefix, names));
                }
                Value::Nil => {
                    return Err(self.error(
                        pos,
                        term.to_string(),
                        format!("nil pointer evaluating interface {{}}.{name}"),
                    ));
                }
                Value::Map(map) => {
                    if has_args {
                        return Err(self.error(
                            pos,
                            term.to_string(),
                            format!("{name} is not a method but has arguments"),
                        ));
                    }
                    let found = map.borrow().get(&**name).cloned();
                    match found {
                        Some(v) => v,
                        None => match self.set.options.missing_key {
                            MissingKey::Zero => Value::Nil,
                            MissingKey::Error => {
                                return Err(self.error(
                                    pos,
                                    term.to_string(),
                                    format!("map has no entry for key \"{name}\""),
                                ));
                            }
                            MissingKey::Default | MissingKey::Strict(_) => {
                                return Ok(missing_in(prefix, names));
                            }
                        },
                    }
                }
                Value::Object(obj) => {
                    let obj = obj.clone();
                    if has_args {
                        let mut values = Vec::with_capacity(args.len() + 1);
                        for arg in args {
                            values.push(self.arg(arg, dot)?.nil_if_missing());
                        }
                        if let Some(v) = last.take() {
                            values.push(v.nil_if_missing());
                        }
                        match obj.call(name, values) {
                            Some(Ok(v)) => v,
                            Some(Err(message)) => {
                                return Err(self.error(
                                    pos,
                                    term.to_string(),
                                    call_message(name, message.into_message()),
                                ));
                            }
                            None if obj.field(name).is_some() => {
                                return Err(self.error(
                                    pos,
                                    term.to_string(),
                                    format!(
                                        "{name} has arguments but cannot be invoked as function"
                                    ),
                                ));
                            }
                            None => {
                                return Err(self.error(
                                    pos,
                                    term.to_string(),
                                    format!(
                                        "can't evaluate field {name} in type {}",
                                        obj.type_name()
                                    ),
                                ));
                            }
                        }
                    } else {
                        match obj.field(name) {
                            Some(v) => v,
                            None => match obj.call(name, Vec::new()) {
                                Some(Ok(v)) => v,
                                Some(Err(message)) => {
                                    return Err(self.error(
                                        pos,
                                        term.to_string(),
                                        call_message(name, message.into_message()),
                                    ));
                                }
                                None => {
                                    return Err(self.error(
                                        pos,
                                        term.to_string(),
                                        format!(
                                            "can't evaluate field {name} in type {}",
                                            obj.type_name()
                                        ),
                                    ));
                                }
                            },
                        }
                    }
                }
                other => {
                    let type_name = if from_map {
                        "interface {}"
                    } else {
                        other.type_name()
                    };
                    return Err(self.error(
                        pos,
                        term.to_string(),
                        format!("can't evaluate field {name} in type {type_name}"),
                    ));
                }
            };
            from_map = was_map;
        }
        if !args.is_empty() || last.is_some() {
            // `$x arg` or `.` with arguments: only the last field of a chain can take arguments.
            if names.is_empty() {
                return Err(self.error(
                    pos,
                    term.to_string(),
                    format!("can't give argument to non-function {term}"),
                ));
            }
        }
        Ok(receiver)
    }

    fn call(
        &mut self,
        cmd: &Cmd,
        name: &str,
        callee: Callee,
        args: &[Term],
        last: Option<Value>,
        dot: &Value,
    ) -> Res<Value> {
        let term = &cmd.args[0];
        self.call_named(cmd, term, name, callee, args, last, dot)
    }

    #[allow(clippy::too_many_arguments)]
    fn call_named(
        &mut self,
        cmd: &Cmd,
        term: &Term,
        name: &str,
        callee: Callee,
        args: &[Term],
        last: Option<Value>,
        dot: &Value,
    ) -> Res<Value> {
        let context = || {
            if cmd.args.is_empty() {
                term.to_string()
            } else {
                cmd.to_string()
            }
        };
        let got = args.len() + usize::from(last.is_some());
        if let Callee::Builtin(builtin) = callee {
            builtins::check_arity(name, builtin.arity(), got)
                .map_err(|m| self.error(term.pos(), term.to_string(), m))?;
            if let Builtin::And | Builtin::Or = builtin {
                let want = builtin == Builtin::Or;
                let mut value = Value::Nil;
                for arg in args {
                    value = self.arg(arg, dot)?;
                    if value.truth() == want {
                        return Ok(value);
                    }
                }
                return Ok(last.unwrap_or(value));
            }
        }
        let mut values = Vec::with_capacity(got);
        for arg in args {
            values.push(self.arg(arg, dot)?);
        }
        values.extend(last);
        if let MissingKey::Strict(message) = self.set.options.missing_key
            && !STRICT_TOLERANT.contains(&name)
            && let Some(Value::Missing(key)) = values
                .iter()
                .find(|v| matches!(v, Value::Missing(k) if !k.is_empty()))
        {
            return Err(self.error(cmd.pos, context(), message(key)));
        }
        for value in &mut values {
            if let Value::Missing(_) = value {
                *value = Value::Nil;
            }
        }
        let result = match callee {
            Callee::Builtin(Builtin::Call) if !values[0].is_nil() && !args.is_empty() => {
                let message = format!(
                    "error calling call: non-function {} of type {}",
                    args[0],
                    values[0].type_name()
                );
                Err(self.error(cmd.pos, context(), message))
            }
            Callee::Builtin(Builtin::Include) => self.include(cmd, &context, values),
            Callee::Builtin(Builtin::Tpl) => self.tpl(cmd, &context, values),
            Callee::Builtin(builtin) => builtins::call(builtin, &values)
                .map_err(|m| self.error(cmd.pos, context(), call_message(name, m))),
            Callee::Func(f) => f(values)
                .map_err(|m| self.error(cmd.pos, context(), call_message(name, m.into_message()))),
        }?;
        if let Value::Str(s) = &result
            && s.len() > MAX_OUTPUT
        {
            return Err(self.error(
                cmd.pos,
                context(),
                format!("`{name}` result grows beyond {MAX_OUTPUT} bytes"),
            ));
        }
        Ok(result)
    }
}

/// Go's message for a function's error: `error calling NAME: ...`, except for argument count and type
/// errors, which Go reports before the call.
pub(crate) fn call_message(name: &str, message: String) -> String {
    if message.starts_with("wrong number of args")
        || message.starts_with("wrong type for value")
        || message.starts_with("invalid value;")
    {
        message
    } else {
        format!("error calling {name}: {message}")
    }
}
