//! What the CPU runs: the encoder's hot loops are compiled a second time for
//! x86-64-v3 (AVX2, BMI1/2) and chosen at run time, so one wheel serves
//! every x86-64 machine.

/// Whether this CPU runs x86-64-v3 code (AVX2, BMI1/2, LZCNT, POPCNT): the
/// features the `#[target_feature]` copies of the hot loops are compiled for.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn x86_v3() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("lzcnt")
        && std::arch::is_x86_feature_detected!("popcnt")
}
