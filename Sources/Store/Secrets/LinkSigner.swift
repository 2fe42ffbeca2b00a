import Crypto
import Foundation

/// Signs and checks the tokens in links sent by mail (verify an email, reset a password): a
/// purpose, a subject (a user id), an expiry and a tag of a binding, MACed with HMAC-SHA256
/// under a key derived from the master key. The binding ties a token to state that changes
/// when it is used (a password reset binds the current password hash), so each link works once.
///
/// The API never puts a token into a job: a `send-mail` job names the link (purpose, user,
/// expiry) and the mail handler signs it, so neither the outbox, Redis nor a dead-letter
/// listing holds a link that signs anyone in. Checking verifies the MAC before looking anything
/// up, so an invalid token tells nothing about which users exist.
public struct LinkSigner: Sendable {
    /// What a link does; its raw value is the web app's page for it.
    public enum Purpose: String, Sendable, CaseIterable {
        case verifyEmail = "verify-email"
        case resetPassword = "reset-password"

        /// The longest a link of this purpose may stay valid: the mail handler signs none that
        /// lives longer, whatever its job asks for.
        public var longestLifetime: TimeInterval {
            switch self {
            case .verifyEmail: 7 * 86_400
            case .resetPassword: 86_400
            }
        }
    }

    private let key: SymmetricKey

    /// A signer with its own key, derived (HKDF-SHA256) from `masterKey`'s bytes.
    public init(masterKey: some ContiguousBytes) {
        let input = SymmetricKey(data: masterKey)
        key = HKDF<SHA256>.deriveKey(inputKeyMaterial: input, info: Array("harrow link tokens".utf8), outputByteCount: 32)
    }

    /// A signer keyed by the keyring's current key: the API and the workers share it.
    public init(keyring: SecretKeyring) {
        self.init(masterKey: keyring.current.key)
    }

    /// A token for `subject` valid until `expiry`, bound to `binding`.
    public func token(_ purpose: Purpose, subject: UUID, expiry: Date, binding: String = "") -> String {
        let head = "\(purpose.rawValue).\(subject.uuidString.lowercased()).\(Int64(expiry.timeIntervalSince1970))"
        let body = "\(head).\(Base64URL.encode(tag(head, binding)))"
        return Base64URL.encode(body.utf8) + "." + Base64URL.encode(HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: key))
    }

    /// The subject of a valid, unexpired token for `purpose`, or `nil` for any invalid token.
    /// `binding` is looked up from the subject (for example its current password hash) only
    /// once the MAC holds; a subject that no longer exists (`StoreError.notFound`) is invalid.
    public func subject(
        of token: String, for purpose: Purpose, now: Date = Date(), binding: (UUID) async throws -> String = { _ in "" }
    ) async throws -> UUID? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let bodyBytes = Base64URL.decode(String(parts[0])), let mac = Base64URL.decode(String(parts[1])),
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: bodyBytes, using: key)
        else { return nil }
        let fields = String(decoding: bodyBytes, as: UTF8.self).split(separator: ".", omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == purpose.rawValue, let subject = UUID(uuidString: String(fields[1])),
            let expiry = Int64(fields[2]), Date(timeIntervalSince1970: TimeInterval(expiry)) > now,
            let tag = Base64URL.decode(String(fields[3]))
        else { return nil }
        let bound: String
        do {
            bound = try await binding(subject)
        } catch let error as StoreError where error.code == .notFound {
            return nil
        }
        let expected = self.tag(fields[0...2].joined(separator: "."), bound)
        // Compared in constant time: every byte is looked at whatever the first difference.
        guard tag.count == expected.count, zip(tag, expected).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
        return subject
    }

    /// 16 bytes that change whenever the binding does, without showing it.
    private func tag(_ head: String, _ binding: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array("binding.\(head).\(binding)".utf8), using: key).prefix(16))
    }
}
