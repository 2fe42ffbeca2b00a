import Foundation

extension [String: String] {
    /// The map as a JSON object, for a `jsonb` parameter.
    func jsonText() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }

    /// The members of a JSON object; a value that is not a string becomes its JSON text, so
    /// rows written by hand or by older versions still read.
    init(jsonObject text: String) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw StoreError(.migration, "the database holds a JSON value that is not an object where one is expected")
        }
        self.init(minimumCapacity: object.count)
        for (key, value) in object {
            if let string = value as? String {
                self[key] = string
            } else {
                let data = try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])
                self[key] = String(decoding: data, as: UTF8.self)
            }
        }
    }
}
