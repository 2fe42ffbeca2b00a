import Crypto
import Foundation

/// The master keys that encrypt secret values and private keys at rest, with AES-256-GCM.
///
/// One key encrypts (`HARROW_SECRET_KEY`); older ones may still decrypt
/// (`HARROW_OLD_SECRET_KEYS`), so a new key can be rolled out to every process first and the
/// stored values re-encrypted afterwards (`rotate-secrets`) without downtime. Each ciphertext is
/// stored with the id of the key that made it. The key id is derived from the key with HMAC, so
/// it names a key without revealing anything about it.
///
/// Every ciphertext is bound to its place (a context such as `secrets:<id>`) as associated data:
/// a ciphertext copied into another row does not decrypt there.
public struct SecretKeyring: Sendable {
    public struct Key: Sendable {
        public let id: String
        let key: SymmetricKey

        /// A key from 32 bytes.
        public init(bytes: some ContiguousBytes) throws {
            let key = SymmetricKey(data: bytes)
            guard key.bitCount == 256 else {
                throw StoreError(.crypto, "a secret key must be 32 bytes (base64 of 32 random bytes), not \(key.bitCount / 8)")
            }
            self.key = key
            let tag = HMAC<SHA256>.authenticationCode(for: Array("harrow key id".utf8), using: key)
            self.id = Hex.encode(tag.prefix(6))
        }

        /// A key from its base64 text, as in `HARROW_SECRET_KEY`.
        public init(base64: String) throws {
            guard let bytes = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw StoreError(.crypto, "a secret key must be base64 (of 32 random bytes)")
            }
            try self.init(bytes: bytes)
        }

        /// A new random key.
        public static func generate() -> Key {
            // 32 bytes of a CSPRNG are always a valid key.
            try! Key(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        }

        /// The key as base64, for `HARROW_SECRET_KEY`.
        public var base64: String {
            key.withUnsafeBytes { Data($0).base64EncodedString() }
        }
    }

    /// A value encrypted at rest: AES-GCM's nonce, ciphertext and tag in one, and its key's id.
    public struct Sealed: Sendable, Hashable {
        public var ciphertext: [UInt8]
        public var keyID: String

        public init(ciphertext: [UInt8], keyID: String) {
            self.ciphertext = ciphertext
            self.keyID = keyID
        }
    }

    /// The key new values are encrypted with.
    public let current: Key
    private let keys: [String: Key]

    public init(current: Key, old: [Key] = []) {
        self.current = current
        var keys = Dictionary(old.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        keys[current.id] = current
        self.keys = keys
    }

    /// The keyring from `HARROW_SECRET_KEY` and the comma-separated `HARROW_OLD_SECRET_KEYS`.
    /// Throws, naming the variable, when the key is missing or malformed; never echoes a key.
    public init(environment: [String: String]) throws {
        guard let text = environment["HARROW_SECRET_KEY"], !text.isEmpty else {
            throw StoreError(
                .crypto, "HARROW_SECRET_KEY is not set: it must hold base64 of 32 random bytes (`openssl rand -base64 32`)")
        }
        let current: Key
        do {
            current = try Key(base64: text)
        } catch let error as StoreError {
            throw StoreError(.crypto, "HARROW_SECRET_KEY: \(error.message)")
        }
        var old: [Key] = []
        for (index, text) in (environment["HARROW_OLD_SECRET_KEYS"] ?? "").split(separator: ",").enumerated() {
            do {
                old.append(try Key(base64: String(text)))
            } catch let error as StoreError {
                throw StoreError(.crypto, "HARROW_OLD_SECRET_KEYS, key \(index + 1): \(error.message)")
            }
        }
        self.init(current: current, old: old)
    }

    /// Encrypts `plaintext` under the current key, bound to `context`.
    public func seal(_ plaintext: some DataProtocol, context: String) throws -> Sealed {
        do {
            let box = try AES.GCM.seal(plaintext, using: current.key, authenticating: Array(context.utf8))
            guard let combined = box.combined else { throw StoreError(.crypto, "AES-GCM produced no ciphertext") }
            return Sealed(ciphertext: Array(combined), keyID: current.id)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.crypto, "could not encrypt a secret (\(type(of: error)))")
        }
    }

    /// Decrypts a value sealed for `context`. The error says which key is missing, or that the
    /// value does not open with its key, and never shows the value.
    public func open(_ sealed: Sealed, context: String) throws -> [UInt8] {
        guard let key = keys[sealed.keyID] else {
            throw StoreError(
                .crypto,
                "a secret is encrypted under key \(sealed.keyID), which is neither HARROW_SECRET_KEY (\(current.id)) nor in HARROW_OLD_SECRET_KEYS"
            )
        }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.ciphertext)
            return Array(try AES.GCM.open(box, using: key.key, authenticating: Array(context.utf8)))
        } catch {
            throw StoreError(.crypto, "a secret under key \(sealed.keyID) does not decrypt: the key is wrong or the value was altered")
        }
    }

    /// Whether `sealed` needs re-encrypting under the current key.
    public func isCurrent(_ sealed: Sealed) -> Bool {
        sealed.keyID == current.id
    }
}
