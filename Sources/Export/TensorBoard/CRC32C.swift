/// CRC-32C (Castagnoli), the checksum of TFRecord framing, and the mask TensorFlow applies to it.
///
/// Polynomial 0x1EDC6F41, reflected (0x82F63B78), initial value and final XOR 0xFFFFFFFF
/// (RFC 3720 §B.4): `crc32c("123456789") = 0xE3069283`.
public enum CRC32C {
    /// The reflected polynomial.
    static let polynomial: UInt32 = 0x82F6_3B78

    /// The CRC of every byte value, for the byte-at-a-time loop.
    static let table: [UInt32] = (0 ..< 256).map { byte in
        var crc = UInt32(byte)
        for _ in 0 ..< 8 { crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1 }
        return crc
    }

    /// The CRC-32C of `bytes`, one table look-up per byte.
    ///
    /// - Parameter bytes: the data.
    /// - Returns: the checksum.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// The plain reference: the same CRC one bit at a time, without a table.
    ///
    /// - Parameter bytes: the data.
    /// - Returns: the checksum.
    public static func referenceChecksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0 ..< 8 { crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// TensorFlow's masked CRC (`tensorflow/core/lib/hash/crc32c.h`): rotated right by 15 bits plus
    /// a constant, so that a CRC of data holding CRCs stays well distributed.
    ///
    /// - Parameter crc: a CRC-32C.
    /// - Returns: the masked value written in TFRecord framing.
    public static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
