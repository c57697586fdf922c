#![no_main]
//! Fuzzes how chart values are read and written: any text as a values file (YAML as Helm reads it) and as a
//! `--set` line never panics, and neither does reading back what `toYaml` prints. (Reading back need not give
//! the same values: Helm's `toYaml` itself prints `""` for strings holding C1 control characters.)

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(values) = charts::yaml::parse(text) {
        if let Ok(printed) = charts::yaml::to_yaml(&values) {
            let _ = charts::yaml::parse(&printed);
        }
    }
    let into = gotmpl::Value::empty_map();
    let _ = charts::strvals::parse_set(text, &into, charts::strvals::SetKind::Typed);
    let _ = charts::strvals::parse_set(text, &into, charts::strvals::SetKind::String);
});
