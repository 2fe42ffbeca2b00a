extension RawRepresentable where RawValue == String {
    /// The case stored as `value` in `column`. The schema's checks allow only known cases, so
    /// another value means the database is newer than this binary.
    init(stored value: String, column: String) throws {
        guard let known = Self(rawValue: value) else {
            throw StoreError(.migration, "the database holds a \(column) this version does not know")
        }
        self = known
    }
}
