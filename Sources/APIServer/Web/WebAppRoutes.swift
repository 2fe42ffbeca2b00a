import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The web app, compiled into the binary: `index.html` at `/` and at every page's path (so deep
/// links, reloads and the links in mails open the app), and its scripts and styles under
/// `/assets/<version>/`, where the version is a hash of their contents: they are cached for a
/// year, and a new build's are new URLs.
struct WebAppRoutes: Sendable {
    /// The files under `/assets/<version>/`, with their types.
    static let assets: [String: (type: String, bytes: [UInt8])] = [
        "app.js": ("text/javascript; charset=utf-8", PackageResources.app_js),
        "app.css": ("text/css; charset=utf-8", PackageResources.app_css),
    ]

    /// The first 16 hex digits of SHA-256 over every asset.
    static let version: String = {
        var hash = SHA256()
        for name in assets.keys.sorted() {
            hash.update(data: Array(name.utf8))
            hash.update(data: assets[name]?.bytes ?? [])
        }
        return hash.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }()

    static let index: ByteBuffer = ByteBuffer(
        string: String(decoding: PackageResources.index_html, as: UTF8.self).replacingOccurrences(of: "{{version}}", with: version))

    /// Paths the app answers: its pages, beside the API's `/v1`, `/admin/queues`, `/hooks`, `/ws`.
    static let pages: [RouterPath] = [
        "/", "login", "signup", "forgot-password", "reset-password", "verify-email", "invitations/**", "projects/**",
        "organizations/**", "account", "account/**", "admin", "queues/**",
    ]

    func addRoutes(to router: some RouterMethods<APIContext>) {
        for path in Self.pages {
            router.get(path) { _, _ -> Response in
                Response(
                    status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                    body: ResponseBody(byteBuffer: Self.index))
            }
        }
        router.get("assets/:version/:file") { _, context -> Response in
            guard context.parameters.get("version") == Self.version, let file = context.parameters.get("file"),
                let asset = Self.assets[file]
            else { throw Problem.notFound() }
            return Response(
                status: .ok, headers: [.contentType: asset.type, .cacheControl: "public, max-age=31536000, immutable"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: asset.bytes)))
        }
    }
}
