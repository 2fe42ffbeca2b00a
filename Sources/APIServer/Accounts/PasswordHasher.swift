import HummingbirdBcrypt
import NIOPosix

/// bcrypt off the event loops: hashing takes tens of milliseconds at cost 12 and would stall
/// every request sharing the thread.
struct PasswordHasher: Sendable {
    let cost: UInt8
    /// A hash, at this cost, of a random password nobody knows: checked against when a login
    /// names an unknown email, so the answer takes as long as for a known one.
    let decoyHash: String

    /// Makes the decoy hash once, here (a fraction of a second at cost 12).
    init(cost: UInt8) {
        self.cost = cost
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<24).map { _ in String(UInt8.random(in: 97...122, using: &generator), radix: 36) }.joined()
        decoyHash = Bcrypt.hash(secret, cost: cost)
    }

    static let minimumLength = 10
    /// bcrypt reads at most 72 bytes; a longer password would silently lose its tail.
    static let maximumBytes = 72

    func validate(_ password: String, field: String = "password") throws {
        guard password.count >= Self.minimumLength else {
            throw Problem.invalid([Problem.FieldError(field: field, message: "must be at least \(Self.minimumLength) characters")])
        }
        guard password.utf8.count <= Self.maximumBytes else {
            throw Problem.invalid([Problem.FieldError(field: field, message: "must be at most \(Self.maximumBytes) bytes")])
        }
    }

    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
