/// Reading the SSH wire format (RFC 4251 §5) as far as public key blobs need it.
public enum SSHWire {
    /// The first `string` of a blob: a public key blob's algorithm name, e.g. `ssh-ed25519`.
    public static func firstString(in blob: [UInt8]) -> String? {
        guard blob.count >= 4 else { return nil }
        let length = blob[0..<4].reduce(0) { ($0 << 8) | Int($1) }
        guard length > 0, length <= blob.count - 4 else { return nil }
        let bytes = blob[4..<(4 + length)]
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
