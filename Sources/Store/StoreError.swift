/// What went wrong in the store, as a code the API maps to a status (duplicate → 409,
/// notFound → 404, conflict → 409, forbidden → 403, quotaExceeded → 403, invalid → 422) and a message that is safe
/// to show: it never carries SQL, bound values or secrets.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String

        /// A record with the same unique key exists.
        public static let duplicate = Code(name: "duplicate")
        /// The record, or one it refers to, does not exist (or is archived).
        public static let notFound = Code(name: "not found")
        /// The change contradicts the state of other records.
        public static let conflict = Code(name: "conflict")
        /// The caller may not make this change (a role check the store makes under its lock).
        public static let forbidden = Code(name: "forbidden")
        /// The user holds as many as one of their ``UserQuotas`` allows; ``StoreError/limit`` names it.
        public static let quotaExceeded = Code(name: "quota exceeded")
        /// The input breaks a rule of the schema.
        public static let invalid = Code(name: "invalid")
        /// The database's migrations do not match this binary's.
        public static let migration = Code(name: "migration")
        /// A secret could not be decrypted or encrypted.
        public static let crypto = Code(name: "crypto")

        public var description: String { name }
    }

    public var code: Code
    public var message: String
    /// The schema constraint that refused the change, when one did.
    public var constraint: String?
    /// The input field at fault, for a 422's field errors.
    public var field: String?
    /// The limit reached, for `quotaExceeded`: `max-organizations-per-user`, …
    public var limit: String?

    public init(_ code: Code, _ message: String, constraint: String? = nil, field: String? = nil, limit: String? = nil) {
        self.code = code
        self.message = message
        self.constraint = constraint
        self.field = field
        self.limit = limit
    }

    /// An input that breaks a rule, naming its field.
    public static func invalid(_ field: String, _ message: String) -> StoreError {
        StoreError(.invalid, message, field: field)
    }

    /// A record that does not exist (or is archived, or is not the caller's to see).
    public static func notFound(_ what: String) -> StoreError {
        StoreError(.notFound, "\(what) not found")
    }

    public var description: String { "\(code): \(message)" }
}
