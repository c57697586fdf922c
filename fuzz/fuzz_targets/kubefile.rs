#![no_main]
//! Fuzzes the Kubefile parser: it never panics, and whatever parses prints to text that parses to the same tree
//! (the property is `formats::kubefile::check_round_trip`, which `cargo test -p formats` also runs over
//! `fuzz/corpus/kubefile`). Evaluation of parsed files must not panic either.

use formats::kubefile::{EvalOptions, check_round_trip, evaluate, parse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = check_round_trip(text) {
        panic!("{e}");
    }
    if let Ok(kubefile) = parse(text) {
        let _ = evaluate(&kubefile, &EvalOptions::default());
    }
});
