import Foundation

// `UUID` encodes itself in uppercase, while the database, job payloads, WebSocket messages,
// cursors and links all write ids in lowercase. These overloads are more specific than
// `encode<T: Encodable>`, so every synthesized `Encodable` in this module and in the modules
// that import it (the API's records and views) writes ids in lowercase: one casing everywhere.
extension KeyedEncodingContainer {
    /// Encodes an id in lowercase.
    public mutating func encode(_ value: UUID, forKey key: Key) throws {
        try encode(value.uuidString.lowercased(), forKey: key)
    }

    /// Encodes an optional id in lowercase, leaving it out when it is `nil`.
    public mutating func encodeIfPresent(_ value: UUID?, forKey key: Key) throws {
        guard let value else { return }
        try encode(value.uuidString.lowercased(), forKey: key)
    }
}
