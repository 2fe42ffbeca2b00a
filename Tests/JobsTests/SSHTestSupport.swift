import Foundation
import Testing

/// Reads the SSH wire encoding back, to check what SSHWireWriter and OpenSSHKeyPair wrote.
struct SSHWireReader {
    struct Truncated: Error {}

    private(set) var remaining: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) {
        remaining = bytes[...]
    }

    mutating func readBytes(_ count: Int) throws -> [UInt8] {
        guard remaining.count >= count else { throw Truncated() }
        defer { remaining = remaining.dropFirst(count) }
        return Array(remaining.prefix(count))
    }

    mutating func readUInt32() throws -> UInt32 {
        try readBytes(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func readString() throws -> [UInt8] {
        try readBytes(Int(readUInt32()))
    }

    mutating func readText() throws -> String {
        String(decoding: try readString(), as: UTF8.self)
    }
}

/// The fields of an unencrypted openssh-key-v1 file.
struct ParsedOpenSSHPrivateKey {
    var publicKeyBlob: [UInt8]
    var privateSectionLength: Int
    var checkInts: [UInt32]
    var keyType: String
    /// The key's own fields as raw `string`/`mpint` contents, in file order.
    var keyFields: [[UInt8]]
    var comment: String
    var padding: [UInt8]

    init(pem: String) throws {
        let lines = pem.split(separator: "\n", omittingEmptySubsequences: false)
        try #require(lines.first == "-----BEGIN OPENSSH PRIVATE KEY-----")
        try #require(lines.dropLast().last == "-----END OPENSSH PRIVATE KEY-----")
        try #require(lines.last == "", "the text must end in a newline")
        let body = lines.dropFirst().dropLast(2)
        for line in body {
            #expect(line.count <= 70)
        }
        #expect(body.dropLast().allSatisfy { $0.count == 70 })
        let bytes = try #require(Data(base64Encoded: body.joined()))

        var file = SSHWireReader(Array(bytes))
        #expect(try file.readBytes(15) == Array("openssh-key-v1\0".utf8))
        #expect(try file.readText() == "none")
        #expect(try file.readText() == "none")
        #expect(try file.readString() == [])
        #expect(try file.readUInt32() == 1)
        publicKeyBlob = try file.readString()
        let privateSection = try file.readString()
        #expect(file.remaining.isEmpty)
        privateSectionLength = privateSection.count

        var section = SSHWireReader(privateSection)
        checkInts = [try section.readUInt32(), try section.readUInt32()]
        keyType = try section.readText()
        let fieldCount =
            switch keyType {
            case "ssh-ed25519": 2
            case "ssh-rsa": 6
            default: 0
            }
        keyFields = try (0..<fieldCount).map { _ in try section.readString() }
        comment = try section.readText()
        padding = Array(section.remaining)
    }
}

struct CommandResult {
    var status: Int32
    var output: String
    var errorOutput: String
}

/// Runs a program to completion, in `directory`, optionally with a file as standard input.
func run(_ executable: String, _ arguments: [String], in directory: URL, inputFile: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let output = Pipe()
    let errorOutput = Pipe()
    process.standardOutput = output
    process.standardError = errorOutput
    if let inputFile {
        process.standardInput = try FileHandle(forReadingFrom: directory.appendingPathComponent(inputFile))
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    try process.run()
    // Outputs here are a few lines, far below a pipe's buffer, so reading one after the other can't deadlock.
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errorOutput.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus,
        output: String(decoding: outputData, as: UTF8.self),
        errorOutput: String(decoding: errorData, as: UTF8.self)
    )
}

func sshKeygen(_ arguments: [String], in directory: URL, inputFile: String? = nil) throws -> CommandResult {
    try run("/usr/bin/ssh-keygen", arguments, in: directory, inputFile: inputFile)
}

func makeTemporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sshkeyfmt-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

/// Writes a file created with `mode`, so a private key is never readable by others, even briefly.
func write(_ text: String, to name: String, in directory: URL, mode: Int = 0o644) throws {
    let created = FileManager.default.createFile(
        atPath: directory.appendingPathComponent(name).path,
        contents: Data(text.utf8),
        attributes: [.posixPermissions: mode]
    )
    try #require(created)
}

func read(_ name: String, in directory: URL) throws -> String {
    try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
}
