import Crypto
import Foundation
import _CryptoExtras

/// An SSH key pair in OpenSSH's formats, as `ssh-keygen` would write it with no passphrase.
///
/// The private key is unencrypted (cipher and KDF `none`): whoever stores it is responsible for
/// protecting it at rest. `ssh`, `ssh-keygen` and `ssh-add` read both forms as they are.
public struct OpenSSHKeyPair: Sendable {
    /// The kind of key to generate. The raw value is the name to use in configuration and APIs.
    public enum Algorithm: String, Sendable, CaseIterable {
        /// Ed25519 (`ssh-ed25519`): small and fast; the one to choose unless a peer can't take it.
        case ed25519
        /// 4096-bit RSA with public exponent 65537 (`ssh-rsa` keys), for peers that only take RSA.
        ///
        /// Generating one takes from a fraction of a second to several seconds.
        case rsa4096 = "rsa-4096"
    }

    /// Why a key pair could not be made.
    public enum GenerationError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The comment has a control character (such as a newline) or a line or paragraph
        /// separator; it would break the one-line public key, e.g. in `authorized_keys`.
        case commentNotOneLine
        /// swift-crypto handed back an RSA key this code cannot read: a bug here, not bad input.
        case unreadableRSAKey(reason: String)

        public var description: String {
            switch self {
            case .commentNotOneLine:
                "an SSH key comment must be one line of text, without control characters such as newlines or tabs"
            case .unreadableRSAKey(let reason):
                "could not read the generated RSA key: \(reason)"
            }
        }
    }

    public let algorithm: Algorithm
    /// The comment given to ``generate(_:comment:)``, stored in both keys.
    public let comment: String
    /// The public key as one `authorized_keys` line, without a trailing newline:
    /// `ssh-ed25519 AAAA… comment` (`ssh-rsa` for RSA; no trailing space when the comment is empty).
    public let publicKey: String
    /// The private key as unencrypted `-----BEGIN OPENSSH PRIVATE KEY-----` text ending in a newline,
    /// ready to write to a file of mode 0600.
    public let privateKey: String
    /// `SHA256:` and the unpadded base64 of the SHA-256 of the public key, as `ssh-keygen -l` prints it.
    public let fingerprint: String

    /// Generates a new random key pair.
    ///
    /// This runs synchronously and RSA generation can take seconds, so from async code prefer running
    /// it off the cooperative thread pool.
    ///
    /// - Parameters:
    ///   - algorithm: The kind of key.
    ///   - comment: Text stored with the key, conventionally `user@host` or what the key is for; may
    ///     be empty. It must be one line: see ``GenerationError/commentNotOneLine``.
    /// - Throws: ``GenerationError``.
    public static func generate(_ algorithm: Algorithm, comment: String) throws -> OpenSSHKeyPair {
        try validate(comment: comment)
        let key: SSHKeyEncoding
        switch algorithm {
        case .ed25519:
            key = SSHKeyEncoding(ed25519: Curve25519.Signing.PrivateKey())
        case .rsa4096:
            key = try SSHKeyEncoding(rsa: _RSA.Signing.PrivateKey(keySize: .bits4096))
        }
        return OpenSSHKeyPair(algorithm: algorithm, key: key, comment: comment, checkInt: .random(in: .min ... .max))
    }

    /// Frames an encoded key; separate from `generate` so tests can rebuild a key `ssh-keygen` made
    /// byte for byte, which requires its check int.
    init(algorithm: Algorithm, key: SSHKeyEncoding, comment: String, checkInt: UInt32) {
        self.algorithm = algorithm
        self.comment = comment

        let publicKeyBase64 = Data(key.publicKeyBlob).base64EncodedString()
        publicKey = comment.isEmpty ? "\(key.typeName) \(publicKeyBase64)" : "\(key.typeName) \(publicKeyBase64) \(comment)"

        var digest = Data(SHA256.hash(data: key.publicKeyBlob)).base64EncodedString()
        while digest.hasSuffix("=") { digest.removeLast() }
        fingerprint = "SHA256:\(digest)"

        // Layout from OpenSSH's PROTOCOL.key.
        var privateSection = SSHWireWriter()
        // The two equal check ints only serve to detect a wrong passphrase after decryption; they are
        // random anyway, as ssh-keygen makes them, so files from here look like its own.
        privateSection.writeUInt32(checkInt)
        privateSection.writeUInt32(checkInt)
        privateSection.writeRaw(key.privateFields)
        privateSection.writeString(comment)
        // Padding to the cipher's block size is required even for "none", whose block size is 8;
        // OpenSSH checks the pad bytes are exactly 1, 2, 3, …
        var padByte: UInt8 = 1
        while !privateSection.bytes.count.isMultiple(of: 8) {
            privateSection.writeRaw([padByte])
            padByte += 1
        }

        var file = SSHWireWriter()
        file.writeRaw(Array("openssh-key-v1".utf8) + [0])
        file.writeString("none")  // cipher
        file.writeString("none")  // KDF
        file.writeString([UInt8]())  // KDF options, empty without a KDF
        file.writeUInt32(1)  // number of keys
        file.writeString(key.publicKeyBlob)
        file.writeString(privateSection.bytes)
        privateKey = Self.armor(file.bytes)
    }

    private static func validate(comment: String) throws {
        let breaksTheLine = comment.unicodeScalars.contains { scalar in
            switch scalar.properties.generalCategory {
            case .control, .lineSeparator, .paragraphSeparator: true
            default: false
            }
        }
        if breaksTheLine {
            throw GenerationError.commentNotOneLine
        }
    }

    private static func armor(_ bytes: [UInt8]) -> String {
        // 70 columns because that is what ssh-keygen writes; readers take any width.
        let body = Data(bytes).base64EncodedString()
        var lines = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
        var rest = Substring(body)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(70)))
            rest = rest.dropFirst(70)
        }
        lines.append("-----END OPENSSH PRIVATE KEY-----")
        return lines.joined(separator: "\n") + "\n"
    }
}
