import Testing

@testable import Jobs

@Suite("MailAddress validation")
struct MailAddressTests {
    @Test(
        "accepts ordinary addresses",
        arguments: [
            "alice@example.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x@localhost",
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "user@xn--mnchen-3ya.de",
            "a@1.2.3.4",
            String(repeating: "l", count: 64) + "@example.com",
        ])
    func accepts(_ address: String) throws {
        let mailbox = try MailAddress(address)
        #expect(mailbox.address == address)
        #expect(mailbox.displayName == nil)
    }

    @Test(
        "rejects what could break a header or an SMTP command, or is not local@domain",
        arguments: [
            "",
            "plainaddress",
            "@example.com",
            "alice@",
            "alice@example.com\r\nRCPT TO:<victim@example.net>",
            "alice\n@example.com",
            "alice\0@example.com",
            "ali\u{7F}ce@example.com",
            "alice smith@example.com",
            "<alice@example.com>",
            "alice@example.com>",
            "alice,bob@example.com",
            "alice@example.com,bob@example.com",
            "\"quoted\"@example.com",
            "(comment)alice@example.com",
            "alice@[192.0.2.1]",
            "ålice@example.com",
            "alice@exämple.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@example..com",
            "alice@example.com.",
            "alice@-example.com",
            "alice@example-.com",
            "alice@exa_mple.com",
            String(repeating: "l", count: 65) + "@example.com",
            "a@" + String(repeating: "d", count: 64) + ".com",
            "a@" + Array(repeating: String(repeating: "d", count: 60), count: 5).joined(separator: "."),
        ])
    func rejects(_ address: String) {
        #expect(throws: MailFormatError.self) { try MailAddress(address) }
    }

    @Test("an address of 254 characters is accepted, 255 is not")
    func totalLength() throws {
        let domain254 = Array(repeating: String(repeating: "d", count: 61), count: 4).joined(separator: ".")  // 247
        _ = try MailAddress("abcde@" + domain254)  // 5 + 1 + 247 = 253
        _ = try MailAddress("abcdef@" + domain254)  // 254
        #expect(throws: MailFormatError.self) { try MailAddress("abcdefg@" + domain254) }
    }

    @Test("the error names the problem and escapes control characters")
    func errorDescription() {
        #expect {
            try MailAddress("bad\r\n@example.com")
        } throws: { error in
            let description = String(describing: error)
            return description.contains("control character") && description.contains("\\r\\n") && !description.contains("\r")
        }
    }

    @Test("parts and display name")
    func parts() throws {
        let mailbox = try MailAddress("alice@example.com", displayName: "Alice")
        #expect(mailbox.localPart == "alice")
        #expect(mailbox.domain == "example.com")
        #expect(mailbox.displayName == "Alice")
        #expect(try MailAddress("a@example.com", displayName: "").displayName == nil)
        #expect(mailbox.description == "\"Alice\" <alice@example.com>")
    }
}
