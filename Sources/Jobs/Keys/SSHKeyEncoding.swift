import Crypto
import Foundation
import _CryptoExtras

/// One key's public blob and its private fields in the wire encoding, as they go into OpenSSH's files.
struct SSHKeyEncoding {
    /// The SSH key type, e.g. `ssh-ed25519`.
    let typeName: String
    /// The public key as SSH puts it on the wire (RFC 4253 §6.6, RFC 8709): what `authorized_keys`
    /// holds in base64 and what fingerprints hash.
    let publicKeyBlob: [UInt8]
    /// The private section's fields between the check ints and the comment, type name included.
    let privateFields: [UInt8]

    init(ed25519 key: Curve25519.Signing.PrivateKey) {
        typeName = "ssh-ed25519"
        let publicBytes = Array(key.publicKey.rawRepresentation)

        var blob = SSHWireWriter()
        blob.writeString(typeName)
        blob.writeString(publicBytes)
        publicKeyBlob = blob.bytes

        var fields = SSHWireWriter()
        fields.writeString(typeName)
        fields.writeString(publicBytes)
        // OpenSSH keeps the 64-byte secret key of the reference implementation, the 32-byte seed
        // (swift-crypto's raw representation) followed by the public key.
        fields.writeString(Array(key.rawRepresentation) + publicBytes)
        privateFields = fields.bytes
    }

    init(rsa key: _RSA.Signing.PrivateKey) throws {
        typeName = "ssh-rsa"
        // swift-crypto exposes no private RSA numbers, but its `derRepresentation` is PKCS#1.
        let numbers = try RSAPrivateKeyNumbers(pkcs1DER: Array(key.derRepresentation))

        var blob = SSHWireWriter()
        blob.writeString(typeName)
        blob.writeMPInt(unsignedBigEndian: numbers.publicExponent)
        blob.writeMPInt(unsignedBigEndian: numbers.modulus)
        publicKeyBlob = blob.bytes

        // OpenSSH's order, unlike PKCS#1's. Its iqmp is q⁻¹ mod p, which is PKCS#1's coefficient for
        // the same p and q, so nothing is swapped. It recomputes d mod (p-1) and d mod (q-1) on load.
        var fields = SSHWireWriter()
        fields.writeString(typeName)
        fields.writeMPInt(unsignedBigEndian: numbers.modulus)
        fields.writeMPInt(unsignedBigEndian: numbers.publicExponent)
        fields.writeMPInt(unsignedBigEndian: numbers.privateExponent)
        fields.writeMPInt(unsignedBigEndian: numbers.coefficient)
        fields.writeMPInt(unsignedBigEndian: numbers.prime1)
        fields.writeMPInt(unsignedBigEndian: numbers.prime2)
        privateFields = fields.bytes
    }
}
