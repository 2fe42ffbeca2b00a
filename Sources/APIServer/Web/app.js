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

/** What the next drawing of a page shows once at its top (a secret shown this once), then forgets. */
let flash = null;

/** The flash's block for this page (empty when none), focused so it is seen and heard. */
function flashBlock() {
  const shown = el("div", { role: "status" });
  if (flash) {
    const { title, secret, example } = flash;
    flash = null;
    const heading = el("h2", { tabindex: "-1" }, title);
    shown.append(heading, el("pre", { class: "log", id: "shown-secret" }, secret),
      example ? el("p", {}, "Sign each delivery with it, for example:") : "", example ? el("pre", { class: "log" }, example) : "");
    queueMicrotask(() => heading.focus());
  }
  return shown;
}

/** One labelled field of a form: [name, label, type, extra]. `extra.value` prefills it (a
 * textarea's text too), `extra.selected` picks a select's option, `extra.checked` a checkbox. */
function field(prefix, [name, label, type = "text", extra = {}]) {
  const id = `${prefix}-${name}`;
  if (type === "textarea" || type === "script") {
    const { value, ...rest } = extra;
    return el("label", {}, label,
      el("textarea", { name, id, rows: 6, class: type === "script" ? "code script" : "code", spellcheck: "false", ...rest }, value ?? ""));
  }
  if (type === "select") {
    const { options = [], selected, ...rest } = extra;
    // A current value the options lack (a record on a later page, or gone) stays chosen, rather
    // than the browser quietly picking the first option and a save sending it.
    const all = selected && !options.some(([value]) => value === selected) ? [[selected, "(as it is)"], ...options] : options;
    return el("label", {}, label, el("select", { name, id, ...rest }, all.map(([value, text]) => el("option", { value, selected: value === selected }, text))));
  }
  if (type === "checkbox") {
    return el("label", { class: "check" }, el("input", { name, id, type, checked: Boolean(extra.checked) }), label);
  }
  return el("label", {}, label, el("input", { name, id, type, ...extra }));
}

/** A form whose submit runs `action` with the named fields' values (a checkbox's as a boolean). */
function form(fields, submit, action) {
  const prefix = `f${++formCount}`;
  // A field given as null is one this form leaves out.
  const node = el("form", { tabindex: "-1" }, fields.filter(Boolean).map((spec) => field(prefix, spec)), el("button", { type: "submit" }, submit));
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(node).entries());
    for (const box of node.querySelectorAll("input[type=checkbox]")) values[box.name] = box.checked;
    const button = node.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await action(values);
    } catch (error) {
      // Logged out meanwhile: to the login page (where a 401 is a wrong password, shown).
      if (error instanceof APIError && error.status === 401 && location.pathname !== "/login") return toLogin();
      showError(node, error);
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

/** A closed disclosure with a form in it: "New …" and "Edit …" blocks. Once its action has
 * saved (and drawn the page again), focus returns to the same block and "Saved" is said. */
function editor(summary, fields, submit, action) {
  return el("details", {}, el("summary", {}, summary), form(fields, submit, async (values) => {
    await action(values);
    await backTo(summary);
  }));
}

/** After a page was drawn again: focus on the summary named `text` (or the heading), "Saved". */
async function backTo(text) {
  await drawn;
  const again = [...main.querySelectorAll("summary")].find((summary) => summary.textContent === text);
  if (again) again.focus();
  announce("Saved");
}

function page(title, ...children) {
  document.title = `${title} · Harrow`;
  const heading = el("h1", { tabindex: "-1" }, title);
  // Parts a page leaves out (null) are left out, not written as text.
  main.replaceChildren(heading, ...children.flat().filter((child) => child !== null && child !== undefined));
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

const operationStatuses = ["queued", "running", "succeeded", "failed", "timed_out", "canceled"];

async function projectPage(project, query) {
  const base = `/v1/projects/${project}`;
  const status = operationStatuses.includes(query.get("status")) ? query.get("status") : "";
  const [info, jobs, tasks, environments, operations] = await Promise.all([
    api("GET", base), api("GET", `${base}/jobs?limit=200`), api("GET", `${base}/tasks?limit=200`), api("GET", `${base}/environments?limit=200`),
    api("GET", `${base}/operations?limit=20${status ? `&status=${status}` : ""}`)]);
  const jobNames = Object.fromEntries(jobs.items.map((job) => [job.id, job.name]));
  const taskNames = Object.fromEntries(tasks.items.map((task) => [task.id, task.name]));
  const taskOptions = tasks.items.map((task) => [task.id, task.name]);
  const environmentOptions = environments.items.map((environment) => [environment.id, environment.name]);
  const environmentNames = Object.fromEntries(environmentOptions);
  const jobFields = (job) => [["name", "Job name", "text", { required: true, value: job.name }],
    ["task_id", "Task", "select", { options: taskOptions, selected: job.task_id }],
    ["environment_id", "Environment", "select", { options: environmentOptions, selected: job.environment_id }],
    ["time_limit_seconds", "Time limit (seconds)", "number", { required: true, min: 1, value: job.time_limit_seconds ?? 900 }]];
  const jobBody = (values) => ({ ...values, time_limit_seconds: Number(values.time_limit_seconds) });
  const operationRows = (items) => items.map((operation) => el("tr", {},
    el("td", {}, link(`/projects/${project}/operations/${operation.id}`, operation.id.slice(0, 8))),
    el("td", {}, jobNames[operation.job_id] || operation.job_id.slice(0, 8)),
    el("td", {}, statusCell(operation.status)), el("td", {}, reasons[operation.reason] || operation.reason),
    el("td", {}, new Date(operation.created_at).toLocaleString())));
  const operationBody = el("tbody", {}, operationRows(operations.items));
  let cursor = operations.next_cursor;
  const more = el("button", { type: "button", class: "secondary", hidden: !cursor, onclick: guarded(async () => {
    const next = await api("GET", `${base}/operations?limit=20&cursor=${encodeURIComponent(cursor)}${status ? `&status=${status}` : ""}`);
    const rows = operationRows(next.items);
    operationBody.append(...rows);
    cursor = next.next_cursor;
    // The button goes with the last page: the keyboard moves on to the first new row.
    if (!cursor) {
      more.hidden = true;
      rows[0]?.querySelector("a")?.focus();
      announce(`${next.items.length} more; no older operations`);
    } else announce(`${next.items.length} more`);
  }) }, "Older operations");
  // A small form, not a select that acts on change: arrow keys on a select must not reload the page.
  const filter = el("form", { class: "inline", onsubmit: (event) => {
    event.preventDefault();
    const chosen = event.currentTarget.querySelector("select").value;
    go(`/projects/${project}${chosen ? `?status=${chosen}` : ""}`);
  } }, el("label", { class: "inline" }, "Operation status ", el("select", { id: "status-filter" },
    el("option", { value: "" }, "any"), operationStatuses.map((value) => el("option", { value, selected: value === status }, value.replace("_", " "))))),
  " ", el("button", { type: "submit", class: "secondary" }, "Show"));
  page(info.name, projectTabs(project, ""),
    el("h2", {}, "Jobs"),
    table(jobs.items, [
      ["Job", (job) => job.name], ["Task", (job) => taskNames[job.task_id] || ""], ["Environment", (job) => environmentNames[job.environment_id] || ""],
      ["", (job) => el("span", {}, el("button", {
        type: "button", "aria-label": `Run ${job.name} now`,
        onclick: guarded(async () => {
          const operation = await api("POST", `${base}/jobs/${job.id}/operations`, {});
          go(`/projects/${project}/operations/${operation.id}`);
        }),
      }, "Run now"), " ", deleteButton(`Delete job ${job.name}`, `${base}/jobs/${job.id}`),
      editor(`Edit ${job.name}`, jobFields(job), "Save job", async (values) => { await api("PATCH", `${base}/jobs/${job.id}`, jobBody(values)); render(); }))],
    ], "No jobs yet: make a task, then a job that runs it."),
    el("h2", {}, "Operations"),
    filter,
    operations.items.length
      ? el("table", { id: "operations" }, el("thead", {}, el("tr", {}, ["Operation", "Job", "Status", "Why", "Queued"].map((text) => el("th", { scope: "col" }, text)))),
        operationBody)
      : el("p", {}, status ? `No ${status} operations.` : "Nothing has run yet."),
    more,
    el("h2", {}, "Tasks"),
    table(tasks.items, [["Task", (task) => task.name], ["", (task) => el("span", {}, deleteButton(`Delete task ${task.name}`, `${base}/tasks/${task.id}`),
      editor(`Edit ${task.name}`, [["name", "Task name", "text", { required: true, value: task.name }],
        ["script", "Script (Tab indents; Escape, then Tab, leaves the editor)", "script", { required: true, value: task.script, rows: 12 }]],
      "Save task", async (values) => { await api("PATCH", `${base}/tasks/${task.id}`, values); render(); }))]], "No tasks yet."),
    editor("New task", [["name", "Task name", "text", { required: true }], ["script", "Script (Tab indents; Escape, then Tab, leaves the editor)", "script", { required: true }]], "Create task",
      async ({ name, script }) => { await api("POST", `${base}/tasks`, { name, script }); render(); }),
    editor("New job", jobFields({ name: "", environment_id: (environments.items.find((environment) => environment.is_default) || {}).id }), "Create job",
      async (values) => { await api("POST", `${base}/jobs`, jobBody(values)); render(); }));
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
  const [notifiers, rules, jobs] = await Promise.all([api("GET", `${base}/notifiers?limit=200`), api("GET", `${base}/notification-rules?limit=200`), api("GET", `${base}/jobs?limit=200`)]);
  const names = Object.fromEntries([...notifiers.items, ...jobs.items].map((item) => [item.id, item.name]));
  const jobOptions = jobs.items.map((job) => [job.id, job.name]);
  const shown = flashBlock();
  page(`${info.name}: notifications`, projectTabs(project, "notifications"), shown,
    el("h2", {}, "Notifiers"),
    table(notifiers.items, [["Name", (notifier) => notifier.name], ["Kind", (notifier) => notifier.kind],
      ["Goes to", (notifier) => notifier.kind === "email" ? notifier.recipients.join(", ") : notifier.kind === "job" ? names[notifier.job_id] || "" : notifier.url || ""],
      ["", (notifier) => el("span", {}, deleteButton(`Delete notifier ${notifier.name}`, `${base}/notifiers/${notifier.id}`),
        notifier.kind === "webhook" ? [" ", el("button", { type: "button", class: "secondary", "aria-label": `Rotate the signing secret of ${notifier.name}`, onclick: guarded(async () => {
          if (!confirm(`Rotate the signing secret of ${notifier.name}? The receiver needs the new one.`)) return;
          const rotated = await api("POST", `${base}/notifiers/${notifier.id}/rotate`);
          flash = { title: `The new signing secret of ${notifier.name}, shown this once`, secret: rotated.signing_secret };
          render();
        }) }, "Rotate secret")] : null,
        editor(`Edit ${notifier.name}`, [["name", "Name", "text", { required: true, value: notifier.name }],
          notifier.kind === "email" ? ["recipients", "Addresses (comma-separated)", "text", { required: true, value: (notifier.recipients || []).join(", ") }]
            : notifier.kind === "job" ? ["job_id", "Job to run", "select", { options: jobOptions, selected: notifier.job_id }]
              : ["url", "URL (leave it to keep the one set)", "url", { placeholder: notifier.url || "" }]],
        "Save notifier", async (values) => {
          const body = { ...values };
          if (body.recipients !== undefined) body.recipients = body.recipients.split(",").map((address) => address.trim()).filter(Boolean);
          if (body.url === "") delete body.url;
          await api("PATCH", `${base}/notifiers/${notifier.id}`, body);
          render();
        }))]], "No notifiers yet."),
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
          flash = { title: `The signing secret of ${name}, shown this once`, secret: created.signing_secret };
          render();
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
      form([["token", "Token (write-only)", "password", { required: true, autocomplete: "new-password" }]], "Save",
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
function table(items, columns, empty, label = "Table") {
  if (!items.length) return el("p", {}, empty);
  // A wide table scrolls on its own on a narrow screen (the page does not), and the keyboard
  // can scroll it too.
  return el("div", { class: "table-scroll", role: "region", tabindex: "0", "aria-label": label }, el("table", {},
    el("thead", {}, el("tr", {}, columns.map(([heading]) => el("th", { scope: "col" }, heading || el("span", { class: "visually-hidden" }, "Actions"))))),
    el("tbody", {}, items.map((item) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(item))))))));
}

function deleteButton(label, path) {
  return el("button", { type: "button", class: "secondary", "aria-label": label, onclick: guarded(async () => {
    if (confirm(`${label}?`)) { await api("DELETE", path); render(); }
  }) }, "Delete");
}

/** `KEY=value` lines as a map; a line without `=` is an error naming it. */
function variables(text) {
  const map = {};
  // A value is kept as typed, spaces included; only the name around `=` is trimmed.
  for (const line of (text || "").split("\n").map((line) => line.replace(/\r$/, "")).filter((line) => line.trim())) {
    const at = line.indexOf("=");
    if (at <= 0 || !line.slice(0, at).trim()) {
      throw new APIError(422, { detail: `"${line}" is not NAME=value`, errors: [{ field: "variables", message: `"${line}" is not NAME=value` }] });
    }
    map[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  return map;
}

/** A map as `KEY=value` lines, for editing. */
function variableLines(map) {
  return Object.entries(map || {}).map(([name, value]) => `${name}=${value}`).join("\n");
}

async function environmentsPage(project, info) {
  const base = `/v1/projects/${project}`;
  const environments = (await api("GET", `${base}/environments?limit=200`)).items;
  const blocks = [];
  for (const environment of environments) {
    const secrets = (await api("GET", `${base}/environments/${environment.id}/secrets`)).items;
    const sshKeys = secrets.filter((secret) => secret.kind === "ssh");
    // Values with a line break cannot be edited as NAME=value lines: they stay as they are.
    const multiline = Object.values(environment.variables || {}).some((value) => value.includes("\n"));
    blocks.push(el("section", { "aria-label": `Environment ${environment.name}` },
      el("h2", {}, environment.name, environment.is_default ? " (default)" : ""),
      table(Object.entries(environment.variables || {}), [["Variable", ([name]) => name], ["Value", ([, value]) => value]], "No variables.", `Variables of ${environment.name}`),
      el("p", {}, environment.target ? `Scripts run on ${environment.target} over SSH.` : "Scripts run on the worker."),
      editor(`Edit ${environment.name}`, [["name", "Name", "text", { required: true, value: environment.name }],
        multiline ? null : ["variables", "Variables (NAME=value, one a line)", "textarea", { value: variableLines(environment.variables) }],
        // The default stops being one only when another becomes the default.
        environment.is_default ? null : ["is_default", "Make it the project's default environment", "checkbox", { checked: false }],
        ["target", "Target (ssh://user@host[:port]; empty: the worker itself)", "text", { value: environment.target || "", placeholder: "ssh://deploy@app.example.com" }],
        ["target_secret_id", "Logs in to the target with", "select", {
          options: [["", "no key"], ...sshKeys.map((secret) => [secret.id, secret.name])], selected: environment.target_secret_id || "" }],
        ["known_hosts", "known_hosts (the target's host key, and hosts the script connects to)", "textarea", { value: environment.known_hosts || "" }]],
      "Save environment", async (values) => {
        const body = { ...values };
        // Variables go only when their text changed, so a rename leaves them exactly as stored.
        if (multiline || values.variables === variableLines(environment.variables)) delete body.variables;
        else body.variables = variables(values.variables);
        if (!body.is_default) delete body.is_default;
        // No target means no key to log in with (the server clears it with the target).
        if (!body.target_secret_id || !body.target) delete body.target_secret_id;
        await api("PATCH", `${base}/environments/${environment.id}`, body);
        render();
      }),
      multiline ? el("p", {}, "Some variables hold line breaks: change them through the API (PATCH …/environments/{id}).") : null,
      el("h3", {}, "Secrets"),
      table(secrets, [["Name", (secret) => secret.name], ["Kind", (secret) => secret.kind],
        ["Status", (secret) => secret.kind === "ssh" && secret.public_key
          ? el("span", {}, `${secret.status} · ${secret.fingerprint || ""}`, el("textarea", { readonly: true, rows: 2, class: "code", "aria-label": `Public key of ${secret.name}` }, secret.public_key))
          : secret.status],
        ["", (secret) => el("span", {}, deleteButton(`Delete secret ${secret.name}`, `${base}/secrets/${secret.id}`),
          // An ssh key is generated, never typed: only env values are replaced.
          secret.kind === "env" ? editor(`Replace ${secret.name}`, [["value", "New value (write-only)", "password", { required: true, autocomplete: "new-password" }]],
            "Replace", async ({ value }) => { await api("PATCH", `${base}/secrets/${secret.id}`, { value }); render(); }) : null)]], "No secrets.", `Secrets of ${environment.name}`),
      editor(`Set a secret in ${environment.name}`, [["name", "Name", "text", { required: true, autocomplete: "off" }],
        // new-password: the browser must not fill in the login here, nor offer to save the value as one.
        ["value", "Value (write-only: it is never shown again)", "password", { required: true, autocomplete: "new-password" }]],
      "Set secret", async ({ name, value }) => {
        await api("POST", `${base}/environments/${environment.id}/secrets`, { name, kind: "env", value });
        render();
      }),
      editor(`New SSH key in ${environment.name} (for a target)`, [["name", "Name", "text", { required: true, autocomplete: "off" }]],
        "Generate key", async ({ name }) => {
          await api("POST", `${base}/environments/${environment.id}/secrets`, { name, kind: "ssh" });
          render();
        })));
  }
  page(`${info.name}: environments`, projectTabs(project, "environments"), ...blocks,
    editor("New environment", [["name", "Name", "text", { required: true }], ["variables", "Variables (NAME=value, one a line)", "textarea"]], "Create environment",
      async ({ name, variables: text }) => { await api("POST", `${base}/environments`, { name, variables: variables(text) }); render(); }));
}

async function repositoriesPage(project, info) {
  const base = `/v1/projects/${project}`;
  const repositories = (await api("GET", `${base}/repositories?limit=200`)).items;
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
        editor(`Edit ${repository.name}`, [["name", "Name (its folder in a checkout)", "text", { required: true, value: repository.name }],
          ["poll_interval_seconds", "Seconds between polls of its refs", "number", { required: true, min: 10, max: 86400, value: repository.poll_interval_seconds }],
          ["known_hosts", "known_hosts for a host not on GitHub, GitLab or Bitbucket", "textarea", { value: repository.known_hosts || "" }]],
        "Save repository", async (values) => {
          await api("PATCH", `${base}/repositories/${repository.id}`, { ...values, poll_interval_seconds: Number(values.poll_interval_seconds) });
          render();
        }),
        /^https?:/.test(repository.url) ? el("div", {},
          el("p", {}, repository.has_token ? "An HTTPS access token is set." : "No HTTPS access token: checkouts are anonymous.",
            repository.has_token ? [" ", el("button", { type: "button", class: "secondary", "aria-label": `Remove the token of ${repository.name}`,
              onclick: guarded(async () => { await api("DELETE", `${base}/repositories/${repository.id}/token`); render(); }) }, "Remove token")] : null),
          editor(repository.has_token ? `Replace the token of ${repository.name}` : `Set a token for ${repository.name}`,
            [["token", "Access token (write-only; sent as the password of user x-access-token)", "password", { required: true, autocomplete: "new-password" }]],
            "Save token", async ({ token }) => { await api("PUT", `${base}/repositories/${repository.id}/token`, { token }); render(); })) : null,
        el("h3", {}, "Refs"),
        table(Object.entries(repository.refs || {}), [["Ref", ([ref]) => ref], ["Commit", ([, sha]) => sha.slice(0, 12)]], "No refs seen yet."));
    }),
    repositories.length ? null : el("p", {}, "No repositories yet."),
    editor("New repository", [["url", "URL (git@host:owner/repo.git or https://…)", "text", { required: true }], ["known_hosts", "known_hosts for a host not on GitHub, GitLab or Bitbucket (optional)", "textarea"]],
      "Add repository", async ({ url, known_hosts: knownHosts }) => {
        await api("POST", `${base}/repositories`, knownHosts ? { url, known_hosts: knownHosts } : { url });
        render();
      }));
}

/** Every IANA time zone the browser knows, for the time zone fields' suggestions (once a page). */
function timeZoneList() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return el("datalist", { id: "time-zones" }, ["UTC", ...zones.filter((zone) => zone !== "UTC")].map((zone) => el("option", { value: zone })));
}

/** `time` as the wall clock of `zone` reads it, weekday first. */
function inZone(time, zone) {
  const options = { weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  try {
    return new Date(time).toLocaleString(undefined, { ...options, timeZone: zone });
  } catch {
    return new Date(time).toLocaleString(undefined, options);
  }
}

/** A schedule's form: a cron spec (its next fire times shown as one types) or one time. */
function scheduleForm(base, jobs, schedule, submit, save) {
  const zone = schedule.time_zone || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const local = (time) => {
    const date = new Date(time);
    return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  };
  const node = form([
    // A schedule stays with its job (make a new one for another).
    ["job_id", "Job", "select", { options: jobs.map((job) => [job.id, job.name]), selected: schedule.job_id, disabled: Boolean(schedule.id) }],
    ["when", "Runs", "select", { options: [["cron", "repeatedly (cron)"], ["once", "once"]], selected: schedule.run_at ? "once" : "cron" }],
    ["cron", "Cron (minute hour day month weekday, or @daily…)", "text", { placeholder: "0 2 * * *", value: schedule.cron || "", autocomplete: "off", spellcheck: "false" }],
    ["time_zone", "Time zone (IANA)", "text", { value: zone, list: "time-zones", autocomplete: "off" }],
    ["run_at", "At (your browser's time)", "datetime-local", { value: schedule.run_at ? local(schedule.run_at) : "", min: local(Date.now()) }],
    ["catch_up", "Times missed while no scheduler ran", "select", { options: [["once", "run once for them all"], ["none", "skip them"]], selected: schedule.catch_up }],
    ["overlap", "While the previous run is still running", "select", { options: [["allow", "run anyway"], ["skip", "skip this time"]], selected: schedule.overlap }],
    ["description", "Description (optional)", "text", { value: schedule.description || "" }],
  ], submit, async (values) => {
    const body = { ...(schedule.id ? {} : { job_id: values.job_id }), catch_up: values.catch_up, overlap: values.overlap, time_zone: values.time_zone || "UTC" };
    // An edit sends it even empty: that is how a description is removed.
    if (values.description || schedule.id) body.description = values.description;
    if (values.when === "once") {
      if (!values.run_at) throw new APIError(422, { detail: "choose when it runs", errors: [{ field: "run_at", message: "choose when it runs" }] });
      body.run_at = new Date(values.run_at).toISOString();
    } else {
      body.cron = values.cron;
    }
    await save(body);
  });
  const preview = el("div", { class: "preview", id: `${node.querySelector("[name=cron]").id}-preview` });
  const cron = node.querySelector("[name=cron]");
  // Read with the field; a one-line summary is said as it changes (not five dates at every pause).
  cron.setAttribute("aria-describedby", preview.id);
  const timeZone = node.querySelector("[name=time_zone]");
  const when = node.querySelector("[name=when]");
  cron.closest("label").after(preview);
  let timer = null;
  let asked = 0;
  const update = () => {
    const once = when.value === "once";
    cron.closest("label").hidden = once;
    preview.hidden = once;
    timeZone.closest("label").hidden = once;
    node.querySelector("[name=run_at]").closest("label").hidden = !once;
    cron.required = !once;
    clearTimeout(timer);
    // An answer still on its way is dropped too.
    if (once || !cron.value.trim()) { asked += 1; preview.replaceChildren(); return; }
    // Closed editors ask nothing until they are opened.
    if (!node.closest("details")?.open) return;
    // Asked after a pause in typing; an older answer arriving late is dropped.
    timer = setTimeout(async () => {
      const ask = ++asked;
      try {
        const answer = await api("GET", `${base}/schedule-preview?cron=${encodeURIComponent(cron.value)}&time_zone=${encodeURIComponent(timeZone.value || "UTC")}`);
        if (ask !== asked) return;
        const times = answer.next_fire_times.map((time) => inZone(time, timeZone.value || "UTC"));
        preview.replaceChildren(el("span", {}, `Next, in ${timeZone.value || "UTC"}:`), el("ul", { class: "fire-times" }, times.map((time) => el("li", {}, time))));
        announce(times.length ? `Next: ${times[0]}` : "It never fires");
      } catch (error) {
        if (ask !== asked) return;
        const fields = (error.problem && error.problem.errors) || [];
        const words = { cron: "Cron", time_zone: "Time zone" };
        const text = fields.length ? fields.map((each) => `${words[each.field] || each.field}: ${each.message}`).join("; ") : error.message;
        preview.replaceChildren(el("span", { class: "error" }, text));
        announce(text);
      }
    }, 300);
  };
  for (const input of [cron, timeZone, when]) input.addEventListener("input", update);
  // Its details element is known once the form is in it: ask when it opens.
  queueMicrotask(() => node.closest("details")?.addEventListener("toggle", update));
  update();
  return node;
}

async function schedulesPage(project, info) {
  const base = `/v1/projects/${project}`;
  const [schedules, jobs] = await Promise.all([api("GET", `${base}/schedules?limit=200`), api("GET", `${base}/jobs?limit=200`)]);
  const jobNames = Object.fromEntries(jobs.items.map((job) => [job.id, job.name]));
  const when = (schedule) => schedule.cron ? `${schedule.cron} (${schedule.time_zone})` : new Date(schedule.run_at).toLocaleString();
  // Names that tell two schedules of one job apart, for buttons read out of context.
  const named = (schedule) => `the schedule ${when(schedule)} of ${jobNames[schedule.job_id] || "a job"}`;
  page(`${info.name}: schedules`, projectTabs(project, "schedules"), timeZoneList(),
    table(schedules.items, [
      ["Job", (schedule) => jobNames[schedule.job_id] || schedule.job_id.slice(0, 8)],
      ["When", when],
      ["Description", (schedule) => schedule.description || ""],
      ["Next", (schedule) => schedule.disabled_at ? "–" : (schedule.next_fire_times || []).slice(0, 3).map((time) => inZone(time, schedule.time_zone)).join("; ") || "–"],
      ["State", (schedule) => schedule.disabled_at ? `disabled: ${schedule.disabled_reason || ""}` : "enabled"],
      ["", (schedule) => el("span", {},
        el("button", { type: "button", class: "secondary", "aria-label": `${schedule.disabled_at ? "Enable" : "Disable"} ${named(schedule)}`,
          onclick: guarded(async () => {
            await api("POST", `${base}/schedules/${schedule.id}/${schedule.disabled_at ? "enable" : "disable"}`);
            render();
          }) }, schedule.disabled_at ? "Enable" : "Disable"), " ",
        deleteButton(`Delete ${named(schedule)}`, `${base}/schedules/${schedule.id}`),
        el("details", {}, el("summary", {}, `Edit ${named(schedule)}`),
          scheduleForm(base, jobs.items, schedule, "Save schedule", async (body) => {
            await api("PATCH", `${base}/schedules/${schedule.id}`, body);
            render();
            await backTo(`Edit ${named(schedule)}`);
          })))],
    ], "No schedules yet.", "Schedules"),
    el("details", {}, el("summary", {}, "New schedule"),
      scheduleForm(base, jobs.items, { catch_up: "once", overlap: "allow" }, "Create schedule", async (body) => {
        await api("POST", `${base}/schedules`, body);
        render();
        await backTo("New schedule");
      })));
}

const changeTypes = [["change", "a ref moves"], ["add", "a ref appears"], ["remove", "a ref goes"]];

async function triggersPage(project, info) {
  const base = `/v1/projects/${project}`;
  const [triggers, jobs, repositories] = await Promise.all([
    api("GET", `${base}/triggers?limit=200`), api("GET", `${base}/jobs?limit=200`), api("GET", `${base}/repositories?limit=200`)]);
  const names = Object.fromEntries([...jobs.items, ...repositories.items].map((item) => [item.id, item.name]));
  page(`${info.name}: triggers`, projectTabs(project, "triggers"),
    table(triggers.items, [["Name", (trigger) => trigger.name], ["Repository", (trigger) => names[trigger.repository_id] || ""],
      ["Refs", (trigger) => trigger.ref_pattern], ["On", (trigger) => trigger.change_type], ["Runs", (trigger) => names[trigger.job_id] || ""],
      ["", (trigger) => el("span", {}, deleteButton(`Delete trigger ${trigger.name}`, `${base}/triggers/${trigger.id}`),
        editor(`Edit ${trigger.name}`, [["name", "Name", "text", { required: true, value: trigger.name }],
          ["ref_pattern", "Refs (a regular expression over the whole name)", "text", { required: true, value: trigger.ref_pattern }],
          ["change_type", "On", "select", { options: changeTypes, selected: trigger.change_type }]],
        "Save trigger", async (values) => { await api("PATCH", `${base}/triggers/${trigger.id}`, values); render(); }))]], "No git triggers yet."),
    el("details", {}, el("summary", {}, "New trigger"),
      form([["name", "Name", "text", { required: true }],
        ["repository_id", "Repository", "select", { options: repositories.items.map((repository) => [repository.id, repository.name]) }],
        ["ref_pattern", "Refs (a regular expression over the whole name)", "text", { required: true, value: "^refs/heads/main$" }],
        ["change_type", "On", "select", { options: changeTypes }],
        ["job_id", "Job to run", "select", { options: jobs.items.map((job) => [job.id, job.name]) }]],
      "Create trigger", async (values) => { await api("POST", `${base}/triggers`, values); render(); })));
}

async function webhooksPage(project, info) {
  const base = `/v1/projects/${project}`;
  const [webhooks, jobs] = await Promise.all([api("GET", `${base}/webhooks?limit=200`), api("GET", `${base}/jobs?limit=200`)]);
  const jobNames = Object.fromEntries(jobs.items.map((job) => [job.id, job.name]));
  // The secret goes in a curl example that signs a delivery the way Harrow checks it.
  const example = (url, secret) => [`secret='${secret}'`, `body='{}'`, "timestamp=$(date +%s)",
    `signature=$(printf '%s.%s' "$timestamp" "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')`,
    `curl -X POST '${url}' -H 'Content-Type: application/json' -H "X-Harrow-Timestamp: $timestamp" \\`,
    `  -H "X-Harrow-Signature: sha256=$signature" -H "X-Harrow-Delivery: $(cat /proc/sys/kernel/random/uuid)" --data-binary "$body"`].join("\n");
  page(`${info.name}: webhooks`, projectTabs(project, "webhooks"), flashBlock(),
    table(webhooks.items, [["Name", (webhook) => webhook.name], ["Runs", (webhook) => jobNames[webhook.job_id] || ""],
      ["URL", (webhook) => `${location.origin}/hooks/${webhook.slug}`],
      ["", (webhook) => el("span", {}, deleteButton(`Delete webhook ${webhook.name}`, `${base}/webhooks/${webhook.id}`), " ",
        el("button", { type: "button", class: "secondary", "aria-label": `Rotate the secret of ${webhook.name}`, onclick: guarded(async () => {
          if (!confirm(`Rotate the secret of ${webhook.name}? Senders need the new one.`)) return;
          const rotated = await api("POST", `${base}/webhooks/${webhook.id}/rotate`);
          flash = { title: `The new secret of ${webhook.name}, shown this once`, secret: rotated.signing_secret,
            example: example(`${location.origin}/hooks/${webhook.slug}`, rotated.signing_secret) };
          render();
        }) }, "Rotate secret"))]], "No webhooks yet.", "Webhooks"),
    el("details", {}, el("summary", {}, "New webhook"),
      form([["name", "Name", "text", { required: true }], ["job_id", "Job to run", "select", { options: jobs.items.map((job) => [job.id, job.name]) }]],
        "Create webhook", async (values) => {
          const created = await api("POST", `${base}/webhooks`, values);
          flash = { title: `The signing secret of ${created.webhook.name}, shown this once`, secret: created.signing_secret,
            example: example(`${location.origin}/hooks/${created.webhook.slug}`, created.signing_secret) };
          render();
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
    // The chart's figures are extra: the counts and actions stay usable without them.
    const [overview, throughput] = await Promise.all([api("GET", "/admin/queues"), api("GET", "/admin/throughput").catch(() => ({ items: [] }))]);
    const minutesOf = Object.fromEntries(throughput.items.map((item) => [item.queue, item.minutes]));
    // Every queue's minutes added up, for the chart of the whole platform.
    const total = (throughput.items[0]?.minutes || []).map((minute, index) => {
      const known = throughput.items.map((item) => item.minutes[index]).filter((each) => each && each.finished !== undefined && each.finished !== null);
      return known.length ? { start: minute.start, added: known.reduce((sum, each) => sum + each.added, 0), finished: known.reduce((sum, each) => sum + each.finished, 0) } : { start: minute.start };
    });
    const rows = overview.queues.map((queue) => {
      const path = `/admin/queues/${encodeURIComponent(queue.queue)}`;
      return el("tr", { "data-queue": queue.queue },
        el("th", { scope: "row" }, link(`/queues/${encodeURIComponent(queue.queue)}`, queue.queue)),
        el("td", { class: "spark" }, chart(minutesOf[queue.queue] || [], { width: 120, height: 28, label: `${queue.queue}, last hour` })),
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
        el("div", { class: "table-scroll", role: "region", tabindex: "0", "aria-label": `Dead letters of ${queue.queue}` }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Job"), el("th", {}, "Type"), el("th", {}, "Error"), el("th", {}, "Failed"), el("th", {}, el("span", { class: "visually-hidden" }, "Actions")))),
          el("tbody", {}, dead.map((letter) => el("tr", {},
            el("td", {}, letter.id.slice(0, 8)), el("td", {}, letter.fields.type || ""), el("td", {}, letter.error),
            el("td", {}, new Date(letter.failed_at).toLocaleString()),
            el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": `Retry ${letter.id}`,
              onclick: guarded(async () => { await api("POST", `${path}/dead/retry`, { id: letter.id }); await draw(true); }) }, "Retry")))))))));
    }
    const workers = (await api("GET", "/admin/workers")).items;
    view.replaceChildren(
      el("section", { "aria-label": "Throughput" }, el("h2", {}, "Jobs finished per minute, last hour"),
        chart(total, { width: 720, height: 160, label: "Every queue, last hour", axis: true }),
        el("p", { class: "legend" }, el("span", { class: "key finished" }, "finished"), " ", el("span", { class: "key added" }, "added"),
          " · sampled by the workers every few seconds; a gap is a time no worker ran.")),
      el("div", { class: "table-scroll", role: "region", tabindex: "0", "aria-label": "Queues" }, el("table", { id: "queues" },
        el("thead", {}, el("tr", {}, ["Queue", "Last hour", "Ready", "In flight", "Delayed", "Dead", "Consumers", "Oldest ready", ""].map((text) => el("th", { scope: "col" }, text || el("span", { class: "visually-hidden" }, "Actions"))))),
        el("tbody", {}, rows))),
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

const svgNS = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(svgNS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

/** Minutes of throughput as an SVG chart: bars of finished jobs, a line of added ones. It says
 * what it shows in words (its label); with `axis`, its scale is said in text under it (readable
 * at any width) and its minutes can be opened as a table. */
function chart(minutes, { width, height, label, axis = false }) {
  const known = minutes.filter((minute) => minute.finished !== undefined && minute.finished !== null);
  const finished = known.reduce((sum, minute) => sum + minute.finished, 0);
  const added = known.reduce((sum, minute) => sum + minute.added, 0);
  const peak = Math.max(1, ...known.map((minute) => Math.max(minute.finished, minute.added)));
  const busiest = Math.max(0, ...known.map((minute) => minute.finished));
  const words = known.length
    ? `${label}: ${finished} finished, ${added} added; busiest minute ${busiest} finished (${Math.round(busiest / 60 * 10) / 10} a second)`
    : `${label}: no samples (no worker running)`;
  const step = width / Math.max(1, minutes.length);
  const y = (value) => height - (value / peak) * (height - 2);
  const bars = minutes.map((minute, index) => minute.finished === undefined || minute.finished === null ? null
    : svg("rect", { class: "finished", x: (index * step + step * 0.1).toFixed(1), y: y(minute.finished).toFixed(1), width: (step * 0.8).toFixed(1), height: (height - y(minute.finished)).toFixed(1) })).filter(Boolean);
  const points = minutes.map((minute, index) => minute.added === undefined || minute.added === null ? null : `${(index * step + step / 2).toFixed(1)},${y(minute.added).toFixed(1)}`).filter(Boolean);
  if (points.length > 1) bars.push(svg("polyline", { class: "added", points: points.join(" ") }));
  const picture = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": words, class: "chart" }, ...bars);
  if (!axis) return picture;
  const at = (ms) => new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return el("figure", { class: "chart" }, el("p", { class: "axis" }, `up to ${peak} a minute`), picture,
    el("p", { class: "axis ends" }, el("span", {}, "an hour ago"), el("span", {}, "now")),
    el("details", {}, el("summary", {}, "The minutes as a table"),
      table(known.slice().reverse(), [["Minute from", (minute) => at(minute.start)], ["Finished", (minute) => minute.finished], ["Added", (minute) => minute.added]],
        "No minute was sampled.", `${label}, by the minute`)));
}

/** Admin: one queue's jobs by state (ready, in flight, delayed, dead), its chart and actions. */
async function adminQueuePage(name) {
  if (!me.is_admin) return page("Not found", el("p", {}, "No such page."));
  const path = `/admin/queues/${encodeURIComponent(name)}`;
  const [stats, throughput] = await Promise.all([api("GET", path), api("GET", "/admin/throughput").catch(() => ({ items: [] }))]);
  const minutes = (throughput.items.find((item) => item.queue === name) || {}).minutes || [];
  const [ready, pending, delayed, dead] = await Promise.all([
    api("GET", `${path}/jobs?state=ready&limit=50`), api("GET", `${path}/jobs?state=pending&limit=50`),
    api("GET", `${path}/jobs?state=delayed&limit=50`), api("GET", `${path}/dead?limit=50`)]);
  const fields = (job) => el("code", {}, job.fields.type || "", Number(job.fields.attempt) > 1 ? ` · attempt ${job.fields.attempt}` : "");
  const at = (ms) => new Date(ms).toLocaleString();
  page(`Queue ${name}`, el("p", {}, link("/admin", "← Queues")),
    el("p", {}, `${stats.ready} ready, ${stats.pending} in flight, ${stats.delayed} delayed, ${stats.dead} dead${stats.paused ? "; paused" : ""}.`),
    chart(minutes, { width: 720, height: 160, label: `${name}, last hour`, axis: true }),
    el("section", { "aria-label": "Ready" }, el("h2", {}, `Ready (${stats.ready})`),
      table(ready.items, [["Job", (job) => job.id], ["Type", fields], ["Enqueued", (job) => job.fields.enqueued_at ? at(Number(job.fields.enqueued_at)) : "–"]], "None waiting.")),
    el("section", { "aria-label": "In flight" }, el("h2", {}, `In flight (${stats.pending})`),
      table(pending.items, [["Job", (job) => job.id], ["Type", fields], ["Worker", (job) => job.consumer || ""],
        ["Idle", (job) => job.idle_ms === undefined || job.idle_ms === null ? "–" : `${Math.round(job.idle_ms / 1000)} s`]], "None running.")),
    el("section", { "aria-label": "Delayed" }, el("h2", {}, `Delayed (${stats.delayed})`),
      table(delayed.items, [["Job", (job) => job.id], ["Type", fields], ["Due", (job) => job.run_at ? at(job.run_at) : "–"]], "None scheduled.")),
    el("section", { "aria-label": "Dead" }, el("h2", {}, `Dead (${stats.dead})`),
      table(dead.items, [["Job", (letter) => letter.id], ["Type", (letter) => letter.fields.type || ""], ["Error", (letter) => letter.error],
        ["Failed", (letter) => at(letter.failed_at)],
        ["", (letter) => el("button", { type: "button", class: "secondary", "aria-label": `Retry ${letter.id}`,
          onclick: guarded(async () => { await api("POST", `${path}/dead/retry`, { id: letter.id }); render(); }) }, "Retry")]], "None dead.")));
}

let socket = null;

const reasons = { user: "run by hand", schedule: "by a schedule", webhook: "by a webhook", git_trigger: "by a git trigger", notification: "by a notification rule", retry: "a retry" };
const failures = {
  worker_lost: "its worker stopped answering", checkout_failed: "a repository could not be checked out", setup_failed: "its workspace could not be set up",
  script_failed: "the script failed", target_unreachable: "the target host could not be reached",
};

/** ", took 1 min 5 s" between two times, or nothing. */
function duration(start, end) {
  if (!start || !end) return "";
  const seconds = Math.max(0, Math.round((new Date(end) - new Date(start)) / 1000));
  return `, took ${seconds >= 60 ? `${Math.floor(seconds / 60)} min ` : ""}${seconds % 60} s`;
}

async function operationPage(project, id) {
  const base = `/v1/projects/${project}`;
  const operation = await api("GET", `${base}/operations/${id}`);
  const job = await api("GET", `${base}/jobs/${operation.job_id}`).catch(() => null);
  const status = el("strong", { id: "operation-status", role: "status" }, statusCell(operation.status));
  const timeline = el("ol", { id: "timeline", class: "timeline" });
  const outcome = el("p", {});
  const details = el("div", {});
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
  // When it was queued, started and ended; why it ran; how it ended.
  const describe = (current) => {
    const at = (time) => new Date(time).toLocaleString();
    timeline.replaceChildren(...[
      el("li", {}, `Queued ${at(current.created_at)} (${reasons[current.reason] || current.reason})`),
      current.started_at ? el("li", {}, `Started ${at(current.started_at)}${current.runner ? ` on ${current.runner}` : ""}`) : null,
      current.canceled_at ? el("li", {}, `Cancel asked ${at(current.canceled_at)}`) : null,
      current.finished_at ? el("li", {}, `Ended ${at(current.finished_at)}: ${current.status}${duration(current.started_at, current.finished_at)}`) : null,
    ].filter(Boolean));
    outcome.replaceChildren(
      current.exit_status !== null && current.exit_status !== undefined ? `Exit status ${current.exit_status}. ` : "",
      current.failure_reason ? `Why it failed: ${failures[current.failure_reason] || current.failure_reason}. ` : "");
    // Checkouts are recorded once the run starts: drawn again with every change.
    const parameters = Object.entries(current.parameters || {});
    const checkouts = Object.entries(current.checkouts || {});
    details.replaceChildren(...[
      current.retry_of ? el("p", {}, "A retry of ", link(`/projects/${project}/operations/${current.retry_of}`, current.retry_of.slice(0, 8))) : null,
      parameters.length ? el("section", { "aria-label": "Parameters" }, el("h2", {}, "Parameters"),
        table(parameters, [["Name", ([name]) => name], ["Value", ([, value]) => value]], "", "Parameters")) : null,
      checkouts.length ? el("section", { "aria-label": "Checkouts" }, el("h2", {}, "Checkouts"),
        table(checkouts, [["Repository", ([name]) => name], ["Commit", ([, sha]) => el("code", {}, sha)]], "", "Checkouts")) : null,
    ].filter(Boolean));
  };
  showActions(operation);
  describe(operation);
  page(`Operation ${id.slice(0, 8)}`, el("p", {}, link(`/projects/${project}`, "← Project")),
    el("p", {}, job ? `Job ${job.name} · ` : "", "Status: ", status), actions, timeline, outcome, details,
    el("h2", {}, "Log"), log);

  async function refresh() {
    const current = await api("GET", `${base}/operations/${id}`);
    status.replaceChildren(statusCell(current.status));
    showActions(current);
    describe(current);
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
/** The page being drawn: what waits for it to be there. */
let drawn = Promise.resolve();

function render() {
  drawn = draw();
  return drawn;
}

async function draw() {
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
    nav.replaceChildren(...[link("/", "Projects"), me.is_admin ? link("/admin", "Queues") : null, link("/account", me.name),
      el("button", { type: "button", class: "secondary", onclick: guarded(async () => {
        await api("DELETE", "/v1/sessions/current");
        me = null;
        go("/login");
      }) }, "Log out")].filter(Boolean));
    let match;
    if ((match = path.match(/^\/projects\/([0-9a-f-]{36})\/operations\/([0-9a-f-]{36})$/))) return await operationPage(match[1], match[2]);
    if ((match = path.match(/^\/projects\/([0-9a-f-]{36})$/))) return await projectPage(match[1], new URLSearchParams(location.search));
    if ((match = path.match(/^\/projects\/([0-9a-f-]{36})\/(environments|repositories|schedules|triggers|webhooks|notifications|members|settings|activity)$/))) {
      const pages = {
        environments: environmentsPage, repositories: repositoriesPage, schedules: schedulesPage, triggers: triggersPage, webhooks: webhooksPage,
        notifications: notificationsPage, members: membersPage, settings: settingsPage, activity: activityPage,
      };
      return await pages[match[2]](match[1], await api("GET", `/v1/projects/${match[1]}`));
    }
    if (path === "/admin") return await adminPage();
    // Not under /admin/queues: that is the API's, and a reload there must open this page.
    if ((match = path.match(/^\/queues\/([^/]+)$/))) return await adminQueuePage(decodeURIComponent(match[1]));
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
