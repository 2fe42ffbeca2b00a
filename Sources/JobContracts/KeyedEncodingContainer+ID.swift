import Foundation

extension KeyedEncodingContainer {
    /// Encodes an id in lowercase, as the store writes ids (`UUID` alone encodes in uppercase),
    /// so that a payload names a record exactly as the database and the API do.
    mutating func encodeID(_ id: UUID, forKey key: Key) throws {
        try encode(id.uuidString.lowercased(), forKey: key)
    }
}
