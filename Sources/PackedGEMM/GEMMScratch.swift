#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One thread's packing buffers for `PackedGEMM.multiply`, allocated on the thread's first
/// multiplication and freed when the thread ends.
final class GEMMScratch {
    /// Packed A: MC×KC floats (plus slack), 64-byte aligned.
    let a: UnsafeMutablePointer<Float>
    /// Packed B: KC×NC floats, 64-byte aligned.
    let b: UnsafeMutablePointer<Float>
    /// One MR×NR register tile of floats and one of Doubles, 64-byte aligned (a whole vector store
    /// never splits a line), for `exactChunkProducts`.
    let tile: UnsafeMutablePointer<Float>
    let totals: UnsafeMutablePointer<Double>

    private init() {
        // Slack of one vector and eight floats: the vector packing of A writes up to a vector (or a
        // row of an 8×8 block) past a panel's end.
        a = Self.zeroedFloats(PackedGEMM.mc * PackedGEMM.kc + PackedGEMM.Lanes.scalarCount + 8)
        b = Self.zeroedFloats(PackedGEMM.kc * PackedGEMM.nc)
        tile = Self.zeroedFloats(PackedGEMM.mr * PackedGEMM.nr)
        totals = UnsafeMutableRawPointer.allocate(
            byteCount: PackedGEMM.mr * PackedGEMM.nr * MemoryLayout<Double>.stride, alignment: 64
        ).initializeMemory(as: Double.self, repeating: 0, count: PackedGEMM.mr * PackedGEMM.nr)
    }

    deinit {
        UnsafeMutableRawPointer(a).deallocate()
        UnsafeMutableRawPointer(b).deallocate()
        UnsafeMutableRawPointer(tile).deallocate()
        UnsafeMutableRawPointer(totals).deallocate()
    }

    /// `count` floats set to zero, on a 64-byte boundary (a cache line: whole vector loads of a
    /// panel never split one); released with `deallocate`.
    private static func zeroedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
    }

    /// The key of the thread-local slot; its destructor releases a thread's scratch when the thread ends.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<GEMMScratch>.fromOpaque(pointer).release() }
        }
        precondition(status == 0, "pthread_key_create failed with status \(status) while setting up GEMM scratch.")
        return key
    }()

    /// The calling thread's scratch, created on first use.
    static var current: GEMMScratch {
        if let pointer = pthread_getspecific(key) {
            return Unmanaged<GEMMScratch>.fromOpaque(pointer).takeUnretainedValue()
        }
        let scratch = GEMMScratch()
        pthread_setspecific(key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }
}
