#![no_main]
//! Fuzzes the Kubefile parser: it never panics, and whatever parses prints to text that parses to the same tree.
//! Evaluation of parsed files must not panic either.

use formats::kubefile::{EvalOptions, evaluate, parse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(kubefile) = parse(text) else {
        return;
    };
    let printed = kubefile.to_string();
    match parse(&printed) {
        Ok(back) => assert!(
            back.same_content(&kubefile),
            "round trip changed the tree\ninput: {text:?}\nprinted: {printed:?}"
        ),
        Err(e) => panic!("printed text does not parse: {e}\ninput: {text:?}\nprinted: {printed:?}"),
    }
    let _ = evaluate(&kubefile, &EvalOptions::default());
});
