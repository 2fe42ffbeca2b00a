import Mustache

/// A mail Harrow sends: a subject, a plain-text body and an HTML body, each a Mustache template
/// over the job's `data`. Text parts are rendered without HTML escaping; the HTML part escapes
/// every value.
public struct MailTemplate: Sendable {
    public let name: String
    /// The `data` keys the template needs; a job without one is dead-lettered, not sent half-empty.
    public let required: [String]
    let subject: MustacheTemplate
    let text: MustacheTemplate
    let html: MustacheTemplate

    /// A rendered mail.
    public struct Rendered: Sendable, Hashable {
        public var subject: String
        public var text: String
        public var html: String
    }

    /// Why a mail could not be rendered.
    public enum RenderingError: Error, Sendable, Hashable, CustomStringConvertible {
        case unknownTemplate(String)
        case missingData(template: String, keys: [String])

        public var description: String {
            switch self {
            case .unknownTemplate(let name): "no mail template \"\(name)\""
            case .missingData(let template, let keys): "mail template \(template) needs \(keys.joined(separator: ", "))"
            }
        }
    }

    init(name: String, required: [String], subject: String, text: String, html: String) {
        self.name = name
        self.required = required
        // The templates are constants of this file: a syntax error is a bug caught by the tests.
        self.subject = try! MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + subject)
        self.text = try! MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + text)
        self.html = try! MustacheTemplate(string: html)
    }

    /// Renders the template named `name` with `data`.
    public static func render(_ name: String, data: [String: String]) throws(RenderingError) -> Rendered {
        guard let template = catalog[name] else { throw .unknownTemplate(name) }
        let missing = template.required.filter { (data[$0] ?? "").isEmpty }
        guard missing.isEmpty else { throw .missingData(template: name, keys: missing) }
        var data = data
        for key in MailNames.keys { data[key] = data[key].map(MailNames.plain) }
        return Rendered(
            // A subject is one line, whatever the data held.
            subject: template.subject.render(data).split(whereSeparator: \.isNewline).joined(separator: " "),
            text: template.text.render(data), html: template.html.render(data))
    }

    /// Every template by name.
    public static let catalog: [String: MailTemplate] = Dictionary(
        uniqueKeysWithValues: [verifyEmail, passwordReset, accountExists, invitation, operationSucceeded, operationFailed].map {
            ($0.name, $0)
        })

    static let verifyEmail = MailTemplate(
        name: "verify-email", required: ["name", "link"],
        subject: "Verify your email address for Harrow",
        text: """
            Hello {{name}},

            please confirm that this is your email address by opening this link:

            {{link}}

            The link works for three days. If you did not sign up for Harrow, ignore this mail.
            """,
        html: """
            <p>Hello {{name}},</p>
            <p>please confirm that this is your email address:</p>
            <p><a href="{{link}}">Verify my email address</a></p>
            <p>The link works for three days. If you did not sign up for Harrow, ignore this mail.</p>
            """)

    static let passwordReset = MailTemplate(
        name: "password-reset", required: ["name", "link"],
        subject: "Reset your Harrow password",
        text: """
            Hello {{name}},

            someone (we hope you) asked to reset your Harrow password. To choose a new one, open:

            {{link}}

            The link works once, for an hour. If you did not ask for it, ignore this mail: your
            password stays as it is.
            """,
        html: """
            <p>Hello {{name}},</p>
            <p>someone (we hope you) asked to reset your Harrow password.</p>
            <p><a href="{{link}}">Choose a new password</a></p>
            <p>The link works once, for an hour. If you did not ask for it, ignore this mail: your password stays as it is.</p>
            """)

    /// Sent instead of a second account when someone signs up with an address that has one: the
    /// answer to the sign-up is the same, and the address's owner can take the account back
    /// with the reset link (which also proves the address).
    static let accountExists = MailTemplate(
        name: "account-exists", required: ["name", "link"],
        subject: "Someone tried to sign up for Harrow with your address",
        text: """
            Hello {{name}},

            someone (maybe you) tried to sign up for Harrow with this address, which already has an
            account. If it was you, log in, or choose a new password here:

            {{link}}

            The link works once, for an hour. If it was not you, ignore this mail.
            """,
        html: """
            <p>Hello {{name}},</p>
            <p>someone (maybe you) tried to sign up for Harrow with this address, which already has an account. If it was you, log in, or choose a new password:</p>
            <p><a href="{{link}}">Choose a new password</a></p>
            <p>The link works once, for an hour. If it was not you, ignore this mail.</p>
            """)

    // Names stay out of subjects: a subject is what a spam filter and a reader judge a mail by.
    static let invitation = MailTemplate(
        name: "invitation", required: ["inviter", "role", "link"],
        subject: "You are invited to Harrow",
        text: """
            Hello,

            {{inviter}} invited you to join them on Harrow as {{role}}. To accept or refuse, open:

            {{link}}
            """,
        html: """
            <p>Hello,</p>
            <p>{{inviter}} invited you to join them on Harrow as <strong>{{role}}</strong>.</p>
            <p><a href="{{link}}">Accept or refuse the invitation</a></p>
            """)

    static let operationSucceeded = MailTemplate(
        name: "operation-succeeded", required: ["job", "link"],
        subject: "✓ {{job}} succeeded{{#project}} in {{project}}{{/project}}",
        text: """
            {{job}} succeeded{{#project}} in {{project}}{{/project}}.

            {{link}}
            """,
        html: """
            <p><strong>{{job}}</strong> succeeded{{#project}} in {{project}}{{/project}}.</p>
            <p><a href="{{link}}">See the operation</a></p>
            """)

    static let operationFailed = MailTemplate(
        name: "operation-failed", required: ["job", "link"],
        subject: "✗ {{job}} failed{{#project}} in {{project}}{{/project}}",
        text: """
            {{job}} failed{{#project}} in {{project}}{{/project}}{{#exit_status}} with exit status {{exit_status}}{{/exit_status}}.

            {{link}}
            {{#log_tail}}

            The end of its log:

            {{log_tail}}
            {{/log_tail}}
            """,
        html: """
            <p><strong>{{job}}</strong> failed{{#project}} in {{project}}{{/project}}{{#exit_status}} with exit status {{exit_status}}{{/exit_status}}.</p>
            <p><a href="{{link}}">See the operation</a></p>
            {{#log_tail}}<p>The end of its log:</p>
            <pre>{{log_tail}}</pre>{{/log_tail}}
            """)
}
