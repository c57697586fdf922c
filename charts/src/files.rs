//! `.Files`: a chart's non-template files, with Helm's methods (`Get`, `GetBytes`, `Glob`, `Lines`,
//! `AsConfig`, `AsSecrets`).

use gotmpl::FuncResult;
use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use gotmpl::value::Entries;
use gotmpl::{Object, Value};

use crate::bridge;
use crate::chart::File;
use crate::glob::Pattern;

/// A set of files by path, as `.Files` and the result of `.Files.Glob`.
#[derive(Debug, Clone, Default)]
pub struct Files {
    files: BTreeMap<String, Rc<[u8]>>,
}

impl Files {
    /// The files of a chart (its `files`, not templates or subcharts).
    pub fn new(files: &[File]) -> Files {
        Files {
            files: files
                .iter()
                .map(|f| (f.name.clone(), f.data.clone()))
                .collect(),
        }
    }

    fn get(&self, name: &str) -> String {
        self.files
            .get(name)
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default()
    }

    fn glob(&self, pattern: &str) -> Files {
        // Helm falls back to `**` (every file) when the pattern does not compile.
        let pattern = Pattern::glob(pattern).or_else(|_| Pattern::glob("**"));
        let files = match pattern {
            Ok(p) => self
                .files
                .iter()
                .filter(|(n, _)| p.matches(n))
                .map(|(n, d)| (n.clone(), d.clone()))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        Files { files }
    }

    fn lines(&self, name: &str) -> Value {
        let Some(data) = self.files.get(name) else {
            return Value::from(Vec::<Value>::new());
        };
        let text = String::from_utf8_lossy(data);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Value::from(text.split('\n').map(Value::from).collect::<Vec<_>>())
    }

    /// A map of base names to `content(data)`, as YAML (Helm's `toYAML`: no trailing newline).
    fn as_yaml(&self, content: impl Fn(&[u8]) -> String) -> String {
        if self.files.is_empty() {
            return String::new();
        }
        let mut entries = Entries::new();
        for (name, data) in &self.files {
            let base = name.rsplit('/').next().unwrap_or(name);
            entries.insert(base.to_string(), Value::from(content(data)));
        }
        bridge::to_yaml(&Value::from(entries))
    }
}

fn one_string(name: &str, args: &[Value]) -> FuncResult<String> {
    match args {
        [Value::Str(s)] => Ok(s.to_string()),
        [other] => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )
        .into()),
        _ => Err(format!("wrong number of args for {name}: want 1 got {}", args.len()).into()),
    }
}

impl Object for Files {
    fn type_name(&self) -> &str {
        "common.Files"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "AsConfig" => Some(Value::from(
                self.as_yaml(|d| String::from_utf8_lossy(d).into_owned()),
            )),
            "AsSecrets" => Some(Value::from(self.as_yaml(|d| BASE64_STANDARD.encode(d)))),
            _ => None,
        }
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Option<FuncResult> {
        let result = match name {
            "Get" => one_string(name, &args).map(|n| Value::from(self.get(&n))),
            // Go's []byte: strings are what every function that takes it wants.
            "GetBytes" => one_string(name, &args).map(|n| Value::from(self.get(&n))),
            "Glob" => one_string(name, &args).map(|p| Value::Object(Rc::new(self.glob(&p)))),
            "Lines" => one_string(name, &args).map(|n| self.lines(&n)),
            "AsConfig" | "AsSecrets" if args.is_empty() => return self.field(name).map(Ok),
            _ => return None,
        };
        Some(result)
    }

    fn entries(&self) -> Option<Vec<(Value, Value)>> {
        let entries = self.files.iter().map(|(name, data)| {
            (
                Value::from(name.as_str()),
                Value::from(String::from_utf8_lossy(data).into_owned()),
            )
        });
        Some(entries.collect())
    }

    fn json(&self) -> Option<String> {
        // Go's map[string][]byte: sorted keys, bytes as base64.
        let mut out = String::from("{");
        for (i, (name, data)) in self.files.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gotmpl::encoding::json::write_json_string(&mut out, name, true);
            out.push(':');
            gotmpl::encoding::json::write_json_string(
                &mut out,
                &BASE64_STANDARD.encode(data),
                true,
            );
        }
        out.push('}');
        Some(out)
    }

    fn display(&self) -> String {
        let inner: Vec<String> = self
            .files
            .iter()
            .map(|(n, d)| {
                let bytes: Vec<String> = d.iter().map(|b| b.to_string()).collect();
                format!("{n}:[{}]", bytes.join(" "))
            })
            .collect();
        format!("map[{}]", inner.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Files {
        let f = |n: &str, d: &str| File {
            name: n.to_string(),
            data: Rc::from(d.as_bytes()),
        };
        Files::new(&[
            f("conf/a.txt", "one\ntwo\n"),
            f("conf/sub/b.txt", "b"),
            f("README.md", "hi"),
        ])
    }

    #[test]
    fn get_glob_and_lines_behave_as_helm() {
        let files = files();
        assert_eq!(files.get("README.md"), "hi");
        assert_eq!(files.get("missing"), "");
        assert_eq!(files.glob("conf/*").files.len(), 1);
        assert_eq!(files.glob("conf/**").files.len(), 2);
        assert_eq!(
            files.lines("conf/a.txt"),
            Value::from(vec![Value::from("one"), Value::from("two")])
        );
        assert_eq!(files.lines("nope"), Value::from(Vec::<Value>::new()));
    }
}
