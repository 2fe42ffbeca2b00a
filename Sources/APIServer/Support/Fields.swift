/// Rules on request-body fields that the body's type cannot state: a field a create needs, a
/// field an update may not carry. Both are a 422 naming the field.
enum Fields {
    /// The value of a field a create needs.
    static func required<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else { throw Problem.invalid([Problem.FieldError(field: field, message: "is required")]) }
        return value
    }

    /// Fails when an update carries a field that cannot change.
    static func unchangeable(_ value: (some Any)?, _ field: String) throws {
        guard value == nil else { throw Problem.invalid([Problem.FieldError(field: field, message: "cannot be changed")]) }
    }
}
