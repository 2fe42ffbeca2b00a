import Hummingbird
import OperationLogs
import Store

// The store's records are the API's response bodies (encoded as snake_case JSON by the
// context's encoder); none of them carries a secret or a password hash.
extension User: ResponseEncodable {}
extension Organization: ResponseEncodable {}
extension Project: ResponseEncodable {}
extension Session: ResponseEncodable {}
extension Store.Environment: ResponseEncodable {}
extension ShellTask: ResponseEncodable {}
extension JobDefinition: ResponseEncodable {}
extension Secret: ResponseEncodable {}
extension Store.Operation: ResponseEncodable {}
extension Invitation: ResponseEncodable {}
extension Repository: ResponseEncodable {}
extension SSHKey: ResponseEncodable {}
extension GitTrigger: ResponseEncodable {}
extension Webhook: ResponseEncodable {}
extension Notifier: ResponseEncodable {}
extension NotificationRule: ResponseEncodable {}
extension Activity: ResponseEncodable {}
extension OperationLog.Chunk: ResponseEncodable {}
