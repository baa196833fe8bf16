//! What the CPU runs: the encoder's hot loops are compiled a second time for
//! x86-64-v3 (AVX2, BMI1/2) and chosen at run time, so one wheel serves
//! every x86-64 machine.

#[cfg(target_arch = "x86_64")]
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that makes a process run the portable copies on
/// any CPU (`FASTLLM_PORTABLE=1`, read once). The profile-guided build runs
/// its workload both ways, so that neither copy is compiled as code that
/// never runs; and a user can rule the SIMD copies out of a result.
pub const PORTABLE_ENV: &str = "FASTLLM_PORTABLE";

/// Whether this process runs the x86-64-v3 copies (AVX2, BMI1/2, LZCNT,
/// POPCNT: the features their `#[target_feature]` names): the CPU has them
/// and [`PORTABLE_ENV`] does not say otherwise.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn x86_v3() -> bool {
    static CHOICE: AtomicU8 = AtomicU8::new(0);
    decided_once(&CHOICE, decide_x86_v3)
}

/// `decide()`, asked once and kept in `choice` (0: not decided yet; 1: no; 2: yes).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn decided_once(choice: &AtomicU8, decide: fn() -> bool) -> bool {
    match choice.load(Ordering::Relaxed) {
        0 => {
            let yes = decide();
            choice.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        choice => choice == 2,
    }
}

#[cfg(target_arch = "x86_64")]
#[cold]
fn decide_x86_v3() -> bool {
    let portable = std::env::var_os(PORTABLE_ENV).is_some_and(|v| v == "1");
    !portable
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("lzcnt")
        && std::arch::is_x86_feature_detected!("popcnt")
}

/// Whether this process may use AVX-512's byte-masked loads (AVX-512BW and
/// VL) beside the x86-64-v3 copies: only where it runs those.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn x86_masked_loads() -> bool {
    static CHOICE: AtomicU8 = AtomicU8::new(0);
    decided_once(&CHOICE, || {
        x86_v3() && std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vl")
    })
}

/// Which copies this process runs, in words (for the tests and bug reports).
/// Only the Python module's testing functions ask, so a build without them does not.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub fn encoder_copy() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if x86_v3() {
        return "x86-64-v3";
    }
    "portable"
}
