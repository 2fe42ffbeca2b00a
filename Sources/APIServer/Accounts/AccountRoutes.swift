import Foundation
import HTTPTypes
import Hummingbird
import JobContracts
import Logging
import PostgresNIO
import Store

/// Sign-up, email verification, login and logout, sessions, and passwords. The anonymous routes
/// answer alike whether or not an address has an account, and every mail they cause is counted
/// by the ``MailThrottle``; links in mails are signed by the mail handler, never put in a job.
struct AccountRoutes: Sendable {
    let users: UserStore
    let sessions: SessionStore
    let database: PostgresClient
    let hasher: PasswordHasher
    let signer: LinkSigner
    let limiter: LoginRateLimiter
    let mailThrottle: MailThrottle
    let configuration: APIConfiguration
    let logger: Logger

    struct SignUp: RequestBody {
        static let fields: Set<String> = ["email", "name", "password"]
        var email: String
        var name: String
        var password: String
    }

    struct Login: RequestBody {
        static let fields: Set<String> = ["email", "password", "cookie"]
        var email: String
        var password: String
        /// The web app's login: the token goes into the session cookie, not the answer.
        var cookie: Bool?
    }

    struct TokenBody: RequestBody {
        static let fields: Set<String> = ["token"]
        var token: String
    }

    struct EmailBody: RequestBody {
        static let fields: Set<String> = ["email"]
        var email: String
    }

    struct Reset: RequestBody {
        static let fields: Set<String> = ["token", "password"]
        var token: String
        var password: String
    }

    struct Change: RequestBody {
        static let fields: Set<String> = ["current_password", "new_password"]
        var currentPassword: String
        var newPassword: String
    }

    struct SessionCreated: ResponseEncodable {
        /// Absent when it went into the session cookie.
        var token: String?
        var session: Session
        var user: User
    }

    struct SessionView: ResponseEncodable {
        var session: Session
        var current: Bool
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        router.post("users") { request, context in try await signUp(request, context) }
        router.post("users/verify") { request, _ in try await verify(request) }
        router.post("users/verify/resend") { request, context in try await resendVerification(request, context) }
        router.post("sessions") { request, context in try await login(request, context) }
        router.get("sessions") { request, context in try await listSessions(request, context) }
        router.delete("sessions/current") { _, context -> Response in
            try await sessions.revoke(try context.caller().sessionID, user: try context.caller().user.id)
            // The browser forgets its cookie too (harmless for a bearer client).
            return Response(
                status: .noContent, headers: [.setCookie: configuration.sessionCookie.cleared])
        }
        router.delete("sessions/:id") { _, context -> HTTPResponse.Status in
            let id = try context.id()
            try await sessions.revoke(id, user: try context.caller().user.id)
            return .noContent
        }
        router.get("me") { _, context -> User in try context.caller().user }
        router.post("password/forgot") { request, context in try await forgot(request, context) }
        router.post("password/reset") { request, _ in try await reset(request) }
        router.post("password/change") { request, context in try await change(request, context) }
    }

    /// 202 whether or not the address has an account: a new one gets a verify mail; an existing
    /// one's owner gets an `account-exists` mail with a reset link instead, which also proves
    /// the address (a stranger who signed up with it first loses the account to its owner).
    func signUp(_ request: Request, _ context: APIContext) async throws -> HTTPResponse.Status {
        let body = try await request.json(SignUp.self, limit: configuration.bodyLimit)
        try hasher.validate(body.password)
        try await mailThrottle.reserve(to: body.email, caller: Self.mailRequester(context))
        // Hashed either way, so the time taken does not tell whether the address has an account.
        let hash = try await hasher.hash(body.password)
        let lifetime = configuration.verifyLinkLifetime
        do {
            let user = try await users.create(email: body.email, name: body.name, passwordHash: hash) { user in
                [try OutboxJob(Self.linkMail("verify-email", to: user, purpose: .verifyEmail, lifetime: lifetime))]
            }
            context.logger.info("user signed up", metadata: ["user_id": "\(user.id.uuidString.lowercased())"])
        } catch let error as StoreError where error.code == .duplicate {
            if let (user, _) = try await users.findForLogin(email: body.email), user.blockedAt == nil {
                try await enqueue(
                    Self.linkMail("account-exists", to: user, purpose: .resetPassword, lifetime: configuration.resetLinkLifetime))
            }
        }
        return .accepted
    }

    /// Sends the verify mail again to an account that is not verified yet; 202 either way.
    func resendVerification(_ request: Request, _ context: APIContext) async throws -> HTTPResponse.Status {
        let body = try await request.json(EmailBody.self, limit: configuration.bodyLimit)
        try await mailThrottle.reserve(to: body.email, caller: Self.mailRequester(context))
        if let (user, _) = try await users.findForLogin(email: body.email), user.blockedAt == nil, user.emailVerifiedAt == nil {
            try await enqueue(Self.linkMail("verify-email", to: user, purpose: .verifyEmail, lifetime: configuration.verifyLinkLifetime))
        }
        return .accepted
    }

    func verify(_ request: Request) async throws -> HTTPResponse.Status {
        let body = try await request.json(TokenBody.self, limit: configuration.bodyLimit)
        let users = self.users
        guard
            let id = try await signer.subject(
                of: body.token, for: .verifyEmail, binding: { EmailAddress.canonical(try await users.find($0).email) })
        else {
            throw Self.invalidToken
        }
        try await users.markEmailVerified(id)
        return .noContent
    }

    /// The one answer to every invalid, expired or used link: which part failed, or whether its
    /// user exists, is not told.
    static let invalidToken = Problem(
        type: Problem.base + "invalid-token", title: "Invalid token", status: 400, detail: "the link is invalid, used or expired")

    /// A mail whose link the mail handler signs for `user`.
    static func linkMail(_ template: String, to user: User, purpose: LinkSigner.Purpose, lifetime: TimeInterval) -> SendMail {
        SendMail(
            template: template, to: user.email, data: ["name": user.name],
            signedLink: SendMail.SignedLink(
                purpose: purpose.rawValue, userID: user.id, expiresAt: Int64(Date().addingTimeInterval(lifetime).timeIntervalSince1970)))
    }

    /// Who asks, for the mail throttle: the client's address.
    static func mailRequester(_ context: APIContext) -> String {
        "address:\(AddressBucket.of(context.clientAddress))"
    }

    private func enqueue(_ mail: SendMail) async throws {
        let job = try OutboxJob(mail)
        try await database.inTransaction(logger: logger) { connection in
            try await Outbox.enqueue([job], on: connection, logger: logger)
        }
    }

    func login(_ request: Request, _ context: APIContext) async throws -> EditedResponse<SessionCreated> {
        let body = try await request.json(Login.self, limit: configuration.bodyLimit)
        // The attempt is counted before the password is checked; a success gives it back.
        if let wait = try await limiter.reserve(email: body.email, address: context.clientAddress) {
            throw Problem.tooManyRequests(retryAfter: wait)
        }
        let found = try await users.findForLogin(email: body.email)
        // Verify against a real hash even for an unknown email, so timing does not tell.
        let valid = try await hasher.verify(body.password, hash: found?.passwordHash ?? hasher.decoyHash)
        guard let (user, _) = found, valid, user.blockedAt == nil else {
            throw Problem.unauthorized("the email or the password is wrong")
        }
        try await limiter.succeeded(email: body.email, address: context.clientAddress)
        guard user.emailVerifiedAt != nil else {
            throw Problem(
                type: Problem.base + "email-not-verified", title: "Email not verified", status: 403,
                detail: "follow the link in the mail we sent to verify your address first")
        }
        let token = Self.newToken()
        let session = try await sessions.create(
            user: user.id, tokenHash: SessionStore.tokenHash(token), expiresAt: Date().addingTimeInterval(configuration.sessionLifetime),
            userAgent: request.headers[.userAgent], address: context.clientAddress)
        guard body.cookie == true else {
            return EditedResponse(status: .created, response: SessionCreated(token: token, session: session, user: user))
        }
        let cookie = configuration.sessionCookie.set(token, maxAge: Int(configuration.sessionLifetime))
        return EditedResponse(status: .created, headers: [.setCookie: cookie], response: SessionCreated(session: session, user: user))
    }

    func listSessions(_ request: Request, _ context: APIContext) async throws -> PageBody<SessionView> {
        let caller = try context.caller()
        let page = try await sessions.list(user: caller.user.id, page: try request.pageRequest())
        return PageBody(
            Page(items: page.items.map { SessionView(session: $0, current: $0.id == caller.sessionID) }, nextCursor: page.nextCursor))
    }

    func forgot(_ request: Request, _ context: APIContext) async throws -> HTTPResponse.Status {
        let body = try await request.json(EmailBody.self, limit: configuration.bodyLimit)
        try await mailThrottle.reserve(to: body.email, caller: Self.mailRequester(context))
        // The answer is the same whether or not the address has an account.
        if let (user, _) = try await users.findForLogin(email: body.email), user.blockedAt == nil {
            try await enqueue(Self.linkMail("password-reset", to: user, purpose: .resetPassword, lifetime: configuration.resetLinkLifetime))
        }
        return .accepted
    }

    func reset(_ request: Request) async throws -> HTTPResponse.Status {
        let body = try await request.json(Reset.self, limit: configuration.bodyLimit)
        try hasher.validate(body.password)
        let users = self.users
        // Bound to the current password hash: once the password changes, the link is spent.
        guard
            let id = try await signer.subject(
                of: body.token, for: .resetPassword,
                binding: { id in
                    try await users.passwordHash(of: id) ?? ""
                })
        else {
            throw Self.invalidToken
        }
        // The link came by mail to the address: the reset proves it.
        try await users.setPasswordHash(id, try await hasher.hash(body.password), provesAddress: true)
        _ = try await sessions.revokeAll(of: id)
        return .noContent
    }

    func change(_ request: Request, _ context: APIContext) async throws -> HTTPResponse.Status {
        let caller = try context.caller()
        let body = try await request.json(Change.self, limit: configuration.bodyLimit)
        try hasher.validate(body.newPassword, field: "new_password")
        guard let hash = try await users.passwordHash(of: caller.user.id), try await hasher.verify(body.currentPassword, hash: hash) else {
            throw Problem.invalid([Problem.FieldError(field: "current_password", message: "is wrong")])
        }
        try await users.setPasswordHash(caller.user.id, try await hasher.hash(body.newPassword))
        _ = try await sessions.revokeAll(of: caller.user.id, except: caller.sessionID)
        return .noContent
    }

    /// 32 random bytes, base64url: the bearer token. Only its SHA-256 is stored.
    static func newToken() -> String {
        Base64URL.randomToken(bytes: 32)
    }
}
