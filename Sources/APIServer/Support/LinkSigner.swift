import Crypto
import Foundation
import Store

/// Signs and checks the tokens in links sent by mail (verify an email, reset a password): a
/// purpose, a subject, an expiry and a binding, MACed with HMAC-SHA256 under a key derived from
/// the master key. The binding ties a token to state that changes when it is used (a password
/// reset binds the current password hash), so each link works once.
public struct LinkSigner: Sendable {
    public enum Purpose: String, Sendable {
        case verifyEmail = "verify-email"
        case resetPassword = "reset-password"
    }

    private let key: SymmetricKey

    /// A signer with its own key, derived (HKDF-SHA256) from `masterKey`'s bytes.
    public init(masterKey: some ContiguousBytes) {
        let input = SymmetricKey(data: masterKey)
        key = HKDF<SHA256>.deriveKey(inputKeyMaterial: input, info: Array("harrow link tokens".utf8), outputByteCount: 32)
    }

    /// A token for `subject` (a user id) valid until `expiry`, bound to `binding`.
    public func token(_ purpose: Purpose, subject: UUID, expiry: Date, binding: String = "") -> String {
        let body = "\(purpose.rawValue).\(subject.uuidString.lowercased()).\(Int64(expiry.timeIntervalSince1970))"
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(body).\(binding)".utf8), using: key)
        return Base64URL.encode(body.utf8) + "." + Base64URL.encode(mac)
    }

    /// The subject of a valid, unexpired token for `purpose`. `binding` is looked up from the
    /// subject (for example its current password hash), so the caller passes a closure.
    public func subject(
        of token: String, for purpose: Purpose, now: Date = Date(), binding: (UUID) async throws -> String = { _ in "" }
    ) async throws -> UUID? {
        let parts = token.split(separator: ".")
        guard parts.count == 2, let bodyBytes = Base64URL.decode(String(parts[0])),
            let mac = Base64URL.decode(String(parts[1]))
        else { return nil }
        let body = String(decoding: bodyBytes, as: UTF8.self)
        let fields = body.split(separator: ".")
        guard fields.count == 3, fields[0] == purpose.rawValue, let subject = UUID(uuidString: String(fields[1])),
            let expiry = Int64(fields[2]), Date(timeIntervalSince1970: TimeInterval(expiry)) > now
        else { return nil }
        let bound = try await binding(subject)
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array("\(body).\(bound)".utf8), using: key) else {
            return nil
        }
        return subject
    }
}
