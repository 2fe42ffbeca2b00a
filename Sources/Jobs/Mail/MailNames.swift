import Foundation
import Store

/// Names people choose (their own, a job's, a project's) placed into mails. A mail to someone
/// who never asked for it (an invitation) must not carry a stranger's advert, so anything that
/// reads as a link (a scheme, `www.`, a domain name, an address) is taken out, and bidirectional
/// controls, which could make the text read otherwise than it is, are dropped.
enum MailNames {
    /// The keys of templates' data that hold names.
    static let keys: Set<String> = ["name", "inviter", "job", "project"]

    /// `name` without links and bidirectional controls, whitespace collapsed.
    static func plain(_ name: String) -> String {
        let scalars = name.unicodeScalars.filter { !BidiControls.scalars.contains($0.value) }
        let words = String(String.UnicodeScalarView(scalars)).split(whereSeparator: \.isWhitespace).filter { !looksLikeLink($0) }
        let plain = words.joined(separator: " ")
        return plain.isEmpty ? "someone" : plain
    }

    static func looksLikeLink(_ word: Substring) -> Bool {
        // Compatibility forms (fullwidth letters and dots) and the dots browsers take in domain
        // names read as a link too; punctuation around a word ("spam.com.", "(spam.com)") does
        // not make it less of one.
        let lower = String(word).precomposedStringWithCompatibilityMapping.lowercased()
            .replacingOccurrences(of: "\u{3002}", with: ".").replacingOccurrences(of: "\u{FF61}", with: ".")
            .trimmingCharacters(in: .punctuationCharacters.union(.symbols))
        if lower.contains("://") || lower.hasPrefix("www.") || lower.contains("@") { return true }
        // A dot between two letters or digits, ending in a top-level-domain-like run of letters:
        // "example.com", "spam.biz/x"; but not "v1.2" or "Dr." or "J.".
        let host = lower.split(separator: "/", maxSplits: 1).first ?? ""
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, let last = labels.last, last.count >= 2, last.allSatisfy({ $0.isLetter }) else { return false }
        return labels.allSatisfy { !$0.isEmpty }
    }
}
