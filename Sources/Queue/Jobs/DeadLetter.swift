import FoundationEssentials

/// A dead-lettered job: the job's fields as they were, plus why and when it died.
///
/// Stored in `harrow:{queue}:dead` as a JSON object of strings: the envelope fields
/// (`payload` as a JSON string) and `error`, `failed_at` (ms), `worker`.
public struct DeadLetter: Sendable, Hashable {
    /// The job's fields as stored, without the dead-letter fields.
    public var fields: [String: String]
    public var error: String
    /// When it was dead-lettered, ms since the epoch.
    public var failedAt: Int64
    /// The worker that gave up on it (or the reclaimer that did).
    public var worker: String
    /// The exact stored JSON, used to remove this very record from the list.
    public var raw: String

    public var id: String { fields["id"] ?? "" }
    public var type: String { fields["type"] ?? "" }
    public var attempt: Int { fields["attempt"].flatMap { Int($0) } ?? 0 }
    public var payload: String { fields["payload"] ?? "" }

    /// Decodes a stored record; a record that is not a JSON object of strings is kept whole
    /// under `payload` with an explanatory error, so nothing in the list is ever unreadable.
    public init(raw: String) {
        self.raw = raw
        var strings: [String: String]
        if let decoded = try? JSONDecoder().decode([String: JSONScalar].self, from: Data(raw.utf8)) {
            strings = decoded.mapValues(\.text)
        } else {
            strings = ["payload": raw, "error": "unreadable dead letter"]
        }
        self.error = strings.removeValue(forKey: "error") ?? ""
        self.failedAt = strings.removeValue(forKey: "failed_at").flatMap { Int64($0) } ?? 0
        self.worker = strings.removeValue(forKey: "worker") ?? ""
        self.fields = strings
    }

    /// Encodes a record for the dead list.
    static func encode(fields: [String: String], error: String, failedAt: Int64, worker: String) -> String {
        var record = fields
        record["error"] = error
        record["failed_at"] = String(failedAt)
        record["worker"] = worker
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(record)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// A JSON string, number, boolean or null, read as text: dead letters hold strings, but a
/// record written by hand may not.
private struct JSONScalar: Decodable {
    let text: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            text = string
        } else if let integer = try? container.decode(Int64.self) {
            text = String(integer)
        } else if let number = try? container.decode(Double.self) {
            text = String(number)
        } else if let flag = try? container.decode(Bool.self) {
            text = String(flag)
        } else if container.decodeNil() {
            text = ""
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a scalar")
        }
    }
}
