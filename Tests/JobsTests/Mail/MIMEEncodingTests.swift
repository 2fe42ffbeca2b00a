import Foundation
import Testing

@testable import Jobs

@Suite("MIME encoding")
struct MIMEEncodingTests {
    /// Decodes one `=?UTF-8?B?…?=` word, or nil if it is not one or not valid UTF-8 on its own.
    static func decodeWord(_ word: String) -> String? {
        guard word.hasPrefix("=?UTF-8?B?"), word.hasSuffix("?=") else { return nil }
        guard let data = Data(base64Encoded: String(word.dropFirst(10).dropLast(2))) else { return nil }
        return String(validating: data, as: UTF8.self)
    }

    @Test(
        "encoded-words carry the text exactly, whole characters per word, within 60 characters",
        arguments: [
            "Grüße",
            "Doe, Jane",
            String(repeating: "日本語のテキスト", count: 10),
            String(repeating: "👩‍👩‍👧‍👦 family ", count: 8),
            "  leading and trailing  ",
        ])
    func encodedWordsRoundTrip(_ text: String) throws {
        let words = MIMEEncoding.encodedWords(text)
        #expect(words.allSatisfy { $0.utf8.count <= 60 })
        let decoded = try words.map { try #require(Self.decodeWord($0), "\($0) is not a whole-character word") }
        #expect(decoded.joined() == text)
    }

    @Test("subjects: plain ASCII stays readable, anything else is encoded")
    func unstructured() {
        #expect(MIMEEncoding.unstructuredTokens("Your order has shipped") == ["Your", "order", "has", "shipped"])
        #expect(MIMEEncoding.unstructuredTokens("") == [])
        for text in ["Grüße", "two  spaces", " leading", "trailing ", "looks like =?UTF-8?B?eA==?= a word"] {
            let tokens = MIMEEncoding.unstructuredTokens(text)
            #expect(tokens.allSatisfy { $0.hasPrefix("=?UTF-8?B?") }, "\(text)")
            #expect(tokens.compactMap(Self.decodeWord).joined() == text)
        }
    }

    @Test("display names: atoms stay plain, specials and non-ASCII are encoded")
    func phrase() {
        #expect(MIMEEncoding.phraseTokens("Jane Doe") == ["Jane", "Doe"])
        #expect(MIMEEncoding.phraseTokens("O'Brien") == ["O'Brien"])
        for name in ["Doe, Jane", "J. Doe", "a@b", "<script>", "\"quoted\"", "Zoë", "x:y", "=?x?="] {
            let tokens = MIMEEncoding.phraseTokens(name)
            #expect(tokens.allSatisfy { $0.hasPrefix("=?UTF-8?B?") }, "\(name)")
            #expect(tokens.compactMap(Self.decodeWord).joined() == name)
        }
    }

    @Test("control characters become spaces, CRLF one space")
    func singleLine() {
        #expect(MIMEEncoding.singleLine("a\r\nb\nc\rd\te\0f\u{85}g\u{2028}h") == "a b c d e f g h")
        #expect(MIMEEncoding.singleLine("a\r\n\r\nb") == "a  b")
        #expect(MIMEEncoding.singleLine("Grüße") == "Grüße")
    }

    @Test("headers fold between tokens at 78 and refuse lines past 998")
    func folding() throws {
        let tokens = Array(repeating: "word", count: 60)
        let header = try MIMEEncoding.header("Subject", tokens)
        #expect(header.hasSuffix("\r\n"))
        let lines = header.dropLast(2).components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") && $0.count > 1 })
        // Unfolding (removing CRLF) gives back the value.
        #expect(header.replacingOccurrences(of: "\r\n", with: "") == "Subject: " + tokens.joined(separator: " "))
        #expect(throws: MailFormatError.headerTooLong(name: "X")) {
            try MIMEEncoding.header("X", [String(repeating: "a", count: 996)])
        }
    }

    @Test(
        "quoted-printable",
        arguments: [
            ("plain", "plain"),
            ("a=b", "a=3Db"),
            ("trailing space ", "trailing space=20"),
            ("tab\t\nnext", "tab=09\r\nnext"),
            ("é", "=C3=A9"),
            ("a\r\nb\rc\nd", "a\r\nb\r\nc\r\nd"),
            ("end\n", "end\r\n"),
        ])
    func quotedPrintable(input: String, expected: String) {
        #expect(MIMEEncoding.quotedPrintable(input) == expected)
    }

    @Test(
        "quoted-printable keeps lines within 76 and decodes back",
        arguments: [
            String(repeating: "x", count: 300),
            String(repeating: "é", count: 100),
            String(repeating: "a ", count: 100),
            String(repeating: "=", count: 80) + "\n" + String(repeating: "ab=", count: 40),
        ])
    func quotedPrintableLongLines(text: String) {
        let encoded = MIMEEncoding.quotedPrintable(text)
        #expect(encoded.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 76 })
        #expect(!encoded.contains("=_"))
        #expect(Self.decodeQuotedPrintable(encoded) == text.replacingOccurrences(of: "\n", with: "\r\n"))
    }

    @Test(
        "RFC 5322 dates in UTC",
        arguments: [
            (0.0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (-1, "Wed, 31 Dec 1969 23:59:59 +0000"),
            (1_767_225_600.75, "Thu, 01 Jan 2026 00:00:00 +0000"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        ])
    func dates(seconds: Double, expected: String) {
        #expect(MIMEEncoding.rfc5322Date(Date(timeIntervalSince1970: seconds)) == expected)
    }

    /// A minimal decoder for the tests: soft breaks removed, `=XX` turned back into bytes.
    static func decodeQuotedPrintable(_ text: String) -> String {
        let bytes = Array(text.replacingOccurrences(of: "=\r\n", with: "").utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "="), index + 2 < bytes.count,
                let value = UInt8(String(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                out.append(value)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
