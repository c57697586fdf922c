//! Cross-family tests of [`super::lookup`].

use super::{NAMES, lookup};

#[test]
fn every_listed_name_resolves_and_helm_removals_do_not() {
    for name in NAMES {
        assert!(lookup(name).is_some(), "{name}");
    }
    for removed in ["env", "expandenv", "nope"] {
        assert!(lookup(removed).is_none(), "{removed}");
    }
}

/// Functions left out of the exhaustive call test: slow by design (bcrypt, scrypt), or allocating as
/// much as asked (Go runs out of memory on the same input).
const NOT_FUZZED: &[&str] = &[
    "bcrypt",
    "htpasswd",
    "derivePassword",
    "until",
    "untilStep",
    "seq",
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "randBytes",
    "indent",
    "nindent",
    "repeat",
    "genPrivateKey",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
];

#[test]
fn no_function_panics_on_odd_arguments() {
    use crate::value::{Entries, Value};
    let odd = [
        Value::Nil,
        Value::Missing("x".into()),
        Value::Int(i64::MAX),
        Value::Int(i64::MIN),
        Value::Int(-1),
        Value::Float(f64::NAN),
        Value::Float(1e300),
        Value::from("é{["),
        Value::from(""),
        Value::from(vec![Value::Int(1), Value::Nil]),
        Value::from(Entries::new()),
    ];
    let mut arg_lists: Vec<Vec<Value>> = vec![Vec::new()];
    for a in &odd {
        arg_lists.push(vec![a.clone()]);
        for b in &odd {
            arg_lists.push(vec![a.clone(), b.clone()]);
            for c in odd.iter().step_by(2) {
                arg_lists.push(vec![a.clone(), b.clone(), c.clone()]);
            }
        }
    }
    for name in NAMES.iter().filter(|n| !NOT_FUZZED.contains(n)) {
        let f = lookup(name).expect("listed");
        for args in &arg_lists {
            // Errors are fine; panics are not.
            let _ = f(args.clone());
        }
    }
}
