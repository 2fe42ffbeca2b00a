/// Replaces secret values in log lines with `***` before a line is stored or sent anywhere.
///
/// Values shorter than ``minimumLength`` are not masked: a one- or two-character "secret" would
/// turn every log into asterisks and protects nothing. Longer values are replaced longest
/// first, so a secret that contains another is masked whole.
struct SecretMasker: Sendable {
    static let minimumLength = 4
    static let mask = "***"

    let values: [String]

    init(_ values: [String]) {
        self.values = Array(Set(values.filter { $0.count >= Self.minimumLength })).sorted { $0.count > $1.count }
    }

    func mask(_ line: String) -> String {
        var line = line
        for value in values where line.contains(value) {
            line = line.replacing(value, with: Self.mask)
        }
        return line
    }
}
