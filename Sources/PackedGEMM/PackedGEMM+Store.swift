// The stores of a register tile into C, shared by every instruction set's tile: each target's
// `PackedGEMM+Tile.swift` sets `Lanes` (the vector type), `mr` and `nr`.

extension PackedGEMM {
    /// Writes the `rows×columns` corner of a parked `mr×nr` tile into C: alpha·tile + beta·C.
    ///
    /// - c: row stride `ldc` (written; read when beta != 0). tile: `[mr][nr]` (read).
    @inline(never)
    static func storeEdge(
        _ c: UnsafeMutablePointer<Float>, ldc: Int, _ tile: UnsafePointer<Float>,
        rows: Int, columns: Int, alpha: Float, beta: Float
    ) {
        for i in 0 ..< rows {
            let row = c + i * ldc, source = tile + i * nr
            if beta == 0 {
                for j in 0 ..< columns { row[j] = alpha * source[j] }
            } else {
                for j in 0 ..< columns { row[j] = alpha * source[j] + beta * row[j] }
            }
        }
    }

    /// Writes one vector of C: alpha·v + beta·C, reading C only when beta != 0.
    @inline(__always)
    static func storeHalfRow(_ c: UnsafeMutablePointer<Float>, _ v: Lanes, alpha: Float, beta: Float) {
        let p = UnsafeMutableRawPointer(c)
        var r = v * alpha
        if beta != 0 { r = r.addingProduct(Lanes(repeating: beta), p.loadUnaligned(as: Lanes.self)) }
        p.storeBytes(of: r, as: Lanes.self)
    }

    /// Writes two vectors of C (a full tile row of `nr` floats): alpha·(v0, v1) + beta·C.
    @inline(__always)
    static func storeRow(_ c: UnsafeMutablePointer<Float>, _ v0: Lanes, _ v1: Lanes, alpha: Float, beta: Float) {
        storeHalfRow(c, v0, alpha: alpha, beta: beta)
        storeHalfRow(c + Lanes.scalarCount, v1, alpha: alpha, beta: beta)
    }
}
