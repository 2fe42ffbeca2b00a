import Foundation
import JobContracts
import Store
import WorkerPool

/// Signs the links of `send-mail` jobs when they are sent, so the token exists only in the mail
/// itself: the job names the purpose, the user and the expiry; the binding (the user's address
/// or password hash) is read now, as the API will read it when the link comes back.
public struct MailLinks: Sendable {
    let signer: LinkSigner
    let users: UserStore
    let publicURL: String

    /// Links signed with `signer` for `users`, pointing into the web app at `publicURL`.
    public init(signer: LinkSigner, users: UserStore, publicURL: String) {
        self.signer = signer
        self.users = users
        self.publicURL = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
    }

    /// The link's URL for a mail to `recipient`. Whoever can enqueue a `send-mail` job must not
    /// get a link that signs someone else in, so a link goes only to its user's own address and
    /// lives no longer than its purpose allows; a job asking otherwise, a link to a user who is
    /// gone, or one of an unknown purpose, is a permanent failure.
    public func url(for link: SendMail.SignedLink, recipient: String, now: Date = Date()) async throws -> String {
        guard let purpose = LinkSigner.Purpose(rawValue: link.purpose) else {
            throw JobFailure.permanent("send-mail: no link purpose \"\(link.purpose)\"")
        }
        let expiry = Date(timeIntervalSince1970: TimeInterval(link.expiresAt))
        // A minute of slack for the API's clock running ahead of the worker's.
        guard expiry.timeIntervalSince(now) <= purpose.longestLifetime + 60 else {
            throw JobFailure.permanent(
                "send-mail: a \(purpose.rawValue) link may live at most \(Int(purpose.longestLifetime)) s; this one asks for longer")
        }
        let user: User
        let binding: String
        do {
            user = try await users.find(link.userID)
            switch purpose {
            case .verifyEmail: binding = EmailAddress.canonical(user.email)
            case .resetPassword:
                guard let hash = try await users.passwordHash(of: link.userID) else { throw StoreError.notFound("user") }
                binding = hash
            }
        } catch let error as StoreError where error.code == .notFound {
            throw JobFailure.permanent("send-mail: the link's user \(link.userID.uuidString.lowercased()) is gone")
        }
        guard EmailAddress.canonical(user.email) == EmailAddress.canonical(recipient) else {
            throw JobFailure.permanent(
                "send-mail: a \(purpose.rawValue) link goes only to its user's own address, not to another recipient")
        }
        let token = signer.token(purpose, subject: link.userID, expiry: expiry, binding: binding)
        // The web app's pages are named like the purposes: /verify-email, /reset-password.
        return "\(publicURL)/\(purpose.rawValue)?token=\(token)"
    }
}
