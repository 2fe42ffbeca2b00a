/// Builds bytes in the SSH wire encoding of RFC 4251 §5, which OpenSSH's key files reuse.
struct SSHWireWriter {
    private(set) var bytes: [UInt8] = []

    /// A `uint32`, big-endian.
    mutating func writeUInt32(_ value: UInt32) {
        bytes.append(contentsOf: [
            UInt8(truncatingIfNeeded: value >> 24),
            UInt8(truncatingIfNeeded: value >> 16),
            UInt8(truncatingIfNeeded: value >> 8),
            UInt8(truncatingIfNeeded: value),
        ])
    }

    /// A `string`: arbitrary bytes behind their `uint32` length.
    mutating func writeString(_ value: some Collection<UInt8>) {
        writeUInt32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// A `string` holding text as UTF-8.
    mutating func writeString(_ text: String) {
        writeString(Array(text.utf8))
    }

    /// An `mpint` for a non-negative integer given as its big-endian magnitude.
    ///
    /// The wire form is minimal two's complement, so readers (OpenSSH among them) reject a
    /// redundant leading zero but need one wherever the top bit would otherwise read as a sign.
    mutating func writeMPInt(unsignedBigEndian magnitude: some Collection<UInt8>) {
        let significant = magnitude.drop { $0 == 0 }
        guard let first = significant.first else {
            // Zero is the empty string, not a single zero byte.
            writeUInt32(0)
            return
        }
        if first & 0x80 != 0 {
            writeUInt32(UInt32(significant.count + 1))
            bytes.append(0)
        } else {
            writeUInt32(UInt32(significant.count))
        }
        bytes.append(contentsOf: significant)
    }

    /// Bytes as they are, with no length in front.
    mutating func writeRaw(_ value: some Collection<UInt8>) {
        bytes.append(contentsOf: value)
    }
}
