import Testing

@testable import Store

@Suite struct GitURLPolicyTests {
    @Test(
        arguments: [
            ("ssh://git@github.com/acme/web.git", GitRemoteURL.Transport.ssh, "git", "github.com", nil, "/acme/web.git"),
            ("ssh://example.com:2222/srv/repo", .ssh, nil, "example.com", 2222, "/srv/repo"),
            ("ssh://deploy@[::1]:22/x.git", .ssh, "deploy", "::1", 22, "/x.git"),
            ("git@github.com:acme/web.git", .ssh, "git", "github.com", nil, "acme/web.git"),
            ("gitlab.example.com:group/sub/repo", .ssh, nil, "gitlab.example.com", nil, "group/sub/repo"),
            ("https://github.com/acme/web.git", .https, nil, "github.com", nil, "/acme/web.git"),
            ("HTTPS://GitHub.com/acme/web", .https, nil, "github.com", nil, "/acme/web"),
            ("http://127.0.0.1:8080/repo.git", .http, nil, "127.0.0.1", 8080, "/repo.git"),
        ] as [(String, GitRemoteURL.Transport, String?, String, Int?, String)])
    func accepts(url: String, transport: GitRemoteURL.Transport, user: String?, host: String, port: Int?, path: String) throws {
        let parsed = try GitURLPolicy.validate(url)
        #expect(parsed.string == url)
        #expect(parsed.transport == transport)
        #expect(parsed.user == user)
        #expect(parsed.host == host)
        #expect(parsed.port == port)
        #expect(parsed.path == path)
    }

    @Test(arguments: [
        ("", "empty"),
        ("file:///srv/repo.git", "file:// URLs are not allowed"),
        ("FILE:///srv/repo.git", "file:// URLs are not allowed"),
        ("/srv/repo.git", "local paths are not allowed"),
        ("./repo", "local paths are not allowed"),
        ("../x/y:z", "local paths are not allowed"),
        ("repo", "local paths are not allowed"),
        ("~/repo.git", "local paths are not allowed"),
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh%20-c%20id", "remote helpers ('ext::') are not allowed"),
        ("fd::17", "remote helpers ('fd::') are not allowed"),
        ("git://github.com/acme/web.git", "unauthenticated and unencrypted"),
        ("ftp://example.com/repo.git", "the transport 'ftp' is not supported"),
        ("svn+ssh://example.com/repo", "the transport 'svn+ssh' is not supported"),
        ("https://user:secret@github.com/acme/web.git", "must not contain a user name, password or token"),
        ("https://ghp_token123@github.com/acme/web.git", "must not contain a user name, password or token"),
        ("http://user@example.com/repo.git", "must not contain a user name, password or token"),
        ("ssh://git:secret@example.com/repo.git", "ssh URLs must not contain a password"),
        ("git:secret@example.com:acme/web.git", "passwords are not allowed"),
        ("https://github.com/acme/web .git", "whitespace"),
        ("https://github.com/acme/web.git\n", "whitespace"),
        ("https://github.com/acme/\u{1}web.git", "control characters"),
        ("-oProxyCommand=touch /tmp/x", "whitespace"),
        ("--upload-pack=touch:x", "starts with '-'"),
        ("ssh://-oProxyCommand=x/repo", "the host must not start with '-'"),
        ("ssh://-x@example.com/repo", "the user name must not start with '-'"),
        ("https://github.com", "no repository path"),
        ("https://github.com/", "no repository path"),
        ("https://:443/acme/web", "no host"),
        ("https://github.com:99999/acme/web", "is not a number from 1 to 65535"),
        ("https://github.com:x/acme/web", "is not a number from 1 to 65535"),
        ("https://exa_mple.com/a#frag", "fragment"),
        ("git@github.com:", "no repository path"),
    ])
    func refuses(url: String, reason: String) {
        #expect {
            try GitURLPolicy.validate(url)
        } throws: { error in
            guard let error = error as? GitURLPolicy.Refusal else { return false }
            return error.message.contains(reason)
        }
    }

    @Test func errorMessagesNeverRepeatCredentials() {
        for url in ["https://user:hunter2@github.com/a/b.git", "https://hunter2@github.com/a/b.git"] {
            do {
                _ = try GitURLPolicy.validate(url)
                Issue.record("\(url) was accepted")
            } catch {
                #expect(!error.message.contains("hunter2"))
            }
        }
    }

    @Test(arguments: [
        ("git@github.com:acme/web.git", "web"),
        ("https://github.com/acme/web.git", "web"),
        ("https://github.com/acme/web", "web"),
        ("https://github.com/acme/web/", "web"),
        ("https://github.com/acme/web.git/", "web"),
        ("ssh://git@example.com:2222/srv/git/Tools_v2.0.git", "Tools_v2.0"),
        ("example.com:solo", "solo"),
        ("https://example.com/a/my-repo.js", "my-repo.js"),
    ])
    func defaultNames(url: String, name: String) throws {
        #expect(try GitURLPolicy.defaultName(for: url) == name)
    }

    @Test(arguments: [
        "https://example.com/a/.git",
        "https://example.com/a/..",
        "https://example.com/a/.",
        "https://example.com/a/my%20repo.git",
        "https://example.com/a/caf\u{e9}.git",
        "https://example.com/a/" + String(repeating: "x", count: 101),
        "file:///srv/repo.git",
    ])
    func refusesDefaultNames(url: String) {
        #expect(throws: GitURLPolicy.Refusal.self) { try GitURLPolicy.defaultName(for: url) }
    }

    @Test func longestNameIsAccepted() throws {
        let name = String(repeating: "x", count: GitURLPolicy.maximumNameLength)
        #expect(try GitURLPolicy.defaultName(for: "https://example.com/a/\(name).git") == name)
    }
}
