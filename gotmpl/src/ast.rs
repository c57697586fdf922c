//! The syntax tree of parsed templates, and Go's text of its nodes (the `at <...>` context of errors).

use std::fmt;
use std::rc::Rc;

use crate::builtins::Callee;
use crate::value::Value;

/// One named template: the main text of a source or a `define`/`block` in it.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The template's name.
    pub name: Rc<str>,
    /// The name of the source it was parsed from (for error locations).
    pub parse_name: Rc<str>,
    /// That source's text.
    pub source: Rc<str>,
    pub root: Vec<Node>,
}

impl Tree {
    /// Go's `IsEmptyTree`: only whitespace text (an empty definition does not replace an existing one).
    pub fn is_empty(&self) -> bool {
        self.root.iter().all(|node| match node {
            Node::Text(a, b) => self.source[*a..*b].trim().is_empty(),
            _ => false,
        })
    }
}

#[derive(Debug)]
pub(crate) enum Node {
    /// Literal text: a byte range of the tree's source.
    Text(usize, usize),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        pos: usize,
        name: Rc<str>,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    /// Variables declared (`:=`) or assigned (`=`).
    pub decl: Vec<Rc<str>>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(crate) struct Cmd {
    pub pos: usize,
    pub args: Vec<Term>,
}

#[derive(Debug)]
pub(crate) enum Term {
    Dot(usize),
    Nil(usize),
    /// A bool, number or string constant with its source text.
    Const {
        pos: usize,
        value: Value,
        text: Rc<str>,
    },
    /// `.a.b`: field names from the dot.
    Field {
        pos: usize,
        names: Vec<Rc<str>>,
    },
    /// `$x.a.b`.
    Var {
        pos: usize,
        name: Rc<str>,
        fields: Vec<Rc<str>>,
    },
    /// A function name.
    Func {
        pos: usize,
        name: Rc<str>,
        callee: Callee,
    },
    /// `( pipeline )`.
    Pipe(usize, Box<Pipe>),
    /// `(pipeline).a.b`.
    Chain {
        pos: usize,
        base: Box<Term>,
        fields: Vec<Rc<str>>,
    },
}

impl Term {
    /// Where the term is in the source (a chain is located at its first added field, as in Go).
    pub fn pos(&self) -> usize {
        match self {
            Term::Dot(pos) | Term::Nil(pos) | Term::Pipe(pos, _) => *pos,
            Term::Const { pos, .. }
            | Term::Field { pos, .. }
            | Term::Var { pos, .. }
            | Term::Func { pos, .. }
            | Term::Chain { pos, .. } => *pos,
        }
    }
}

impl Term {
    /// The node Go's executor visits last when evaluating this term (a parenthesized pipeline's last
    /// argument, recursively): where Go locates errors about a chain on it.
    pub fn last_visited(&self) -> &Term {
        match self {
            Term::Pipe(_, pipe) => pipe.last_term().map_or(self, Term::last_visited),
            Term::Chain { base, .. } => base.last_visited(),
            _ => self,
        }
    }
}

impl Pipe {
    /// The node Go's executor visited last when evaluating this pipeline, where it reports errors about
    /// the pipeline's value: the last argument of the last command.
    pub fn last_term(&self) -> Option<&Term> {
        self.cmds.last().and_then(|cmd| cmd.args.last())
    }
}

fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[Rc<str>]) -> fmt::Result {
    for name in fields {
        write!(f, ".{name}")?;
    }
    Ok(())
}

impl fmt::Display for Term {
    /// Go's `Node.String()`, used as the `at <...>` context of errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Dot(_) => f.write_str("."),
            Term::Nil(_) => f.write_str("nil"),
            Term::Const { text, .. } => f.write_str(text),
            Term::Field { names, .. } => write_fields(f, names),
            Term::Var { name, fields, .. } => {
                f.write_str(name)?;
                write_fields(f, fields)
            }
            Term::Func { name, .. } => f.write_str(name),
            Term::Pipe(_, pipe) => write!(f, "({pipe})"),
            Term::Chain { base, fields, .. } => {
                write!(f, "{base}")?;
                write_fields(f, fields)
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{arg}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.assign { " = " } else { " := " })?;
        }
        for (i, cmd) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{cmd}")?;
        }
        Ok(())
    }
}

/// Go's text of a `{{template}}` node.
pub(crate) fn template_context(name: &str, pipe: Option<&Pipe>) -> String {
    match pipe {
        Some(pipe) => format!("{{{{template {} {pipe}}}}}", crate::value::go_quote(name)),
        None => format!("{{{{template {}}}}}", crate::value::go_quote(name)),
    }
}
