import Foundation

/// The one way Harrow compares email addresses: whitespace trimmed, Unicode NFKC, case-folded.
/// A login's lookup, its rate-limit counters and a link's binding all use it, so two spellings
/// of one address can never be two accounts to one check and one to another.
public enum EmailAddress {
    /// `text` trimmed and in NFKC, case kept: what the store compares (`lower()` on both sides).
    public static func normalized(_ text: String) -> String {
        text.trimmingWhitespace().precomposedStringWithCompatibilityMapping
    }

    /// `text` normalized and lowercased: the key of counters and bindings.
    public static func canonical(_ text: String) -> String {
        normalized(text).lowercased()
    }
}
