#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_filter_fuzz::targeted::check(data));
