//! `cargo fuzz run amo_answer` (libFuzzer), or, built without `--cfg fuzzing`,
//! the stable harness over the same target (see `amocrm_fuzz::stable`).
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    amocrm_fuzz::targets::amo_answer(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    amocrm_fuzz::stable::main(
        "amo_answer",
        amocrm_fuzz::checks::AMO_ANSWER,
        amocrm_fuzz::targets::amo_answer,
    )
}
