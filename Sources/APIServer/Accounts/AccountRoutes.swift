import Foundation
import HTTPTypes
import Hummingbird
import JobContracts
import Logging
import PostgresNIO
import Store

/// Sign-up, email verification, login and logout, sessions, and passwords.
struct AccountRoutes: Sendable {
    let users: UserStore
    let sessions: SessionStore
    let database: PostgresClient
    let hasher: PasswordHasher
    let signer: LinkSigner
    let limiter: LoginRateLimiter
    let configuration: APIConfiguration
    let logger: Logger

    struct SignUp: RequestBody {
        static let fields: Set<String> = ["email", "name", "password"]
        var email: String
        var name: String
        var password: String
    }

    struct Login: RequestBody {
        static let fields: Set<String> = ["email", "password"]
        var email: String
        var password: String
    }

    struct TokenBody: RequestBody {
        static let fields: Set<String> = ["token"]
        var token: String
    }

    struct Forgot: RequestBody {
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
        var token: String
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
        router.post("sessions") { request, context in try await login(request, context) }
        router.get("sessions") { request, context in try await listSessions(request, context) }
        router.delete("sessions/current") { _, context -> HTTPResponse.Status in
            try await sessions.revoke(try context.caller().sessionID, user: try context.caller().user.id)
            return .noContent
        }
        router.delete("sessions/:id") { _, context -> HTTPResponse.Status in
            let id = try context.parameters.require("id", as: UUID.self)
            try await sessions.revoke(id, user: try context.caller().user.id)
            return .noContent
        }
        router.get("me") { _, context -> User in try context.caller().user }
        router.post("password/forgot") { request, _ in try await forgot(request) }
        router.post("password/reset") { request, _ in try await reset(request) }
        router.post("password/change") { request, context in try await change(request, context) }
    }

    func signUp(_ request: Request, _ context: APIContext) async throws -> EditedResponse<User> {
        let body = try await request.json(SignUp.self, limit: configuration.bodyLimit)
        try hasher.validate(body.password)
        let hash = try await hasher.hash(body.password)
        let signer = self.signer
        let base = configuration.publicURL
        let lifetime = configuration.verifyLinkLifetime
        let user = try await users.create(email: body.email, name: body.name, passwordHash: hash) { user in
            let token = signer.token(
                .verifyEmail, subject: user.id, expiry: Date().addingTimeInterval(lifetime), binding: user.email.lowercased())
            return [
                try OutboxJob(
                    SendMail(
                        template: "verify-email", to: user.email, data: ["name": user.name, "link": "\(base)/verify-email?token=\(token)"]
                    ))
            ]
        }
        context.logger.info("user signed up", metadata: ["user_id": "\(user.id)"])
        return EditedResponse(status: .created, response: user)
    }

    func verify(_ request: Request) async throws -> HTTPResponse.Status {
        let body = try await request.json(TokenBody.self, limit: configuration.bodyLimit)
        let users = self.users
        guard let id = try await signer.subject(of: body.token, for: .verifyEmail, binding: { try await users.find($0).email.lowercased() })
        else {
            throw Problem(
                type: Problem.base + "invalid-token", title: "Invalid token", status: 400, detail: "the link is invalid or has expired")
        }
        try await users.markEmailVerified(id)
        return .noContent
    }

    func login(_ request: Request, _ context: APIContext) async throws -> EditedResponse<SessionCreated> {
        let body = try await request.json(Login.self, limit: configuration.bodyLimit)
        if let wait = try await limiter.retryAfter(email: body.email, address: context.clientAddress) {
            throw Problem.tooManyRequests(retryAfter: wait)
        }
        let found = try await users.findForLogin(email: body.email)
        // Verify against a real hash even for an unknown email, so timing does not tell.
        let valid = try await hasher.verify(body.password, hash: found?.passwordHash ?? hasher.decoyHash)
        guard let (user, _) = found, valid, user.blockedAt == nil else {
            try await limiter.recordFailure(email: body.email, address: context.clientAddress)
            throw Problem.unauthorized("the email or the password is wrong")
        }
        guard user.emailVerifiedAt != nil else {
            throw Problem(
                type: Problem.base + "email-not-verified", title: "Email not verified", status: 403,
                detail: "follow the link in the mail we sent to verify your address first")
        }
        try await limiter.recordSuccess(email: body.email)
        let token = Self.newToken()
        let session = try await sessions.create(
            user: user.id, tokenHash: SessionStore.tokenHash(token), expiresAt: Date().addingTimeInterval(configuration.sessionLifetime),
            userAgent: request.headers[.userAgent], address: context.clientAddress)
        return EditedResponse(status: .created, response: SessionCreated(token: token, session: session, user: user))
    }

    func listSessions(_ request: Request, _ context: APIContext) async throws -> PageBody<SessionView> {
        let caller = try context.caller()
        let page = try await sessions.list(user: caller.user.id, page: try request.pageRequest())
        return PageBody(
            Page(items: page.items.map { SessionView(session: $0, current: $0.id == caller.sessionID) }, nextCursor: page.nextCursor))
    }

    func forgot(_ request: Request) async throws -> HTTPResponse.Status {
        let body = try await request.json(Forgot.self, limit: configuration.bodyLimit)
        // The answer is the same whether or not the address has an account.
        if let (user, hash) = try await users.findForLogin(email: body.email), user.blockedAt == nil {
            let token = signer.token(
                .resetPassword, subject: user.id, expiry: Date().addingTimeInterval(configuration.resetLinkLifetime), binding: hash)
            let mail = try OutboxJob(
                SendMail(
                    template: "password-reset", to: user.email,
                    data: ["name": user.name, "link": "\(configuration.publicURL)/reset-password?token=\(token)"]
                ))
            try await database.inTransaction(logger: logger) { connection in
                try await Outbox.enqueue([mail], on: connection, logger: logger)
            }
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
            throw Problem(
                type: Problem.base + "invalid-token", title: "Invalid token", status: 400, detail: "the link is invalid, used or expired")
        }
        try await users.setPasswordHash(id, try await hasher.hash(body.password))
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
