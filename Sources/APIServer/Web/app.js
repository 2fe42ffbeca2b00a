// Harrow's web app: plain ES module, no build step. Every page is a function of the URL; the
// API is the one on this origin, authenticated by the session cookie the login sets. Text from
// the API only ever goes in through textContent (el()), never as HTML.

const main = document.getElementById("main");
const nav = document.getElementById("nav");

/** An element with attributes, listeners (on*) and children (strings become text). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An API error: the problem document's status, detail and field errors. */
class APIError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new APIError(response.status, data || {});
  return data;
}

function go(path) {
  history.pushState(null, "", path);
  render();
}

/** A link inside the app: navigates without reloading. */
function link(path, ...children) {
  return el("a", { href: path, onclick: (event) => {
    // A new tab or window (a modifier, another button) is the browser's to open.
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    go(path);
  } }, ...children);
}

/** A button's action: the button is disabled while it runs (no double runs), a lost session
 * leads to the login page, and any other error is said next to the button. */
function guarded(action) {
  return async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    button.parentElement.querySelector(":scope > .action-error")?.remove();
    try {
      await action(event);
    } catch (error) {
      if (error instanceof APIError && error.status === 401) return toLogin();
      button.after(el("span", { class: "error action-error", role: "alert" }, ` ${error.message}`));
    } finally {
      button.disabled = false;
    }
  };
}

/** Shows an API error next to the form's fields it names, or above the form. */
function showError(form, error) {
  for (const old of form.querySelectorAll(".field-error, .form-error")) old.remove();
  for (const old of form.querySelectorAll("[aria-invalid]")) { old.removeAttribute("aria-invalid"); old.removeAttribute("aria-describedby"); }
  const fields = (error.problem && error.problem.errors) || [];
  const unplaced = [];
  let first = null;
  for (const field of fields) {
    const input = form.querySelector(`[name="${CSS.escape(field.field)}"]`);
    if (!input || input.hasAttribute("aria-invalid")) { unplaced.push(`${field.field} ${field.message}`); continue; }
    const message = el("span", { class: "field-error", id: `${input.id}-error` }, field.message);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", message.id);
    input.closest("label").append(message);
    first = first || input;
  }
  if (!fields.length || unplaced.length) form.prepend(el("p", { class: "error form-error", role: "alert" }, unplaced.length ? unplaced.join("; ") : error.message));
  (first || form).focus?.();
}

let formCount = 0;

/** A form whose submit runs `action` with the named fields' values. */
function form(fields, submit, action) {
  const prefix = `f${++formCount}`;
  const node = el("form", { tabindex: "-1" },
    fields.map(([name, label, type = "text", extra = {}]) =>
      el("label", {}, label,
        type === "textarea" || type === "script"
          ? el("textarea", { name, id: `${prefix}-${name}`, rows: 6, class: type === "script" ? "code script" : "code", spellcheck: "false", ...extra })
          : type === "select"
            ? el("select", { name, id: `${prefix}-${name}` }, (extra.options || []).map(([value, text]) => el("option", { value, selected: value === extra.selected }, text)))
            : el("input", { name, id: `${prefix}-${name}`, type, ...extra }))),
    el("button", { type: "submit" }, submit));
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(node).entries());
    try {
      await action(values);
    } catch (error) {
      // Logged out meanwhile: to the login page (where a 401 is a wrong password, shown).
      if (error instanceof APIError && error.status === 401 && location.pathname !== "/login") return toLogin();
      showError(node, error);
    }
  });
  return node;
}

function page(title, ...children) {
  document.title = `${title} · Harrow`;
  const heading = el("h1", { tabindex: "-1" }, title);
  main.replaceChildren(heading, ...children);
  heading.focus();
  announce(title);
}

/** Says `text` to screen readers (a polite live region of its own, not the whole page). */
function announce(text) {
  let region = document.getElementById("announcer");
  if (!region) {
    region = el("div", { id: "announcer", class: "visually-hidden", "aria-live": "polite" });
    document.body.append(region);
  }
  region.textContent = text;
}

// Tabs in a script editor insert a tab; Escape then Tab leaves it (keyboard users are not trapped).
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (!(target instanceof HTMLTextAreaElement) || !target.classList.contains("script") || target.readOnly) return;
  if (event.key === "Escape") target.dataset.release = "1";
  if (event.key !== "Tab" || event.shiftKey) return;
  if (target.dataset.release) { delete target.dataset.release; return; }
  event.preventDefault();
  const { selectionStart: start, selectionEnd: end, value } = target;
  target.value = value.slice(0, start) + "\t" + value.slice(end);
  target.selectionStart = target.selectionEnd = start + 1;
});

let me = null;

/** Where to go after logging in: the page that asked for it, if it is one of the app's. */
function afterLogin() {
  const next = sessionStorage.getItem("harrow.next") || "/";
  sessionStorage.removeItem("harrow.next");
  return next.startsWith("/") && !next.startsWith("//") && next !== "/login" ? next : "/";
}

function toLogin() {
  if (location.pathname !== "/login") sessionStorage.setItem("harrow.next", location.pathname + location.search);
  me = null;
  // Replaced, not pushed: Back from the login page must not land on the page that needed it.
  history.replaceState(null, "", "/login");
  render();
}

async function loginPage() {
  nav.replaceChildren(link("/signup", "Sign up"));
  page("Log in", form(
    [["email", "Email", "email", { autocomplete: "username", required: true }],
      ["password", "Password", "password", { autocomplete: "current-password", required: true }]],
    "Log in",
    async ({ email, password }) => {
      try {
        await api("POST", "/v1/sessions", { email, password, cookie: true });
      } catch (error) {
        if (error instanceof APIError && error.status === 403 && (error.problem.type || "").endsWith("email-not-verified")) {
          const resend = el("button", { type: "button", class: "secondary", onclick: guarded(async () => {
            await api("POST", "/v1/users/verify/resend", { email });
            resend.replaceWith(el("span", { role: "status" }, "A new link is on its way."));
          }) }, "Send the link again");
          main.append(el("p", {}, error.message, " ", resend));
          return;
        }
        throw error;
      }
      me = null;
      history.replaceState(null, "", afterLogin());
      render();
    }),
    el("p", {}, link("/forgot-password", "Forgot your password?"), " · ", link("/signup", "Make an account")));
}

/** The pages anyone may open: signing up, the links in mails. */
async function publicPage(path, query) {
  nav.replaceChildren(link("/login", "Log in"));
  const done = (title, text) => page(title, el("p", { role: "status" }, text), el("p", {}, link("/login", "Log in")));
  if (path === "/signup") {
    return page("Sign up", form(
      [["email", "Email", "email", { autocomplete: "email", required: true }], ["name", "Name", "text", { autocomplete: "name", required: true }],
        ["password", "Password (at least 10 characters)", "password", { autocomplete: "new-password", required: true, minlength: 10 }]],
      "Sign up", async (values) => {
        await api("POST", "/v1/users", values);
        done("Check your mail", "If the address can be used, a mail with a link to verify it is on its way.");
      }));
  }
  if (path === "/forgot-password") {
    return page("Forgot your password?", form([["email", "Email", "email", { autocomplete: "email", required: true }]], "Send a reset link",
      async ({ email }) => {
        await api("POST", "/v1/password/forgot", { email });
        done("Check your mail", "If the address has an account, a mail with a link to choose a new password is on its way.");
      }));
  }
  const token = query.get("token") || "";
  if (path === "/verify-email") {
    page("Verifying your address", el("p", {}, "One moment…"));
    try {
      await api("POST", "/v1/users/verify", { token });
      return done("Address verified", "Your address is verified: you can log in.");
    } catch (error) {
      return page("This link does not work", el("p", { class: "error", role: "alert" }, error.message));
    }
  }
  if (path === "/reset-password") {
    return page("Choose a new password", form(
      [["password", "New password (at least 10 characters)", "password", { autocomplete: "new-password", required: true, minlength: 10 }]], "Set the password",
      async ({ password }) => {
        await api("POST", "/v1/password/reset", { token, password });
        done("Password changed", "Your new password is set, and your other sessions have ended.");
      }));
  }
}

async function invitationPage(id) {
  const answer = (verb) => async () => {
    try {
      await api("POST", `/v1/invitations/${id}/${verb}`);
      page(verb === "accept" ? "Invitation accepted" : "Invitation refused", el("p", { role: "status" }, link("/", "To your projects")));
    } catch (error) {
      if (error instanceof APIError && error.status === 401) return toLogin();
      main.append(el("p", { class: "error", role: "alert" }, error.message));
    }
  };
  page("An invitation", el("p", {}, "You were invited to an organization on Harrow."),
    el("p", {}, el("button", { type: "button", onclick: answer("accept") }, "Accept"), " ",
      el("button", { type: "button", class: "secondary", onclick: answer("refuse") }, "Refuse")));
}

async function homePage() {
  const organizations = (await api("GET", "/v1/organizations")).items;
  const sections = [];
  for (const organization of organizations) {
    // An organization seen only through one of its projects does not list its projects.
    const projects = await api("GET", `/v1/organizations/${organization.id}/projects`).then((page) => page.items, () => null);
    if (projects === null) continue;
    sections.push(el("section", { "aria-label": organization.name },
      el("h2", {}, link(`/organizations/${organization.id}`, organization.name)),
      projects.length
        ? el("ul", {}, projects.map((project) => el("li", {}, link(`/projects/${project.id}`, project.name))))
        : el("p", {}, "No projects yet."),
      el("details", {}, el("summary", {}, "New project"),
        form([["name", "Project name", "text", { required: true }]], "Create project", async ({ name }) => {
          const project = await api("POST", `/v1/organizations/${organization.id}/projects`, { name });
          go(`/projects/${project.id}`);
        }))));
  }
  page("Projects", ...sections,
    el("details", { open: organizations.length === 0 }, el("summary", {}, "New organization"),
      form([["name", "Organization name", "text", { required: true }]], "Create organization", async ({ name }) => {
        await api("POST", "/v1/organizations", { name });
        render();
      })));
}

function statusCell(status) {
  return el("span", { class: `status-${status}` }, status);
}

async function projectPage(project) {
  const base = `/v1/projects/${project}`;
  const [info, jobs, tasks, environments, operations] = await Promise.all([
    api("GET", base), api("GET", `${base}/jobs`), api("GET", `${base}/tasks`), api("GET", `${base}/environments`),
    api("GET", `${base}/operations?limit=20`)]);
  const jobNames = Object.fromEntries(jobs.items.map((job) => [job.id, job.name]));
  page(info.name, projectTabs(project, ""),
    el("h2", {}, "Jobs"),
    jobs.items.length
      ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Job"), el("th", {}, ""))),
        el("tbody", {}, jobs.items.map((job) => el("tr", {}, el("td", {}, job.name),
          el("td", {}, el("button", {
            type: "button", "aria-label": `Run ${job.name} now`,
            onclick: guarded(async () => {
              const operation = await api("POST", `${base}/jobs/${job.id}/operations`, {});
              go(`/projects/${project}/operations/${operation.id}`);
            }),
          }, "Run now"))))))
      : el("p", {}, "No jobs yet: make a task, then a job that runs it."),
    el("h2", {}, "Recent operations"),
    operations.items.length
      ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Operation"), el("th", {}, "Job"), el("th", {}, "Status"), el("th", {}, "Queued"))),
        el("tbody", {}, operations.items.map((operation) => el("tr", {},
          el("td", {}, link(`/projects/${project}/operations/${operation.id}`, operation.id.slice(0, 8))),
          el("td", {}, jobNames[operation.job_id] || operation.job_id.slice(0, 8)),
          el("td", {}, statusCell(operation.status)),
          el("td", {}, new Date(operation.created_at).toLocaleString())))))
      : el("p", {}, "Nothing has run yet."),
    el("details", {}, el("summary", {}, "New task"),
      form([["name", "Task name", "text", { required: true }], ["script", "Script (Tab indents; Escape, then Tab, leaves the editor)", "script", { required: true }]], "Create task",
        async ({ name, script }) => { await api("POST", `${base}/tasks`, { name, script }); render(); })),
    el("details", {}, el("summary", {}, "New job"),
      form([["name", "Job name", "text", { required: true }],
        ["task_id", "Task", "select", { options: tasks.items.map((task) => [task.id, task.name]) }],
        ["environment_id", "Environment", "select", {
          options: environments.items.map((environment) => [environment.id, environment.name]),
          selected: (environments.items.find((environment) => environment.is_default) || {}).id,
        }]],
      "Create job", async (values) => { await api("POST", `${base}/jobs`, values); render(); })));
}

const projectSections = [
  ["", "Jobs"], ["environments", "Environments"], ["repositories", "Repositories"], ["schedules", "Schedules"],
  ["triggers", "Triggers"], ["webhooks", "Webhooks"], ["notifications", "Notifications"], ["members", "Members"],
  ["settings", "Settings"], ["activity", "Activity"],
];

const roles = [["guest", "guest"], ["member", "member"], ["manager", "manager"], ["owner", "owner"]];

/** Members of a project or an organization (`scope` is its API path): roles to change, removal. */
async function membersBlock(scope) {
  const members = (await api("GET", `${scope}/members`)).items;
  return table(members, [
    ["Name", (member) => member.user.name], ["Email", (member) => member.user.email || "–"],
    ["Role", (member) => {
      const select = el("select", { "aria-label": `Role of ${member.user.name}` },
        roles.map(([value, text]) => el("option", { value, selected: value === member.role }, text)));
      return el("span", {}, select, " ", el("button", { type: "button", class: "secondary", "aria-label": `Save the role of ${member.user.name}`,
        onclick: guarded(async () => { await api("PATCH", `${scope}/members/${member.user.id}`, { role: select.value }); render(); }) }, "Save"));
    }],
    ["", (member) => deleteButton(`Remove ${member.user.name}`, `${scope}/members/${member.user.id}`)],
  ], "No members.");
}

async function membersPage(project, info) {
  page(`${info.name}: members`, projectTabs(project, "members"), await membersBlock(`/v1/projects/${project}`),
    el("p", {}, "People join by invitation, from the organization's page: ", link(`/organizations/${info.organization_id}`, "the organization")));
}

async function organizationPage(organization) {
  const base = `/v1/organizations/${organization}`;
  // Invitations are a manager's to see; others see the members.
  const [info, invitations] = await Promise.all([api("GET", base), api("GET", `${base}/invitations`).catch(() => null)]);
  if (!invitations) return page(info.name, el("h2", {}, "Members"), await membersBlock(base));
  page(info.name, el("h2", {}, "Members"), await membersBlock(base),
    el("h2", {}, "Invitations"),
    table(invitations.items, [["Email", (invitation) => invitation.email], ["Role", (invitation) => invitation.role],
      ["Expires", (invitation) => new Date(invitation.expires_at).toLocaleString()],
      ["", (invitation) => deleteButton(`Revoke the invitation of ${invitation.email}`, `${base}/invitations/${invitation.id}`)]], "No open invitations."),
    el("details", {}, el("summary", {}, "Invite someone"),
      form([["email", "Email", "email", { required: true }], ["role", "Role", "select", { options: roles }]], "Send invitation",
        async (values) => { await api("POST", `${base}/invitations`, values); render(); })));
}

async function notificationsPage(project, info) {
  const base = `/v1/projects/${project}`;
  const [notifiers, rules, jobs] = await Promise.all([api("GET", `${base}/notifiers`), api("GET", `${base}/notification-rules`), api("GET", `${base}/jobs`)]);
  const names = Object.fromEntries([...notifiers.items, ...jobs.items].map((item) => [item.id, item.name]));
  const jobOptions = jobs.items.map((job) => [job.id, job.name]);
  const shown = el("div", { role: "status" });
  page(`${info.name}: notifications`, projectTabs(project, "notifications"), shown,
    el("h2", {}, "Notifiers"),
    table(notifiers.items, [["Name", (notifier) => notifier.name], ["Kind", (notifier) => notifier.kind],
      ["Goes to", (notifier) => notifier.kind === "email" ? notifier.recipients.join(", ") : notifier.kind === "job" ? names[notifier.job_id] || "" : notifier.url || ""],
      ["", (notifier) => deleteButton(`Delete notifier ${notifier.name}`, `${base}/notifiers/${notifier.id}`)]], "No notifiers yet."),
    el("details", {}, el("summary", {}, "New email notifier"),
      form([["name", "Name", "text", { required: true }], ["recipients", "Addresses (comma-separated)", "text", { required: true }]], "Create",
        async ({ name, recipients }) => {
          await api("POST", `${base}/notifiers`, { name, recipients: recipients.split(",").map((address) => address.trim()).filter(Boolean) });
          render();
        })),
    el("details", {}, el("summary", {}, "New job notifier (a chained job)"),
      form([["name", "Name", "text", { required: true }], ["job_id", "Job to run", "select", { options: jobOptions }]], "Create",
        async ({ name, job_id: job }) => { await api("POST", `${base}/notifiers`, { name, kind: "job", job_id: job }); render(); })),
    el("details", {}, el("summary", {}, "New webhook notifier (Slack-compatible)"),
      form([["name", "Name", "text", { required: true }], ["url", "URL", "url", { required: true }]], "Create",
        async ({ name, url }) => {
          const created = await api("POST", `${base}/notifiers`, { name, kind: "webhook", url });
          shown.replaceChildren(el("h2", {}, "Its signing secret, shown this once"), el("pre", { class: "log" }, created.signing_secret));
        })),
    el("h2", {}, "Rules"),
    table(rules.items, [["When", (rule) => rule.activity_pattern], ["Of job", (rule) => rule.job_id ? names[rule.job_id] || "" : "any"],
      ["Notify", (rule) => names[rule.notifier_id] || ""], ["", (rule) => deleteButton(`Delete the rule ${rule.activity_pattern}`, `${base}/notification-rules/${rule.id}`)]],
    "No rules yet: a notifier does nothing until a rule sends to it."),
    el("details", {}, el("summary", {}, "New rule"),
      form([["activity_pattern", "When (an activity glob)", "text", { required: true, value: "operation.failed" }],
        ["job_id", "Of job", "select", { options: [["", "any job"], ...jobOptions] }],
        ["notifier_id", "Notify", "select", { options: notifiers.items.map((notifier) => [notifier.id, notifier.name]) }]],
      "Create rule", async (values) => {
        if (!values.job_id) delete values.job_id;
        await api("POST", `${base}/notification-rules`, values);
        render();
      })));
}

async function settingsPage(project, info) {
  const base = `/v1/projects/${project}`;
  const token = await api("GET", `${base}/github-token`);
  page(`${info.name}: settings`, projectTabs(project, "settings"),
    el("h2", {}, "GitHub token"),
    el("p", {}, token.configured ? "Set: commit statuses are posted for this project's GitHub repositories." : "Not set."),
    token.configured ? el("p", {}, el("button", { type: "button", class: "secondary", onclick: async () => { await api("DELETE", `${base}/github-token`); render(); } }, "Remove the token")) : null,
    el("details", {}, el("summary", {}, token.configured ? "Replace the token" : "Set a token"),
      form([["token", "Token (write-only)", "password", { required: true, autocomplete: "off" }]], "Save",
        async ({ token: value }) => { await api("PUT", `${base}/github-token`, { token: value }); render(); })));
}

async function accountPage() {
  const sessions = (await api("GET", "/v1/sessions")).items;
  page("Your account", el("p", {}, `${me.name} · ${me.email}`), el("h2", {}, "Sessions"),
    table(sessions, [["Started", (view) => new Date(view.session.created_at).toLocaleString()], ["From", (view) => view.session.address || "–"],
      ["Browser", (view) => view.session.user_agent || "–"], ["", (view) => view.current ? "this one" : deleteButton(`Revoke the session from ${view.session.address || "somewhere"} started ${new Date(view.session.created_at).toLocaleString()}`, `/v1/sessions/${view.session.id}`)]],
    "No sessions."));
}

/** The project's tabs, the current one marked for screen readers. */
function projectTabs(project, current) {
  return el("nav", { class: "tabs", "aria-label": "Project" }, projectSections.map(([section, label]) => {
    const anchor = link(`/projects/${project}${section ? "/" + section : ""}`, label);
    if (section === current) anchor.setAttribute("aria-current", "page");
    return anchor;
  }));
}

/** A table of `items` with the given columns ([heading, item => cell]), or `empty` when none. */
function table(items, columns, empty) {
  if (!items.length) return el("p", {}, empty);
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map(([heading]) => el("th", { scope: "col" }, heading)))),
    el("tbody", {}, items.map((item) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(item)))))));
}

function deleteButton(label, path) {
  return el("button", { type: "button", class: "secondary", "aria-label": label, onclick: guarded(async () => {
    if (confirm(`${label}?`)) { await api("DELETE", path); render(); }
  }) }, "Delete");
}

/** `KEY=value` lines as a map; a line without `=` is an error naming it. */
function variables(text) {
  const map = {};
  for (const line of (text || "").split("\n").map((line) => line.trim()).filter(Boolean)) {
    const at = line.indexOf("=");
    if (at <= 0) throw new APIError(422, { detail: `"${line}" is not NAME=value`, errors: [{ field: "variables", message: `"${line}" is not NAME=value` }] });
    map[line.slice(0, at)] = line.slice(at + 1);
  }
  return map;
}

async function environmentsPage(project, info) {
  const base = `/v1/projects/${project}`;
  const environments = (await api("GET", `${base}/environments`)).items;
  const blocks = [];
  for (const environment of environments) {
    const secrets = (await api("GET", `${base}/environments/${environment.id}/secrets`)).items;
    blocks.push(el("section", { "aria-label": `Environment ${environment.name}` },
      el("h2", {}, environment.name, environment.is_default ? " (default)" : ""),
      table(Object.entries(environment.variables || {}), [["Variable", ([name]) => name], ["Value", ([, value]) => value]], "No variables."),
      el("h3", {}, "Secrets"),
      table(secrets, [["Name", (secret) => secret.name], ["Kind", (secret) => secret.kind], ["Status", (secret) => secret.status],
        ["", (secret) => deleteButton(`Delete secret ${secret.name}`, `${base}/secrets/${secret.id}`)]], "No secrets."),
      el("details", {}, el("summary", {}, `Set a secret in ${environment.name}`),
        form([["name", "Name", "text", { required: true, autocomplete: "off" }],
          ["value", "Value (write-only: it is never shown again)", "password", { required: true, autocomplete: "off" }]],
        "Set secret", async ({ name, value }) => {
          await api("POST", `${base}/environments/${environment.id}/secrets`, { name, kind: "env", value });
          render();
        }))));
  }
  page(`${info.name}: environments`, projectTabs(project, "environments"), ...blocks,
    el("details", {}, el("summary", {}, "New environment"),
      form([["name", "Name", "text", { required: true }], ["variables", "Variables (NAME=value, one a line)", "textarea"]], "Create environment",
        async ({ name, variables: text }) => { await api("POST", `${base}/environments`, { name, variables: variables(text) }); render(); })));
}

async function repositoriesPage(project, info) {
  const base = `/v1/projects/${project}`;
  const repositories = (await api("GET", `${base}/repositories`)).items;
  page(`${info.name}: repositories`, projectTabs(project, "repositories"),
    ...repositories.map((repository) => {
      const key = repository.deploy_key || {};
      const keyText = el("textarea", { readonly: true, rows: 2, class: "code", id: `key-${repository.id}` });
      keyText.value = key.public_key || "(being generated…)";
      return el("section", { "aria-label": `Repository ${repository.name}` },
        el("h2", {}, repository.name),
        el("p", {}, repository.url),
        el("p", {}, "Accessible: ", repository.accessible === null || repository.accessible === undefined ? "not checked yet" : repository.accessible ? "yes" : "no",
          repository.checked_at ? ` (checked ${new Date(repository.checked_at).toLocaleString()})` : ""),
        el("label", {}, "Deploy key (add it to the git host, read-only)", keyText),
        el("p", {},
          el("button", { type: "button", class: "secondary", "aria-label": `Copy the deploy key of ${repository.name}`, onclick: guarded(async () => {
            // The clipboard API needs https or localhost; elsewhere, the old way.
            if (navigator.clipboard) await navigator.clipboard.writeText(keyText.value);
            else { keyText.select(); document.execCommand("copy"); }
            announce("Copied");
          }) }, "Copy key"), " ",
          el("button", { type: "button", class: "secondary", "aria-label": `Refresh the refs of ${repository.name}`, onclick: guarded(async () => {
            await api("POST", `${base}/repositories/${repository.id}/refresh`);
            announce("A poll is queued");
          }) }, "Refresh refs"), " ",
          deleteButton(`Delete repository ${repository.name}`, `${base}/repositories/${repository.id}`)),
        table(Object.entries(repository.refs || {}), [["Ref", ([ref]) => ref], ["Commit", ([, sha]) => sha.slice(0, 12)]], "No refs seen yet."));
    }),
    repositories.length ? null : el("p", {}, "No repositories yet."),
    el("details", {}, el("summary", {}, "New repository"),
      form([["url", "URL (git@host:owner/repo.git or https://…)", "text", { required: true }], ["known_hosts", "known_hosts for a host not on GitHub, GitLab or Bitbucket (optional)", "textarea"]],
        "Add repository", async ({ url, known_hosts: knownHosts }) => {
          await api("POST", `${base}/repositories`, knownHosts ? { url, known_hosts: knownHosts } : { url });
          render();
        })));
}

async function schedulesPage(project, info) {
  const base = `/v1/projects/${project}`;
  const [schedules, jobs] = await Promise.all([api("GET", `${base}/schedules`), api("GET", `${base}/jobs`)]);
  const jobNames = Object.fromEntries(jobs.items.map((job) => [job.id, job.name]));
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  page(`${info.name}: schedules`, projectTabs(project, "schedules"),
    table(schedules.items, [
      ["Job", (schedule) => jobNames[schedule.job_id] || schedule.job_id.slice(0, 8)],
      ["When", (schedule) => schedule.cron ? `${schedule.cron} (${schedule.time_zone})` : new Date(schedule.run_at).toLocaleString()],
      ["Next", (schedule) => (schedule.next_fire_times || []).slice(0, 3).map((time) => new Date(time).toLocaleString()).join(", ") || "–"],
      ["State", (schedule) => schedule.disabled_at ? `disabled: ${schedule.disabled_reason || ""}` : "enabled"],
      ["", (schedule) => el("span", {},
        el("button", { type: "button", class: "secondary", "aria-label": `${schedule.disabled_at ? "Enable" : "Disable"} the schedule of ${jobNames[schedule.job_id] || "a job"}`,
          onclick: guarded(async () => {
            await api("POST", `${base}/schedules/${schedule.id}/${schedule.disabled_at ? "enable" : "disable"}`);
            render();
          }) }, schedule.disabled_at ? "Enable" : "Disable"), " ",
        deleteButton(`Delete the schedule of ${jobNames[schedule.job_id] || "a job"}`, `${base}/schedules/${schedule.id}`))],
    ], "No schedules yet."),
    el("details", {}, el("summary", {}, "New schedule"),
      form([["job_id", "Job", "select", { options: jobs.items.map((job) => [job.id, job.name]) }],
        ["cron", "Cron (minute hour day month weekday, or @daily…)", "text", { required: true, placeholder: "0 2 * * *" }],
        ["time_zone", "Time zone (IANA)", "text", { required: true, value: zone }]],
      "Create schedule", async (values) => { await api("POST", `${base}/schedules`, values); render(); })));
}

async function triggersPage(project, info) {
  const base = `/v1/projects/${project}`;
  const [triggers, jobs, repositories] = await Promise.all([
    api("GET", `${base}/triggers`), api("GET", `${base}/jobs`), api("GET", `${base}/repositories`)]);
  const names = Object.fromEntries([...jobs.items, ...repositories.items].map((item) => [item.id, item.name]));
  page(`${info.name}: triggers`, projectTabs(project, "triggers"),
    table(triggers.items, [["Name", (trigger) => trigger.name], ["Repository", (trigger) => names[trigger.repository_id] || ""],
      ["Refs", (trigger) => trigger.ref_pattern], ["On", (trigger) => trigger.change_type], ["Runs", (trigger) => names[trigger.job_id] || ""],
      ["", (trigger) => deleteButton(`Delete trigger ${trigger.name}`, `${base}/triggers/${trigger.id}`)]], "No git triggers yet."),
    el("details", {}, el("summary", {}, "New trigger"),
      form([["name", "Name", "text", { required: true }],
        ["repository_id", "Repository", "select", { options: repositories.items.map((repository) => [repository.id, repository.name]) }],
        ["ref_pattern", "Refs (a regular expression over the whole name)", "text", { required: true, value: "^refs/heads/main$" }],
        ["change_type", "On", "select", { options: [["change", "a ref moves"], ["add", "a ref appears"], ["remove", "a ref goes"]] }],
        ["job_id", "Job to run", "select", { options: jobs.items.map((job) => [job.id, job.name]) }]],
      "Create trigger", async (values) => { await api("POST", `${base}/triggers`, values); render(); })));
}

async function webhooksPage(project, info) {
  const base = `/v1/projects/${project}`;
  const [webhooks, jobs] = await Promise.all([api("GET", `${base}/webhooks`), api("GET", `${base}/jobs`)]);
  const jobNames = Object.fromEntries(jobs.items.map((job) => [job.id, job.name]));
  const shown = el("div", { role: "status" });
  page(`${info.name}: webhooks`, projectTabs(project, "webhooks"), shown,
    table(webhooks.items, [["Name", (webhook) => webhook.name], ["Runs", (webhook) => jobNames[webhook.job_id] || ""],
      ["URL", (webhook) => `${location.origin}/hooks/${webhook.slug}`],
      ["", (webhook) => deleteButton(`Delete webhook ${webhook.name}`, `${base}/webhooks/${webhook.id}`)]], "No webhooks yet."),
    el("details", {}, el("summary", {}, "New webhook"),
      form([["name", "Name", "text", { required: true }], ["job_id", "Job to run", "select", { options: jobs.items.map((job) => [job.id, job.name]) }]],
        "Create webhook", async (values) => {
          const created = await api("POST", `${base}/webhooks`, values);
          const url = `${location.origin}/hooks/${created.webhook.slug}`;
          const example = [`secret='${created.signing_secret}'`, `body='{}'`, "timestamp=$(date +%s)",
            `signature=$(printf '%s.%s' "$timestamp" "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')`,
            `curl -X POST '${url}' -H 'Content-Type: application/json' -H "X-Harrow-Timestamp: $timestamp" \\`,
            `  -H "X-Harrow-Signature: sha256=$signature" -H "X-Harrow-Delivery: $(cat /proc/sys/kernel/random/uuid)" --data-binary "$body"`].join("\n");
          shown.replaceChildren(el("h2", {}, "Its signing secret, shown this once"), el("pre", { class: "log", id: "webhook-secret" }, created.signing_secret),
            el("p", {}, "Sign each delivery with it, for example:"), el("pre", { class: "log" }, example));
          // The list as it is now (the secret stays above it, this once).
          const list = main.querySelector("table");
          const row = el("tr", {}, el("td", {}, created.webhook.name), el("td", {}, jobNames[created.webhook.job_id] || ""), el("td", {}, url),
            el("td", {}, deleteButton(`Delete webhook ${created.webhook.name}`, `${base}/webhooks/${created.webhook.id}`)));
          if (list) list.querySelector("tbody").append(row);
        })));
}

async function activityPage(project, info) {
  const base = `/v1/projects/${project}`;
  const feed = (await api("GET", `${base}/activities?limit=50`)).items;
  const list = el("ol", { id: "activity", reversed: true },
    feed.map((activity) => el("li", {}, `${new Date(activity.occurred_at).toLocaleString()} · ${activity.name}`)));
  page(`${info.name}: activity`, projectTabs(project, "activity"), list);
  // Live: what happens while the page is open comes in at the top.
  if (socket) socket.close();
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  socket = ws;
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") ws.send(JSON.stringify({ type: "subscribe", project }));
    if (message.type === "changed") list.prepend(el("li", {}, `${new Date().toLocaleString()} · ${message.activity.name}`));
  });
}

let refresher = null;

/** Admin: every queue's counts, pause and resume, and dead letters to retry or delete, like
 * queue-inspect; refreshed every 5 s while the page is open. */
async function adminPage() {
  if (!me.is_admin) return page("Not found", el("p", {}, "No such page."));
  const view = el("div", {});
  page("Queues", view);
  const draw = async (forced = false) => {
    // The periodic refresh waits while the keyboard is in the page: replacing the buttons would
    // lose its place.
    if (!forced && view.contains(document.activeElement)) return;
    const overview = await api("GET", "/admin/queues");
    const rows = overview.queues.map((queue) => {
      const path = `/admin/queues/${encodeURIComponent(queue.queue)}`;
      return el("tr", { "data-queue": queue.queue },
        el("th", { scope: "row" }, queue.queue),
        el("td", { class: "ready" }, queue.ready), el("td", { class: "pending" }, queue.pending),
        el("td", { class: "delayed" }, queue.delayed), el("td", { class: "dead" }, queue.dead), el("td", {}, queue.consumers),
        el("td", {}, queue.oldest_ready_age_ms === null || queue.oldest_ready_age_ms === undefined ? "–" : `${Math.round(queue.oldest_ready_age_ms / 1000)} s`),
        el("td", {}, el("button", {
          type: "button", class: "secondary", "aria-label": `${queue.paused ? "Resume" : "Pause"} ${queue.queue}`,
          onclick: guarded(async () => { await api("POST", `${path}/${queue.paused ? "resume" : "pause"}`); await draw(true); }),
        }, queue.paused ? "Resume" : "Pause")));
    });
    const sections = [];
    for (const queue of overview.queues.filter((queue) => queue.dead > 0)) {
      const path = `/admin/queues/${encodeURIComponent(queue.queue)}`;
      const dead = (await api("GET", `${path}/dead?limit=50`)).items;
      sections.push(el("section", { "aria-label": `Dead letters of ${queue.queue}` },
        el("h2", {}, `Dead letters of ${queue.queue}`),
        el("p", {},
          el("button", { type: "button", "aria-label": `Retry every dead letter of ${queue.queue}`, onclick: guarded(async () => { await api("POST", `${path}/dead/retry`, { all: true }); await draw(true); }) }, "Retry all"),
          " ",
          el("button", { type: "button", class: "secondary", "aria-label": `Delete every dead letter of ${queue.queue}`, onclick: guarded(async () => {
            if (confirm(`Delete every dead letter of ${queue.queue}?`)) { await api("DELETE", `${path}/dead`); await draw(true); }
          }) }, "Delete all")),
        el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Job"), el("th", {}, "Type"), el("th", {}, "Error"), el("th", {}, "Failed"), el("th", {}, ""))),
          el("tbody", {}, dead.map((letter) => el("tr", {},
            el("td", {}, letter.id.slice(0, 8)), el("td", {}, letter.fields.type || ""), el("td", {}, letter.error),
            el("td", {}, new Date(letter.failed_at).toLocaleString()),
            el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": `Retry ${letter.id}`,
              onclick: guarded(async () => { await api("POST", `${path}/dead/retry`, { id: letter.id }); await draw(true); }) }, "Retry"))))))));
    }
    const workers = (await api("GET", "/admin/workers")).items;
    view.replaceChildren(
      el("table", { id: "queues" },
        el("thead", {}, el("tr", {}, ["Queue", "Ready", "In flight", "Delayed", "Dead", "Consumers", "Oldest ready", ""].map((text) => el("th", { scope: "col" }, text)))),
        el("tbody", {}, rows)),
      el("p", {}, `Outbox: ${overview.outbox.depth} waiting, ${overview.outbox.failed} failed.`),
      el("h2", {}, "Workers"),
      table(workers, [["Worker", (worker) => worker.id], ["Queues", (worker) => worker.queues.join(", ")], ["Concurrency", (worker) => worker.concurrency],
        ["Last heartbeat", (worker) => `${Math.max(0, Math.round((Date.now() - worker.last_seen) / 1000))} s ago`]], "No live workers."),
      ...sections);
  };
  const rendering = renders;
  await draw(true);
  if (rendering === renders) refresher = setInterval(() => { draw().catch(() => {}); }, 5000);
}

let socket = null;

async function operationPage(project, id) {
  const base = `/v1/projects/${project}`;
  const operation = await api("GET", `${base}/operations/${id}`);
  const status = el("strong", { id: "operation-status", role: "status" }, statusCell(operation.status));
  const log = el("pre", { class: "log", id: "log", role: "log", "aria-live": "off", "aria-label": "Log", tabindex: "0" });
  const seen = new Set();
  const cancel = el("button", { type: "button", class: "secondary", onclick: guarded(async () => {
    await api("POST", `${base}/operations/${id}/cancel`);
    await refresh();
  }) }, "Cancel");
  const retry = el("button", { type: "button", class: "secondary", onclick: guarded(async () => {
    const again = await api("POST", `${base}/operations/${id}/retry`);
    go(`/projects/${project}/operations/${again.id}`);
  }) }, "Retry");
  const actions = el("p", {}, cancel, " ", retry);
  // Cancel while it may still run; Retry once it has ended.
  const showActions = (current) => {
    const open = current.status === "queued" || current.status === "running";
    cancel.hidden = !open;
    retry.hidden = open;
  };
  showActions(operation);
  page(`Operation ${id.slice(0, 8)}`, el("p", {}, link(`/projects/${project}`, "← Project")), el("p", {}, "Status: ", status), actions, log);

  async function refresh() {
    const current = await api("GET", `${base}/operations/${id}`);
    status.replaceChildren(statusCell(current.status));
    showActions(current);
  }
  // Live: lines as they are written; a reconnect starts the log over and lines already shown
  // (by id) are skipped, so none is lost or shown twice.
  const show = (lines) => {
    const follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    for (const line of lines) {
      if (seen.has(line.id)) continue;
      seen.add(line.id);
      // The stream is said in words too, not by colour alone.
      const prefix = line.stream === "stderr" ? "stderr: " : line.stream === "system" ? "harrow: " : "";
      log.append(el("span", { class: line.stream }, prefix ? el("span", { class: "visually-hidden" }, prefix) : null, line.text + "\n"));
    }
    if (follow) log.scrollTop = log.scrollHeight;
  };
  // An ended run's log is read from its archive (the live stream expires after days).
  const readStored = async () => {
    let after = "0";
    for (;;) {
      const chunk = await api("GET", `${base}/operations/${id}/log?after=${encodeURIComponent(after)}`);
      show(chunk.lines);
      if (chunk.finished || !chunk.lines.length || chunk.next === after) return;
      after = chunk.next;
    }
  };
  if (!["queued", "running"].includes(operation.status)) return readStored();
  const connect = () => {
    if (socket) socket.close();
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    socket = ws;
    ws.addEventListener("message", async (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") ws.send(JSON.stringify({ type: "subscribe", operation: id }));
      if (message.type === "log") {
        show(message.lines);
        if (message.finished) await refresh();
      }
      if (message.type === "error") await readStored().catch(() => {});
      if (message.type === "changed") await refresh();
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws || !location.pathname.endsWith(id)) return;
      // 4001: the session ended (log in again); 4029: this session has too many sockets open
      // (wait longer); anything else: a dropped connection, tried again soon.
      if (event.code === 4001) return toLogin();
      setTimeout(connect, event.code === 4029 ? 15000 : 1000);
    });
  };
  connect();
}

let renders = 0;

async function render() {
  renders += 1;
  if (socket) { const old = socket; socket = null; old.close(); }
  if (refresher) { clearInterval(refresher); refresher = null; }
  const path = location.pathname;
  try {
    if (path === "/login") return await loginPage();
    if (["/signup", "/forgot-password", "/verify-email", "/reset-password"].includes(path)) {
      return await publicPage(path, new URLSearchParams(location.search));
    }
    if (!me) me = await api("GET", "/v1/me");
    nav.replaceChildren(link("/", "Projects"), me.is_admin ? link("/admin", "Queues") : null, link("/account", me.name),
      el("button", { type: "button", class: "secondary", onclick: guarded(async () => {
        await api("DELETE", "/v1/sessions/current");
        me = null;
        go("/login");
      }) }, "Log out"));
    let match;
    if ((match = path.match(/^\/projects\/([0-9a-f-]{36})\/operations\/([0-9a-f-]{36})$/))) return await operationPage(match[1], match[2]);
    if ((match = path.match(/^\/projects\/([0-9a-f-]{36})$/))) return await projectPage(match[1]);
    if ((match = path.match(/^\/projects\/([0-9a-f-]{36})\/(environments|repositories|schedules|triggers|webhooks|notifications|members|settings|activity)$/))) {
      const pages = {
        environments: environmentsPage, repositories: repositoriesPage, schedules: schedulesPage, triggers: triggersPage, webhooks: webhooksPage,
        notifications: notificationsPage, members: membersPage, settings: settingsPage, activity: activityPage,
      };
      return await pages[match[2]](match[1], await api("GET", `/v1/projects/${match[1]}`));
    }
    if (path === "/admin") return await adminPage();
    if (path === "/account") return await accountPage();
    if ((match = path.match(/^\/organizations\/([0-9a-f-]{36})$/))) return await organizationPage(match[1]);
    if ((match = path.match(/^\/invitations\/([0-9a-f-]{36})$/))) return await invitationPage(match[1]);
    return await homePage();
  } catch (error) {
    if (error instanceof APIError && error.status === 401) return toLogin();
    page("Something went wrong", el("p", { class: "error", role: "alert" }, error.message));
  }
}

window.addEventListener("popstate", render);
render();
