/// Float32 ⇄ IEEE binary16 conversion and the half-precision sum used by `--compression fp16`.
///
/// Halves travel as `UInt16` bit patterns (MPI has no float16 type). Conversion rounds to nearest,
/// ties to even (Swift's `Float16(_:)`), so every float16-representable value survives a round
/// trip exactly; magnitudes above 65504 become ±inf and those below 2^-24 flush to ±0 (2^-24 …
/// 2^-14 are subnormal, with an absolute precision of 2^-25).
///
/// The sum of two halves is done in Float32 and rounded once to half: a float sum of two halves
/// is exact unless their exponents differ by more than 13, so this is the correctly rounded half
/// sum in all but rare cases (where it may differ by one half ulp). Summing P ranks therefore
/// rounds P − 1 times on top of the conversion's one rounding (u = 2^-11 each, relative).
public enum HalfPrecision {
    /// Writes `count` halves to `output` from floats in `input`.
    ///
    /// - Parameters:
    ///   - output: (count) binary16 bit patterns, written.
    ///   - input: (count) Float32, read.
    ///   - count: elements.
    public static func compress(_ output: UnsafeMutablePointer<UInt16>, _ input: UnsafePointer<Float>, _ count: Int) {
        for i in 0 ..< count { output[i] = Float16(input[i]).bitPattern }
    }

    /// Writes `count` floats to `output`: the halves of `input` times `scale`.
    ///
    /// - Parameters:
    ///   - output: (count) Float32, written.
    ///   - input: (count) binary16 bit patterns, read.
    ///   - scale: multiplies every value after conversion (1/B for gradients).
    ///   - count: elements.
    public static func decompress(_ output: UnsafeMutablePointer<Float>, _ input: UnsafePointer<UInt16>, scale: Float, _ count: Int) {
        for i in 0 ..< count { output[i] = Float(Float16(bitPattern: input[i])) * scale }
    }

    /// Adds `count` halves of `input` into `inout` (both binary16 bit patterns), each sum done in
    /// Float32 and rounded to half: the reduction operator of the compressed allreduce.
    ///
    /// - Parameters:
    ///   - accumulator: (count) halves, read and written.
    ///   - input: (count) halves, read.
    ///   - count: elements.
    public static func add(_ accumulator: UnsafeMutablePointer<UInt16>, _ input: UnsafePointer<UInt16>, _ count: Int) {
        for i in 0 ..< count {
            let sum = Float(Float16(bitPattern: accumulator[i])) + Float(Float16(bitPattern: input[i]))
            accumulator[i] = Float16(sum).bitPattern
        }
    }
}
