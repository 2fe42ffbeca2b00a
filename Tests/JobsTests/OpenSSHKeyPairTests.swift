import Crypto
import Foundation
import Testing
import _CryptoExtras

@testable import Jobs

@Suite struct SSHWireWriterTests {
    // The examples of RFC 4251 §5, plus redundant leading zeros in the input.
    @Test(
        arguments: [
            ([], [0, 0, 0, 0]),
            ([0, 0], [0, 0, 0, 0]),
            ([0x09, 0xA3, 0x78, 0xF9, 0xB2, 0xE3, 0x32, 0xA7], [0, 0, 0, 8, 0x09, 0xA3, 0x78, 0xF9, 0xB2, 0xE3, 0x32, 0xA7]),
            ([0x80], [0, 0, 0, 2, 0x00, 0x80]),
            ([0x00, 0x80], [0, 0, 0, 2, 0x00, 0x80]),
            ([0x00, 0x00, 0x7F], [0, 0, 0, 1, 0x7F]),
        ] as [([UInt8], [UInt8])])
    func mpint(magnitude: [UInt8], expected: [UInt8]) {
        var writer = SSHWireWriter()
        writer.writeMPInt(unsignedBigEndian: magnitude)
        #expect(writer.bytes == expected)
    }

    @Test func stringAndUInt32() {
        var writer = SSHWireWriter()
        writer.writeString("ssh-rsa")
        writer.writeUInt32(0x0102_0304)
        #expect(writer.bytes == [0, 0, 0, 7] + Array("ssh-rsa".utf8) + [1, 2, 3, 4])
    }
}

@Suite struct OpenSSHKeyPairTests {
    @Test(arguments: ["two\nlines", "cr\rhere", "tab\there", "nul\0", "del\u{7F}", "nel\u{85}", "ls\u{2028}", "ps\u{2029}"])
    func commentsThatAreNotOneLineAreRejected(comment: String) {
        #expect(throws: OpenSSHKeyPair.GenerationError.commentNotOneLine) {
            try OpenSSHKeyPair.generate(.ed25519, comment: comment)
        }
    }

    @Test func emptyCommentLeavesNoTrailingSpace() throws {
        let pair = try OpenSSHKeyPair.generate(.ed25519, comment: "")
        #expect(pair.publicKey.split(separator: " ", omittingEmptySubsequences: false).count == 2)
    }

    @Test func rsaNumbersAgreeWithSwiftCryptosPublicKey() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let numbers = try RSAPrivateKeyNumbers(pkcs1DER: Array(key.derRepresentation))
        let primitives = try key.publicKey.getKeyPrimitives()
        #expect(Array(numbers.modulus.drop { $0 == 0 }) == Array(primitives.modulus.drop { $0 == 0 }))
        #expect(Array(numbers.publicExponent.drop { $0 == 0 }) == Array(primitives.publicExponent.drop { $0 == 0 }))
        #expect(Array(numbers.publicExponent) == [0x01, 0x00, 0x01])
    }

    /// A key cut short, or followed by stray bytes, is refused rather than read in part.
    @Test func truncatedOrTrailingDERIsRefused() throws {
        let der = Array(try _RSA.Signing.PrivateKey(keySize: .bits2048).derRepresentation)
        #expect(throws: OpenSSHKeyPair.GenerationError.self) { try RSAPrivateKeyNumbers(pkcs1DER: Array(der.dropLast())) }
        #expect(throws: OpenSSHKeyPair.GenerationError.self) { try RSAPrivateKeyNumbers(pkcs1DER: der + [0]) }
    }

    @Test func pkcs8IsRefusedWithAClearError() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        #expect(throws: OpenSSHKeyPair.GenerationError.self) {
            try RSAPrivateKeyNumbers(pkcs1DER: Array(key.pkcs8DERRepresentation))
        }
    }

    @Test(arguments: OpenSSHKeyPair.Algorithm.allCases)
    func privateKeyLayout(algorithm: OpenSSHKeyPair.Algorithm) throws {
        let comment = "layout ✓ test"
        let pair = try OpenSSHKeyPair.generate(algorithm, comment: comment)
        let parsed = try ParsedOpenSSHPrivateKey(pem: pair.privateKey)
        let publicFields = pair.publicKey.split(separator: " ", maxSplits: 2)
        #expect(publicFields.count == 3)
        #expect(String(publicFields[2]) == comment)
        #expect(Data(base64Encoded: String(publicFields[1])) == Data(parsed.publicKeyBlob))
        #expect(parsed.privateSectionLength.isMultiple(of: 8))
        #expect(parsed.checkInts[0] == parsed.checkInts[1])
        #expect(parsed.comment == comment)
        #expect(parsed.padding == Array(1..<UInt8(parsed.padding.count + 1)))
        #expect(parsed.padding.count < 8)
        switch algorithm {
        case .ed25519:
            #expect(parsed.keyType == "ssh-ed25519")
            #expect(parsed.keyFields[0].count == 32)
            #expect(parsed.keyFields[1].count == 64)
            #expect(Array(parsed.keyFields[1].suffix(32)) == parsed.keyFields[0])
        case .rsa4096:
            #expect(parsed.keyType == "ssh-rsa")
            #expect(parsed.keyFields[0].count == 513)  // n: 4096 bits with its top bit set, so a leading zero
            for mpint in parsed.keyFields {
                // Minimal two's complement: a zero first byte only when the next has its top bit set.
                #expect(mpint.first != 0 || mpint.dropFirst().first.map { $0 & 0x80 != 0 } == true)
                #expect(mpint.first.map { $0 & 0x80 == 0 } == true)
            }
        }
    }

    /// Keys made here must work with ssh-keygen: both files load, the fingerprints agree, and the
    /// private key signs what the public key verifies.
    @Test(arguments: OpenSSHKeyPair.Algorithm.allCases)
    func sshKeygenReadsGeneratedKeys(algorithm: OpenSSHKeyPair.Algorithm) throws {
        var rounds = 0
        // iqmp (below p, a 2048-bit prime) needs a leading zero roughly half the time; go on until both
        // shapes have gone through ssh-keygen. n, p and q always need one, and BoringSSL's d is below
        // lcm(p-1, q-1) < n/2, so it needs one only when it is a byte shorter (about 1 key in 128).
        var seenShapes: Set<String> = []
        let wantedShapes: Set<String> = algorithm == .rsa4096 ? ["iqmp+0", "iqmp"] : []
        let minimumRounds = algorithm == .rsa4096 ? 2 : 6
        while rounds < minimumRounds || (!seenShapes.isSuperset(of: wantedShapes) && rounds < 20) {
            rounds += 1
            let comment = "harrow job \(rounds)"
            let pair = try OpenSSHKeyPair.generate(algorithm, comment: comment)
            if algorithm == .rsa4096 {
                let fields = try ParsedOpenSSHPrivateKey(pem: pair.privateKey).keyFields
                seenShapes.insert(fields[2].first == 0 ? "d+0" : "d")
                seenShapes.insert(fields[3].first == 0 ? "iqmp+0" : "iqmp")
            }
            try checkWithSSHKeygen(pair)
        }
        print("\(algorithm): \(rounds) keys checked with ssh-keygen; mpint shapes seen: \(seenShapes.sorted())")
        #expect(seenShapes.isSuperset(of: wantedShapes))
    }

    private func checkWithSSHKeygen(_ pair: OpenSSHKeyPair) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // No key.pub beside the private key, or `ssh-keygen -l -f key` would read that instead.
        try write(pair.privateKey, to: "key", in: directory, mode: 0o600)
        try write(pair.publicKey + "\n", to: "public.pub", in: directory)
        let bits = pair.algorithm == .ed25519 ? "256" : "4096"
        let typeLabel = pair.algorithm == .ed25519 ? "(ED25519)" : "(RSA)"
        let expectedListing = "\(bits) \(pair.fingerprint) \(pair.comment) \(typeLabel)\n"

        let derived = try sshKeygen(["-y", "-f", "key"], in: directory)
        #expect(derived.status == 0, "\(derived.errorOutput)")
        #expect(derived.output.split(separator: " ").prefix(2) == pair.publicKey.split(separator: " ").prefix(2))

        let publicListing = try sshKeygen(["-l", "-f", "public.pub"], in: directory)
        #expect(publicListing.status == 0, "\(publicListing.errorOutput)")
        #expect(publicListing.output == expectedListing)

        let privateListing = try sshKeygen(["-l", "-f", "key"], in: directory)
        #expect(privateListing.status == 0, "\(privateListing.errorOutput)")
        #expect(privateListing.output == expectedListing)

        try write("a job's payload\n", to: "message", in: directory)
        let signing = try sshKeygen(["-Y", "sign", "-f", "key", "-n", "harrow-test", "message"], in: directory)
        #expect(signing.status == 0, "\(signing.errorOutput)")
        let keyTypeAndBlob = pair.publicKey.split(separator: " ").prefix(2).joined(separator: " ")
        try write("signer@harrow \(keyTypeAndBlob)\n", to: "allowed_signers", in: directory)
        let verifyArguments = ["-Y", "verify", "-f", "allowed_signers", "-I", "signer@harrow", "-n", "harrow-test", "-s", "message.sig"]
        let verification = try sshKeygen(verifyArguments, in: directory, inputFile: "message")
        #expect(verification.status == 0, "\(verification.errorOutput)")
        // So a passing verify means something.
        try write("a forged payload\n", to: "forged", in: directory)
        let forgery = try sshKeygen(verifyArguments, in: directory, inputFile: "forged")
        #expect(forgery.status != 0)

        if pair.algorithm == .rsa4096 {
            // Signing alone would not catch a wrong iqmp (OpenSSL checks a CRT result and falls back
            // to d), so have OpenSSL check every number of the key once ssh-keygen has loaded it.
            let pemCopy = try sshKeygen(["-p", "-P", "", "-N", "", "-m", "PEM", "-f", "key"], in: directory)
            #expect(pemCopy.status == 0, "\(pemCopy.errorOutput)")
            let check = try run("/usr/bin/openssl", ["rsa", "-check", "-noout", "-in", "key"], in: directory)
            #expect(check.status == 0 && check.output == "RSA key ok\n", "\(check.output)\(check.errorOutput)")
        }
    }

    /// Given the key and check int of a key that ssh-keygen made, the encoder must write ssh-keygen's
    /// files byte for byte.
    @Test(arguments: OpenSSHKeyPair.Algorithm.allCases)
    func reencodesSSHKeygenKeysByteForByte(algorithm: OpenSSHKeyPair.Algorithm) throws {
        for round in 1...3 {
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let comment = "made by ssh-keygen \(round)"
            let typeArguments = algorithm == .ed25519 ? ["-t", "ed25519"] : ["-t", "rsa", "-b", "4096"]
            let generation = try sshKeygen(["-q"] + typeArguments + ["-N", "", "-C", comment, "-f", "key"], in: directory)
            try #require(generation.status == 0, "\(generation.errorOutput)")
            let original = try read("key", in: directory)
            let originalPublic = try read("key.pub", in: directory)
            let parsed = try ParsedOpenSSHPrivateKey(pem: original)

            let key: SSHKeyEncoding
            switch algorithm {
            case .ed25519:
                key = SSHKeyEncoding(ed25519: try Curve25519.Signing.PrivateKey(rawRepresentation: parsed.keyFields[1].prefix(32)))
            case .rsa4096:
                // ssh-keygen can rewrite its key as PKCS#1, which swift-crypto reads.
                let conversion = try sshKeygen(["-p", "-P", "", "-N", "", "-m", "PEM", "-f", "key"], in: directory)
                try #require(conversion.status == 0, "\(conversion.errorOutput)")
                key = try SSHKeyEncoding(rsa: _RSA.Signing.PrivateKey(pemRepresentation: try read("key", in: directory)))
            }
            let rebuilt = OpenSSHKeyPair(algorithm: algorithm, key: key, comment: comment, checkInt: parsed.checkInts[0])
            #expect(rebuilt.privateKey == original)
            #expect(rebuilt.publicKey + "\n" == originalPublic)

            let listing = try sshKeygen(["-l", "-f", "key.pub"], in: directory)
            #expect(listing.output.split(separator: " ")[1] == rebuilt.fingerprint)
        }
    }
}
