//! `cargo fuzz run query_encoder` (libFuzzer), or, built without `--cfg fuzzing`,
//! the stable harness over the same target (see `amocrm_fuzz::stable`).
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    amocrm_fuzz::targets::query_encoder(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    amocrm_fuzz::stable::main(
        "query_encoder",
        amocrm_fuzz::checks::QUERY_ENCODER,
        amocrm_fuzz::targets::query_encoder,
    )
}
