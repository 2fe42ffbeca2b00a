"""Seed a live api-server with one of everything, then run schemathesis against it.

Run by scripts/fuzz-api (which starts the server) with the virtualenv's Python:

    fuzz_api.py BASE_URL EMAIL PASSWORD OPENAPI_PATH WORK_DIR [schemathesis args...]

The seeded organization, project and environment are fixed path parameters, so generated
requests reach the handlers instead of stopping at 404; everything else is generated from the
description, and schemathesis's stateful phase follows the links it infers between operations.
The run fails on any 5xx and on any answer the description does not allow (status, content
type, headers, body).
"""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path


def call(base, method, path, token=None, body=None):
    request = urllib.request.Request(base + path, method=method)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=30) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        sys.exit(f"fuzz-api: seeding {method} {path} failed: {error.code} {error.read().decode(errors='replace')}")
    return json.loads(text) if text else None


def seed(base, email, password):
    token = call(base, "POST", "/v1/sessions", body={"email": email, "password": password})["token"]
    organization = call(base, "POST", "/v1/organizations", token, {"name": "Fuzzed"})["id"]
    project = call(base, "POST", f"/v1/organizations/{organization}/projects", token, {"name": "Fuzzed"})["id"]
    scope = f"/v1/projects/{project}"
    environment = call(base, "POST", f"{scope}/environments", token, {"name": "production", "variables": {"A": "1"}})["id"]
    task = call(base, "POST", f"{scope}/tasks", token, {"name": "build", "script": "echo hi"})["id"]
    job = call(base, "POST", f"{scope}/jobs", token, {"name": "build", "task_id": task, "environment_id": environment})["id"]
    call(base, "POST", f"{scope}/jobs/{job}/operations", token)
    call(base, "POST", f"{scope}/environments/{environment}/secrets", token, {"name": "TOKEN", "value": "s3cret"})
    repository = call(base, "POST", f"{scope}/repositories", token, {"url": "git@example.com:acme/app.git"})["id"]
    call(base, "POST", f"{scope}/schedules", token, {"job_id": job, "cron": "0 3 * * *", "time_zone": "Europe/Berlin"})
    call(
        base, "POST", f"{scope}/triggers", token,
        {"repository_id": repository, "job_id": job, "name": "main", "ref_pattern": "^refs/heads/main$", "change_type": "change"},
    )
    call(base, "POST", f"{scope}/webhooks", token, {"job_id": job, "name": "deploy"})
    notifier = call(base, "POST", f"{scope}/notifiers", token, {"name": "ops", "recipients": ["ops@example.com"]})["id"]
    call(base, "POST", f"{scope}/notification-rules", token, {"notifier_id": notifier, "activity_pattern": "operation.*"})
    call(base, "POST", f"/v1/organizations/{organization}/invitations", token, {"email": "new@example.com", "role": "member"})
    return token, {"organization": organization, "project": project, "environment": environment}


def main():
    base, email, password, description, work = sys.argv[1:6]
    extra = sys.argv[6:]
    token, fixed = seed(base, email, password)
    config = Path(work) / "schemathesis.toml"
    config.write_text(
        "[parameters]\n" + "".join(f'"path.{name}" = "{value}"\n' for name, value in fixed.items())
    )
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run", description,
        "--url", base,
        "--header", f"Authorization: Bearer {token}",
        "--checks", ",".join([
            "not_a_server_error", "status_code_conformance", "content_type_conformance",
            "response_headers_conformance", "response_schema_conformance",
        ]),
        # The WebSocket is tested by the Swift suites; these would end the run's session, or
        # archive the fixed organization, project and environment under the rest of the run.
        "--exclude-path", "/ws",
        "--exclude-operation-id", "logOut",
        "--exclude-operation-id", "revokeSession",
        "--exclude-operation-id", "archiveOrganization",
        "--exclude-operation-id", "archiveProject",
        "--exclude-operation-id", "archiveEnvironment",
        "--no-color",
        *extra,
    ]
    sys.exit(subprocess.call(command, cwd=work))


if __name__ == "__main__":
    main()
