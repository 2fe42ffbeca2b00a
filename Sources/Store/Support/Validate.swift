import Foundation

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

    /// Where a webhook notifier POSTs: an absolute `http` or `https` URL with a host, no
    /// credentials or fragment, no spaces or control characters, at most 2000 bytes. Whether
    /// its address may be reached (private networks) is the worker's policy, checked when it
    /// sends, since a name may resolve elsewhere by then.
    static func webhookURL(_ value: String, field: String = "url") throws -> String {
        let url = value.trimmingWhitespace()
        guard url.utf8.count <= 2000 else { throw StoreError.invalid(field, "\(field) must be at most 2000 bytes") }
        guard
            !url.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control }),
            let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else { throw StoreError.invalid(field, "\(field) must be an http or https URL with a host") }
        guard components.user == nil, components.password == nil else {
            throw StoreError.invalid(field, "\(field) must not hold credentials: the signature proves the sender")
        }
        guard components.fragment == nil else { throw StoreError.invalid(field, "\(field) must not have a fragment") }
        return url
    }
}
