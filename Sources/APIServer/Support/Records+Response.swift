import Hummingbird
import Store

// The store's records are the API's response bodies (encoded as snake_case JSON by the
// context's encoder); none of them carries a secret or a password hash.
extension User: ResponseEncodable {}
extension Organization: ResponseEncodable {}
extension Project: ResponseEncodable {}
extension Session: ResponseEncodable {}
