#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One thread's packing buffers for `GEMM.multiply`, allocated on the thread's first
/// multiplication and freed when the thread ends.
final class GEMMScratch {
    /// Packed A: MC×KC floats (plus slack), 64-byte aligned.
    let a: UnsafeMutablePointer<Float>
    /// Packed B: KC×NC floats, 64-byte aligned.
    let b: UnsafeMutablePointer<Float>

    private init() {
        // Eight floats of slack: the vector packing of A writes two floats past a panel's end.
        a = AlignedMemory.zeroedFloats(GEMM.mc * GEMM.kc + 8)
        b = AlignedMemory.zeroedFloats(GEMM.kc * GEMM.nc)
    }

    deinit {
        AlignedMemory.free(a)
        AlignedMemory.free(b)
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
