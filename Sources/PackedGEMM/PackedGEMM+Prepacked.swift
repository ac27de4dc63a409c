// A whole op(A) packed once and multiplied many times: a convolution multiplies the same weight
// by every sample's column matrix, so packing it once per layer call instead of once per sample
// saves the A packing of all samples but the first.
//
// Layout of a whole packed op(A) (m×k): the depth blocks of `multiply` one after the other, each
// holding its row blocks one after the other, each row block in the packed-A panel layout of
// `packA` (ceil(height/MR) panels of [depth][MR]). Row blocks are multiples of MR tall except the
// last, so the block at (row ic, depth pc, depth-block size kcb) starts at
// `pc · roundUp(m, MR) + ic · kcb`.

extension PackedGEMM {
    /// The floats that `pack(_:_:lda:transA:m:k:)` writes for an `m×k` op(A): whole MR-tall
    /// panels over all of k, plus the slack that the vector packing may write past the end.
    public static func packedCount(m: Int, k: Int) -> Int {
        (m + mr - 1) / mr * mr * k + Lanes.scalarCount + 8
    }

    /// Packs all of op(A) (`m×k`) into `dst` in the blocks that `multiply(_:ldc:packedA:…)` reads.
    ///
    /// The blocks are the ones `multiply(_:ldc:_:lda:transA:…)` packs for the same m and k, packed
    /// the same way, so a product from the packed A has the same bits as one from A itself.
    ///
    /// - dst: `packedCount(m:k:)` floats (written).
    /// - a: `op(A)`, stored `m×k` (or `k×m` when `transA`) with row stride `lda` (read).
    public static func pack(
        _ dst: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        m: Int, k: Int
    ) {
        if m == 0 || k == 0 { return }
        let depthBlock = balancedBlock(k, limit: kc, multiple: 4)
        let rowBlock = balancedBlock(m, limit: mc, multiple: mr)
        // Blocks in ascending address order: the vector packing may write a little past a block's
        // end, into the next block (packed afterwards) or the slack.
        var pc = 0
        while pc < k {
            let kcb = min(depthBlock, k - pc)
            var ic = 0
            while ic < m {
                let mcb = min(rowBlock, m - ic)
                packA(
                    dst + wholeOffset(m: m, row: ic, column: pc, depth: kcb), a, lda: lda, transA: transA,
                    storedWidth: transA ? m : k, row: ic, column: pc, height: mcb, depth: kcb)
                ic += mcb
            }
            pc += kcb
        }
    }

    /// `multiply` with op(A) already packed by `pack(_:_:lda:transA:m:k:)` for the same m and k:
    /// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, with the same bits as `multiply`
    /// from A itself.
    ///
    /// - packedA: the packed op(A) (read). Other arguments as in `multiply`.
    public static func multiply(
        _ c: UnsafeMutablePointer<Float>, ldc: Int, packedA: UnsafePointer<Float>,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        run(
            c, ldc: ldc, packedA, lda: max(k, 1), transA: false, prepackedA: packedA, b, ldb: ldb, transB: transB,
            m: m, n: n, k: k, alpha: alpha, beta: beta)
    }

    /// Where the packed block of op(A) starting at (`row`, `column`) with depth `depth` lies in a
    /// whole packed op(A) of height `m` (see the layout above).
    @inline(__always)
    static func wholeOffset(m: Int, row: Int, column: Int, depth: Int) -> Int {
        column * ((m + mr - 1) / mr * mr) + row * depth
    }
}
