import Crypto
import Foundation
import _CryptoExtras

/// The numbers of a two-prime RSA private key, from PKCS#1's `RSAPrivateKey` (RFC 8017 §A.1.2),
/// each as its unsigned big-endian magnitude.
struct RSAPrivateKeyNumbers {
    let modulus: ArraySlice<UInt8>
    let publicExponent: ArraySlice<UInt8>
    let privateExponent: ArraySlice<UInt8>
    let prime1: ArraySlice<UInt8>
    let prime2: ArraySlice<UInt8>
    let coefficient: ArraySlice<UInt8>

    init(pkcs1DER der: [UInt8]) throws {
        var document = DERReader(der[...])
        var sequence = try document.readSequence()
        try document.expectEnd()

        let version = try sequence.readUnsignedInteger()
        // Version 1 would be a multi-prime key, which OpenSSH's format can't hold.
        guard version.allSatisfy({ $0 == 0 }) else {
            throw OpenSSHKeyPair.GenerationError.unreadableRSAKey(reason: "RSAPrivateKey version is not 0")
        }
        modulus = try sequence.readUnsignedInteger()
        publicExponent = try sequence.readUnsignedInteger()
        privateExponent = try sequence.readUnsignedInteger()
        prime1 = try sequence.readUnsignedInteger()
        prime2 = try sequence.readUnsignedInteger()
        _ = try sequence.readUnsignedInteger()  // exponent1, not stored by OpenSSH
        _ = try sequence.readUnsignedInteger()  // exponent2, not stored by OpenSSH
        coefficient = try sequence.readUnsignedInteger()
        try sequence.expectEnd()
    }
}

/// Just enough of a DER reader for `RSAPrivateKey`: definite lengths, SEQUENCE and non-negative INTEGER.
private struct DERReader {
    private var remaining: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        remaining = bytes
    }

    mutating func readSequence() throws -> DERReader {
        DERReader(try readElement(tag: 0x30, name: "SEQUENCE"))
    }

    /// The INTEGER's content, which for a non-negative value is its magnitude, possibly with one leading zero.
    mutating func readUnsignedInteger() throws -> ArraySlice<UInt8> {
        let content = try readElement(tag: 0x02, name: "INTEGER")
        guard let first = content.first, first & 0x80 == 0 else {
            throw Self.malformed("an INTEGER is empty or negative")
        }
        return content
    }

    func expectEnd() throws {
        guard remaining.isEmpty else {
            throw Self.malformed("\(remaining.count) unexpected bytes after the last element")
        }
    }

    private mutating func readElement(tag expectedTag: UInt8, name: String) throws -> ArraySlice<UInt8> {
        guard let tag = remaining.popFirst() else {
            throw Self.malformed("ended where a \(name) was expected")
        }
        guard tag == expectedTag else {
            throw Self.malformed("found tag 0x\(String(tag, radix: 16)) where a \(name) was expected")
        }
        guard let firstLengthByte = remaining.popFirst() else {
            throw Self.malformed("a \(name) has no length")
        }
        var length = Int(firstLengthByte)
        if firstLengthByte >= 0x80 {
            let lengthByteCount = Int(firstLengthByte & 0x7F)
            // 0x80 (indefinite length) is BER, not DER; more than 4 length bytes is no key of ours.
            guard (1...4).contains(lengthByteCount), remaining.count >= lengthByteCount else {
                throw Self.malformed("a \(name) has an unsupported length encoding")
            }
            length = remaining.prefix(lengthByteCount).reduce(0) { $0 << 8 | Int($1) }
            remaining = remaining.dropFirst(lengthByteCount)
        }
        guard remaining.count >= length else {
            throw Self.malformed("a \(name) is truncated")
        }
        let content = remaining.prefix(length)
        remaining = remaining.dropFirst(length)
        return content
    }

    private static func malformed(_ reason: String) -> OpenSSHKeyPair.GenerationError {
        .unreadableRSAKey(reason: "malformed PKCS#1 DER: \(reason)")
    }
}
