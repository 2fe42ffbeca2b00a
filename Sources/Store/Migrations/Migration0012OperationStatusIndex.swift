extension Migration {
    /// A project's operations by status, newest first: the operations list filtered by status
    /// (`?status=failed`) otherwise scans every operation of every project.
    static let operationStatusIndex = Migration(
        version: 12, name: "operation_status_index",
        sql: #"""
            create index operations_project_status_idx on operations (project_id, status, created_at desc, id desc);
            """#)
}
