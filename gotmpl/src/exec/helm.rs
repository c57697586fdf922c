//! Helm's engine functions that need the executor: `include` renders a named template of the set into a
//! string, `tpl` parses text into a copy of the set and executes it.

use super::{Exec, MAX_INCLUDE_RECURSION, Res, Var, execute};
use crate::ast::Cmd;
use crate::builtins;
use crate::value::{Value, go_quote};

impl Exec<'_, '_> {
    /// Helm's `include NAME DOT`: the named template rendered to a string.
    pub(super) fn include(
        &mut self,
        cmd: &Cmd,
        context: &dyn Fn() -> String,
        values: Vec<Value>,
    ) -> Res<Value> {
        let name = builtins::text_arg(&values[0]).map_err(|m| self.error(cmd.pos, context(), m))?;
        let fail = |this: &Self, m: String| {
            this.error(cmd.pos, context(), format!("error calling include: {m}"))
        };
        match self.budget.included.get_mut(name.as_str()) {
            Some(count) if *count > MAX_INCLUDE_RECURSION => {
                return Err(fail(
                    self,
                    format!(
                        "rendering template has a nested reference name: {name}: unable to execute template"
                    ),
                ));
            }
            Some(count) => *count += 1,
            None => {
                self.budget.included.insert(name.clone(), 1);
            }
        }
        let result = match self.set.tree(&name) {
            None => Err(fail(
                self,
                format!(
                    "template: no template {} associated with template {}",
                    go_quote(&name),
                    go_quote(self.set.root_name())
                ),
            )),
            Some(tree) => self.enter(cmd.pos, context).and_then(|()| {
                let saved_tree = std::mem::replace(&mut self.tree, tree);
                let saved_vars = std::mem::replace(
                    &mut self.vars,
                    vec![Var::new("$".into(), values[1].clone())],
                );
                let saved_out = std::mem::take(&mut self.out);
                let outer_iface = std::mem::replace(&mut self.dot_iface, false);
                let result = self.walk(&tree.root, &values[1]);
                self.dot_iface = outer_iface;
                let text = std::mem::replace(&mut self.out, saved_out);
                self.tree = saved_tree;
                self.vars = saved_vars;
                self.leave();
                match result {
                    Ok(_) => Ok(Value::from(text)),
                    Err(inner) => Err(fail(self, inner.to_string())),
                }
            }),
        };
        if let Some(count) = self.budget.included.get_mut(name.as_str()) {
            *count -= 1;
        }
        result
    }

    /// Helm's `tpl TEXT DOT`: `TEXT` parsed as template `gotpl` in a copy of the set and executed.
    pub(super) fn tpl(
        &mut self,
        cmd: &Cmd,
        context: &dyn Fn() -> String,
        values: Vec<Value>,
    ) -> Res<Value> {
        let text = builtins::text_arg(&values[0]).map_err(|m| self.error(cmd.pos, context(), m))?;
        let quoted = go_quote(&text);
        let mut set = self.set.clone();
        let name = self.set.root_name().to_string();
        if let Err(e) = set.parse(&name, &text) {
            return Err(self.error(
                cmd.pos,
                context(),
                format!("error calling tpl: cannot parse template {quoted}: {e}"),
            ));
        }
        let Some(tree) = set.tree(&name) else {
            return Ok(Value::from(""));
        };
        self.enter(cmd.pos, context)?;
        let result = execute(&set, tree, &values[1], self.budget);
        self.leave();
        match result {
            Ok(out) => Ok(Value::from(out.replace("<no value>", ""))),
            Err(inner) => Err(self.error(
                cmd.pos,
                context(),
                format!(
                    "error calling tpl: error during tpl function execution for {quoted}: {inner}"
                ),
            )),
        }
    }
}
