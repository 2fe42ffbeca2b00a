/// Input rules the schema does not express, checked before a statement is sent.
enum Validate {
    /// A display name: trimmed, 1 to 200 characters, no control characters and no bidirectional
    /// controls (which make a name read otherwise than it is, in a listing or a mail).
    static func name(_ value: String, field: String = "name") throws -> String {
        let trimmed = value.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw StoreError.invalid(field, "\(field) must not be empty") }
        guard trimmed.count <= 200 else { throw StoreError.invalid(field, "\(field) must be at most 200 characters") }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError.invalid(field, "\(field) must not contain control characters")
        }
        guard !BidiControls.occur(in: trimmed) else {
            throw StoreError.invalid(field, "\(field) must not contain bidirectional control characters")
        }
        return trimmed
    }

    /// Optional free text: trimmed, `nil` when empty, at most `limit` characters.
    static func optionalText(_ value: String?, field: String, limit: Int) throws -> String? {
        guard let value = value?.trimmingWhitespace(), !value.isEmpty else { return nil }
        guard value.count <= limit else { throw StoreError.invalid(field, "\(field) must be at most \(limit) characters") }
        return value
    }
}
