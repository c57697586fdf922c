//! Go's `text/template` language with the sprig function library, as Helm charts and sealos `*.tmpl` files
//! use it.
//!
//! - [`value`]: the values templates work on ([`Value`]), Go's `%v` formatting of them, and the
//!   [`Object`] trait for host objects with fields and methods (Helm's `.Files`, `.Capabilities`).
//! - The engine ([`Templates`]: lexer, parser, executor, Go built-ins, `printf`) renders a set of named
//!   templates sharing their `define`s, with Go's semantics and error messages.
//! - [`sprig`]: the sprig functions Helm ships.
//! - [`encoding`]: Go's `encoding/json` output and parsing of values, shared by sprig and Helm.
//!
//! ```
//! use gotmpl::{Options, Templates, Value};
//! let mut set = Templates::new(Options::default());
//! set.parse("t", r#"{{ define "who" }}{{ . }}{{ end }}hello {{ template "who" .name }}"#).unwrap();
//! let mut dot = gotmpl::value::Entries::new();
//! dot.insert("name".into(), Value::from("world"));
//! assert_eq!(set.execute("t", &Value::from(dot)).unwrap(), "hello world");
//! ```
//!
//! Function names resolve when a template is parsed (an unknown name is Go's parse error `function "x" not
//! defined`), in Helm's order: functions added with [`Templates::add_function`], Helm's engine functions
//! (with [`Options::helm`]), [`sprig`], then Go's built-ins (so sprig's `slice` wins, as in Helm). A function
//! receives nil ([`Value::Nil`]) for a missing value.
//!
//! Functions ([`Function`]) report failure with a [`FuncError`] holding the message (`?` and `.into()` make
//! one from a `String` or `&str`); the engine shows it as Go does,
//! `error calling NAME: message`, except messages starting with `wrong number of args`, `wrong type for
//! value` or `invalid value;`, which Go reports before the call and are shown as they are.
//! [`TemplateError`]'s `Display` is Go's text; [`TemplateError::helm_text`] is what Helm prints.

mod ast;
mod builtins;
pub mod encoding;
mod error;
mod exec;
mod lex;
mod parse;
mod printable;
pub mod printf;
pub mod sprig;
pub mod value;

use std::collections::HashMap;
use std::rc::Rc;

pub use error::{ErrorKind, TemplateError};
pub use value::{FuncError, FuncResult, Function, Object, Value};

use builtins::{Builtin, Callee};

use ast::Tree;

/// Deepest nesting of blocks and parentheses a template may have; deeper text is a parse error.
pub const MAX_DEPTH: usize = parse::MAX_DEPTH;

/// What a field access on a map finds when the key is absent (Go's `missingkey` option).
#[derive(Clone, Copy, Debug, Default)]
pub enum MissingKey {
    /// Go's default: the invalid value, printed `<no value>`; a field of it is again invalid.
    #[default]
    Default,
    /// `missingkey=zero` (Helm's setting): the map's zero value, nil; printed `<no value>`, and a field of
    /// it is Go's error `nil pointer evaluating interface {}.x`.
    Zero,
    /// `missingkey=error`: `map has no entry for key "x"`.
    Error,
    /// Like `Default` for tests (`if`, `with`, `default`, `eq`, ...), but printing a missing value or
    /// passing it to other functions is an error; the function makes the message from the reference
    /// (`.KEY`). sealos' strict rendering of image templates.
    Strict(fn(&str) -> String),
}

/// How a template set behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// What a missing map key gives. With `helm`, `Default` acts as `Zero`, as Helm sets it.
    pub missing_key: MissingKey,
    /// Provide Helm's engine functions: `include`, `tpl`, `required`, `fail`.
    pub helm: bool,
}

/// A set of named, parsed templates sharing their `define`s (Go's template set). Parse once, execute
/// many times; cloning is cheap (the parsed trees are shared).
#[derive(Clone)]
pub struct Templates {
    trees: Rc<HashMap<Rc<str>, Rc<Tree>>>,
    functions: Rc<HashMap<String, Function>>,
    options: Options,
}

impl Templates {
    /// An empty set.
    pub fn new(mut options: Options) -> Templates {
        if options.helm && matches!(options.missing_key, MissingKey::Default) {
            options.missing_key = MissingKey::Zero;
        }
        Templates {
            trees: Rc::default(),
            functions: Rc::default(),
            options,
        }
    }

    /// Adds function `name`, replacing a built-in or sprig function of that name. Add functions before
    /// parsing the templates that call them: as in Go, names are resolved when parsing.
    pub fn add_function(&mut self, name: &str, f: Function) {
        Rc::make_mut(&mut self.functions).insert(name.to_string(), f);
    }

    /// What `name` calls, in Go's and Helm's order: the caller's functions, Helm's engine functions
    /// (`include`, `tpl`, `required`, `fail`), sprig, then Go's built-ins (so sprig's `slice` replaces
    /// Go's, as in Helm).
    fn resolve(&self, name: &str) -> Option<Callee> {
        if let Some(f) = self.functions.get(name) {
            return Some(Callee::Func(*f));
        }
        let builtin = Builtin::lookup(name, self.options.helm);
        if let Some(b) = builtin.filter(|b| b.is_helm()) {
            return Some(Callee::Builtin(b));
        }
        sprig::lookup(name)
            .map(Callee::Func)
            .or(builtin.map(Callee::Builtin))
    }

    /// Parses `source` as template `name`; its `define`s join the set (a later definition of a name
    /// replaces an earlier one, as Go's AddParseTree does; an empty one does not replace a template).
    #[allow(clippy::result_large_err)] // the error type is the crate's public contract
    pub fn parse(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        let trees = parse::parse(name, source, &|f| self.resolve(f))
            .map_err(|e| TemplateError::at(ErrorKind::Parse, name, source, e.pos, e.message))?;
        let set = Rc::make_mut(&mut self.trees);
        let mut seen: Vec<Rc<str>> = Vec::new();
        for tree in trees {
            if seen.contains(&tree.name) && !tree.is_empty() {
                let message = format!(
                    "template: multiple definition of template {}",
                    value::go_quote(&tree.name)
                );
                return Err(TemplateError::at(
                    ErrorKind::Parse,
                    name,
                    source,
                    source.len(),
                    message,
                ));
            }
            seen.push(tree.name.clone());
            if tree.is_empty() && set.contains_key(&tree.name) {
                continue;
            }
            set.insert(tree.name.clone(), Rc::new(tree));
        }
        Ok(())
    }

    /// Whether a template called `name` is in the set.
    pub fn has(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// Executes template `name` with `dot` as `.` and `$`.
    #[allow(clippy::result_large_err)] // the error type is the crate's public contract
    pub fn execute(&self, name: &str, dot: &Value) -> Result<String, TemplateError> {
        let Some(tree) = self.tree(name) else {
            return Err(TemplateError::unlocated(format!(
                "no template {} associated with template {}",
                value::go_quote(name),
                value::go_quote(self.root_name())
            )));
        };
        exec::execute(self, tree, dot, &mut exec::Budget::default()).map_err(|e| *e)
    }

    pub(crate) fn tree(&self, name: &str) -> Option<&Tree> {
        self.trees.get(name).map(|t| &**t)
    }

    /// The name of the set in Go's messages (Helm's root template is `gotpl`).
    pub(crate) fn root_name(&self) -> &str {
        "gotpl"
    }
}
