import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Store
import Testing

@testable import APIServer

/// The web app as the server serves it, and the browser's session: a cookie the page's scripts
/// cannot read, good for changes only from the server's own pages.
@Suite struct WebAppAPITests {
    static let origin = HTTPField.Name("Origin")!

    @Test func theAppIsServedWithAStrictPolicyAtEveryPage() async throws {
        try await APIHarness.with("api_webapp") { _, client in
            let index = try await client.send(.get, "/")
            #expect(index.status == .ok)
            #expect(index.headers[.contentType] == "text/html; charset=utf-8")
            let csp = try #require(index.headers[.contentSecurityPolicy])
            #expect(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"))
            #expect(index.headers[.xContentTypeOptions] == "nosniff")
            let html = String(buffer: index.body)
            #expect(!html.contains("{{version}}") && !html.contains("<script>"), "no inline script")

            // Deep links (and the links in mails) open the app too.
            for path in ["/projects/\(UUID())/operations/\(UUID())", "/verify-email?token=x", "/login", "/admin"] {
                let page = try await client.send(.get, path)
                #expect(page.status == .ok && String(buffer: page.body) == html, "\(path)")
            }

            let script = try #require(html.firstMatch(of: /src="(\/assets\/[0-9a-f]{16}\/app\.js)"/)?.1)
            let asset = try await client.send(.get, String(script))
            #expect(asset.status == .ok)
            #expect(asset.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(asset.headers[.cacheControl] == "public, max-age=31536000, immutable")
            #expect(try await client.send(.get, "/assets/0000000000000000/app.js").status == .notFound)
            #expect(try await client.send(.get, String(script).replacingOccurrences(of: "app.js", with: "x.js")).status == .notFound)
            // The API's answers carry the headers too.
            #expect(try await client.send(.get, "/v1/me").headers[.contentSecurityPolicy] == csp)
        }
    }

    @Test func theBrowsersSessionIsACookieGoodForChangesFromItsOwnPagesOnly() async throws {
        try await APIHarness.with("api_webapp_cookie") { harness, client in
            let email = "cookie-\(TestRedis.randomHex())@example.com"
            _ = try await harness.users.create(
                email: email, name: "Cookie", passwordHash: try await PasswordHasher(cost: 4).hash("correct horse battery"), verified: true)
            let login = try await client.send(
                .post, "/v1/sessions", json: #"{"email":"\#(email)","password":"correct horse battery","cookie":true}"#)
            #expect(login.status == .created, "\(String(buffer: login.body))")
            #expect(try login.json()["token"] == nil, "the page's scripts never see the token")
            let setCookie = try #require(login.headers[.setCookie])
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] { #expect(setCookie.contains(attribute), "\(attribute)") }
            #expect(!setCookie.contains("Secure"), "the public URL is http here")
            let value = try #require(setCookie.split(separator: ";").first.map(String.init))
            let cookie: HTTPFields = [.cookie: value]

            #expect(try await client.send(.get, "/v1/me", headers: cookie).json()["email"] as? String == email)

            // A change with the cookie needs the server's own origin.
            let body = #"{"name":"Cookie Inc"}"#
            let bare = try await client.send(.post, "/v1/organizations", json: body, headers: cookie)
            #expect(bare.status == .forbidden)
            #expect(try bare.problem()["type"] as? String == Problem.base + "cross-origin")
            var elsewhere = cookie
            elsewhere[Self.origin] = "https://evil.example"
            #expect(try await client.send(.post, "/v1/organizations", json: body, headers: elsewhere).status == .forbidden)
            var own = cookie
            own[Self.origin] = "http://localhost"
            #expect(try await client.send(.post, "/v1/organizations", json: body, headers: own).status == .created)
            // A bearer client needs no Origin.
            let token = try await harness.signedIn("Bearer", client: client).token
            #expect(try await client.send(.post, "/v1/organizations", token: token, json: body).status == .created)

            // The live socket takes the cookie from the server's own pages only: from another
            // origin the cookie is ignored, and the socket waits for an auth message instead. (A
            // raw handshake: the test client sends an Origin of its own.)
            let port = try #require(client.port)
            try await RawConnection.withConnections(port: port) { open in
                func handshake(origin: String) -> String {
                    "GET /ws HTTP/1.1\r\nHost: localhost:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                        + "Origin: \(origin)\r\nCookie: \(value)\r\n\r\n"
                }
                let ownPage = try await open()
                try await ownPage.send(handshake(origin: "http://localhost:\(port)"))
                try await eventually("the socket is ready") { ownPage.text.contains(#""type":"ready""#) }
                #expect(ownPage.text.hasPrefix("HTTP/1.1 101"))
                let otherSite = try await open()
                try await otherSite.send(handshake(origin: "https://evil.example"))
                try await eventually("the upgrade") { otherSite.text.hasPrefix("HTTP/1.1 101") }
                try await Task.sleep(for: .seconds(1))
                #expect(!otherSite.text.contains(#""type":"ready""#), "the cookie counted from another site")
            }

            // Logging out revokes the session and clears the cookie.
            let logout = try await client.send(.delete, "/v1/sessions/current", headers: own)
            #expect(logout.status == .noContent)
            #expect(logout.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await client.send(.get, "/v1/me", headers: cookie).status == .unauthorized)
        }
    }

    /// Behind an https public URL: a `__Host-` cookie that is `Secure`, HSTS, and no plain-http
    /// page on the same host passing as the server's own.
    @Test func behindHTTPSTheCookieIsHostOnlyAndPlainHTTPPagesAreNotOwnPages() async throws {
        try await APIHarness.with("api_webapp_https", configure: { $0.publicURL = "https://harrow.example.com" }) { harness, client in
            let index = try await client.send(.get, "/")
            #expect(index.headers[.strictTransportSecurity] == "max-age=31536000")
            #expect(try await client.send(.get, "/v1/me").headers[.cacheControl] == "no-store")
            let email = "https-\(TestRedis.randomHex())@example.com"
            _ = try await harness.users.create(
                email: email, name: "Https", passwordHash: try await PasswordHasher(cost: 4).hash("correct horse battery"), verified: true)
            let login = try await client.send(
                .post, "/v1/sessions", json: #"{"email":"\#(email)","password":"correct horse battery","cookie":true}"#)
            let setCookie = try #require(login.headers[.setCookie])
            #expect(setCookie.hasPrefix("__Host-harrow_session=") && setCookie.contains("; Secure"), "\(setCookie)")
        }

        let cookie = SessionCookie(publicURL: "https://harrow.example.com/")
        func request(_ method: HTTPRequest.Method, origin: String?, host: String = "harrow.example.com") -> HTTPRequest {
            var request = HTTPRequest(method: method, scheme: "https", authority: host, path: "/v1/organizations")
            if let origin { request.headerFields[Self.origin] = origin }
            return request
        }
        #expect(cookie.allows(request(.post, origin: "https://harrow.example.com")))
        #expect(cookie.allows(request(.post, origin: "HTTPS://Harrow.Example.com")))
        #expect(!cookie.allows(request(.post, origin: "http://harrow.example.com")), "a plain-http page on the same host")
        #expect(!cookie.allows(request(.post, origin: nil)))
        #expect(!cookie.allows(request(.post, origin: "null")))
        #expect(!cookie.allows(request(.delete, origin: "https://harrow.example.com.evil.example")))
        #expect(cookie.allows(request(.get, origin: nil)), "safe methods change nothing")
        #expect(!cookie.comesFromOwnPages(request(.get, origin: nil)), "a socket needs its Origin")
        // Reached by another name (the host it was sent to, under the public URL's scheme).
        #expect(cookie.allows(request(.post, origin: "https://10.0.0.5:8443", host: "10.0.0.5:8443")))

        // Two session cookies (one planted by a sibling domain, say) count as none.
        #expect(cookie.token(in: [.cookie: "__Host-harrow_session=abc"]) == "abc")
        #expect(cookie.token(in: [.cookie: "__Host-harrow_session=abc; __Host-harrow_session=def"]) == nil)
        #expect(cookie.token(in: [.cookie: "harrow_session=abc"]) == nil, "the plain name does not count behind https")
    }
}
