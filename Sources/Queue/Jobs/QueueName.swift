/// Checks queue names before they become parts of Redis keys.
public enum QueueName {
    /// Queue names are 1–100 characters of letters, digits, `-`, `_`, `.` and `:`; braces would
    /// break the `{queue}` hash tag and whitespace would break the CLI.
    public static func validate(_ name: String) throws(QueueError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: ":")
        }
        guard !name.isEmpty, name.utf8.count <= 100, allowed else {
            throw QueueError(
                code: .invalidQueueName,
                message: "invalid queue name \"\(name.prefix(100))\": use 1-100 letters, digits, '-', '_', '.' or ':'")
        }
    }
}
