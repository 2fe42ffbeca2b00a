/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag, the text between the
/// first `{` and the next `}` when not empty, or else of the whole key, modulo 16384.
public enum ClusterSlot {
    /// How many slots a cluster has.
    public static let count = 16384

    /// The slot of `key`.
    public static func of(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { bytes in
            var start = 0
            var end = bytes.count
            if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
                let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
            {
                start = open + 1
                end = close
            }
            var crc: UInt16 = 0
            for index in start..<end {
                crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ bytes[index])]
            }
            return Int(crc) & (count - 1)
        }
    }

    private static let table: [UInt16] = (0..<256).map { byte in
        var crc = UInt16(byte) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
