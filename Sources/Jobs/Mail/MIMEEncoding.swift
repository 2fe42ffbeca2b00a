import Foundation

/// The encoders ``MailMessage`` writes with: RFC 2047 encoded-words, header folding,
/// quoted-printable bodies and RFC 5322 dates. Internal so tests can check each piece alone.
enum MIMEEncoding {
    /// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters and MUST be at most 998.
    static let preferredLineLength = 78
    static let maxLineLength = 998

    /// The longest encoded-word this writes. RFC 2047 allows 75; 60 leaves room for `Subject: ` or
    /// `To: ` before the first word, so every line that holds encoded-words stays within 76.
    static let encodedWordLength = 60

    // MARK: - Header text

    /// Returns `text` with every control character replaced by a space (a CRLF pair by one space).
    ///
    /// Used for the subject and display names: a header value is one logical line, and unfolding
    /// turns a line break into a space anyway, so this is what a reader would have seen; it also
    /// means no CR or LF from caller data can ever reach the header block.
    static func singleLine(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            defer { previousWasCR = scalar == "\r" }
            if scalar == "\n" && previousWasCR { continue }
            result.append(isControl(scalar) ? " " : scalar)
        }
        return String(result)
    }

    /// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// The tokens of an unstructured value (such as a subject) that has no control characters.
    ///
    /// Printable ASCII with single spaces is written as it is, split at the spaces so it can be
    /// folded. Anything else — non-ASCII, leading, trailing or repeated spaces (which folding
    /// could not keep), or text that looks like an encoded-word (`=?`) — is written as
    /// encoded-words, which carry every character exactly.
    static func unstructuredTokens(_ text: String) -> [String] {
        if text.isEmpty { return [] }
        let bytes = text.utf8
        let plain =
            bytes.allSatisfy { (0x20...0x7E).contains($0) }
            && bytes.first != 0x20 && bytes.last != 0x20
            && !text.contains("  ") && !text.contains("=?")
        // A word too long to fold would make a line past 998; encoded-words can be split anywhere.
        let words = text.split(separator: " ")
        if plain && words.allSatisfy({ $0.utf8.count <= maxLineLength - 100 }) {
            return words.map(String.init)
        }
        return encodedWords(text)
    }

    /// The tokens of a display name (RFC 5322 phrase), control characters already removed.
    ///
    /// Plain words of atext are written as atoms; a name with specials (`,` `"` `<` `@` `.` …) or
    /// non-ASCII is written as encoded-words rather than a quoted-string, which mail readers decode
    /// the same way and which needs no escaping rules.
    static func phraseTokens(_ name: String) -> [String] {
        let words = name.split(separator: " ")
        let atoms =
            !name.hasPrefix(" ") && !name.hasSuffix(" ") && !name.contains("  ")
            && words.allSatisfy { $0.utf8.allSatisfy(MailAddress.isAtext) && !$0.contains("=?") }
        return atoms ? words.map(String.init) : encodedWords(name)
    }

    /// `text` as RFC 2047 `B` encoded-words in UTF-8, each at most ``encodedWordLength`` long.
    ///
    /// Words are cut between Unicode scalars, never inside one's UTF-8 bytes (RFC 2047 §5: each
    /// encoded-word must hold whole characters).
    static func encodedWords(_ text: String) -> [String] {
        let prefix = "=?UTF-8?B?"
        let suffix = "?="
        // Base64 turns 3 bytes into 4 characters.
        let maxBytes = (encodedWordLength - prefix.count - suffix.count) / 4 * 3
        var words: [String] = []
        var chunk: [UInt8] = []
        func flush() {
            guard !chunk.isEmpty else { return }
            words.append(prefix + Data(chunk).base64EncodedString() + suffix)
            chunk.removeAll(keepingCapacity: true)
        }
        for scalar in text.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            if chunk.count + encoded.count > maxBytes { flush() }
            chunk += encoded
        }
        flush()
        return words
    }

    /// `Name: token token…` ending in CRLF, folded (CRLF + space) between tokens to keep lines at
    /// most 78 characters where tokens allow.
    ///
    /// - Throws: ``MailFormatError/headerTooLong(name:)`` if a line would still pass 998.
    static func header(_ name: String, _ tokens: [String]) throws(MailFormatError) -> String {
        var result = name + ":"
        var lineLength = result.utf8.count
        for (index, token) in tokens.enumerated() {
            let length = token.utf8.count
            // Never fold before the first token: "Name:" alone on a line helps no one.
            if index > 0 && lineLength + 1 + length > preferredLineLength {
                result += "\r\n " + token
                lineLength = 1 + length
            } else {
                result += " " + token
                lineLength += 1 + length
            }
            if lineLength > maxLineLength { throw .headerTooLong(name: name) }
        }
        if tokens.isEmpty { result += " " }
        return result + "\r\n"
    }

    // MARK: - Body

    /// `text` as quoted-printable (RFC 2045 §6.7) of its UTF-8 bytes, with CRLF line breaks.
    ///
    /// Every line break (CRLF, CR or LF) becomes a CRLF hard break; encoded lines are at most 76
    /// characters, using `=` soft breaks. `=` itself is always written as `=3D`, so the output
    /// never contains `=_`, which is what makes ``MailMessage``'s boundaries collision-free.
    static func quotedPrintable(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + text.utf8.count / 8)
        for (lineIndex, line) in lines(of: text).enumerated() {
            if lineIndex > 0 { out += [0x0D, 0x0A] }
            var lineLength = 0
            for (index, byte) in line.enumerated() {
                let isLast = index == line.count - 1
                // Trailing spaces and tabs are encoded: transports may strip them (RFC 2045 rule 3).
                let literal =
                    (0x21...0x7E).contains(byte) && byte != UInt8(ascii: "=")
                    || ((byte == 0x20 || byte == 0x09) && !isLast)
                let width = literal ? 1 : 3
                // 76 characters per line; a line that goes on needs one of them for the soft "=".
                if lineLength + width > (isLast ? 76 : 75) {
                    out += [UInt8(ascii: "="), 0x0D, 0x0A]
                    lineLength = 0
                }
                if literal {
                    out.append(byte)
                } else {
                    out += [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
                }
                lineLength += width
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The UTF-8 lines of `text`, split at CRLF, CR or LF.
    static func lines(of text: String) -> [[UInt8]] {
        var lines: [[UInt8]] = [[]]
        var previousWasCR = false
        for byte in text.utf8 {
            defer { previousWasCR = byte == 0x0D }
            if byte == 0x0A && previousWasCR { continue }
            if byte == 0x0D || byte == 0x0A {
                lines.append([])
            } else {
                lines[lines.count - 1].append(byte)
            }
        }
        return lines
    }

    // MARK: - Date

    /// `date` in RFC 5322 §3.3 form, in UTC: `Thu, 01 Jan 2026 12:00:00 +0000`.
    ///
    /// Computed from the Unix time rather than with a date formatter, so neither the locale nor
    /// the time zone of the process can change it.
    static func rfc5322Date(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        // 1970-01-01 was a Thursday.
        let weekday = ((days % 7) + 7 + 4) % 7
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekdays[Int(weekday)]), \(two(day)) \(months[Int(month) - 1]) \(year) "
            + "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) +0000"
    }

    /// Proleptic Gregorian year, month (1–12) and day for a count of days since 1970-01-01
    /// (Howard Hinnant's `civil_from_days`).
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
