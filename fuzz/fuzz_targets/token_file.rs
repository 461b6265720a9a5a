//! `cargo fuzz run token_file` (libFuzzer), or, built without `--cfg fuzzing`,
//! the stable harness over the same target (see `amocrm_fuzz::stable`).
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    amocrm_fuzz::targets::token_file(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    amocrm_fuzz::stable::main(
        "token_file",
        amocrm_fuzz::checks::TOKEN_FILE,
        amocrm_fuzz::targets::token_file,
    )
}
