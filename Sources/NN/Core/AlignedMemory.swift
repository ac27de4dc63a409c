/// Float buffers that start on a 64-byte boundary (a cache line; whole AVX loads never split
/// one): the parameter arena, the GEMM's packing scratch, the kernel benchmark's operands.
public enum AlignedMemory {
    /// `count` floats set to zero, on a 64-byte boundary; release with `free`.
    public static func zeroedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
    }

    /// Releases what `zeroedFloats` returned.
    public static func free(_ pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).deallocate()
    }
}
