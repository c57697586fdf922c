#![no_main]
//! Fuzzes `Reference::parse` on arbitrary UTF-8: it must never panic, and whatever it accepts must print to a
//! string that parses back to the same reference (and so must its familiar short form).
use formats::reference::Reference;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = Reference::parse(text) else {
        return;
    };
    let full = reference.to_string();
    assert_eq!(
        Reference::parse(&full).as_ref(),
        Ok(&reference),
        "display `{full}` of `{text}` did not parse back"
    );
    let familiar = reference.familiar();
    assert_eq!(
        Reference::parse(&familiar).as_ref(),
        Ok(&reference),
        "familiar form `{familiar}` of `{text}` did not parse back"
    );
});
