// The web UI: search, a page per learnware, upload, the caller's learnwares and an admin view.
// Views are chosen by the URL hash; every error is shown in the alert region, never thrown away.
import "./style.css";
import { ApiError, call, minRevision, saveToken, statSpecOf, token, upload, type LearnwareInfo, type MarketInfo, type SearchResponse, type SemanticSpec, type Vocabulary } from "./api";

const STATUSES = ["LEARNWARE_STATUS_PENDING", "LEARNWARE_STATUS_INVALID", "LEARNWARE_STATUS_NONUSABLE", "LEARNWARE_STATUS_USABLE"];

const main = document.getElementById("main") as HTMLElement;
const messageBox = document.getElementById("message") as HTMLElement;
let notice = ""; // shown once on the next view (e.g. after a delete moves to the admin view)
// The most feature description fields the search form offers (one text field per input column).
const MAX_DESCRIBED_FEATURES = 512;
const INT32_MAX = 2147483647; // dimensions are int32 in the protos

function escape(text: unknown): string {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

function say(text: string, kind: "error" | "info" = "error"): void {
  messageBox.textContent = text;
  messageBox.className = kind;
}

function describe(error: unknown): string {
  if (error instanceof ApiError || error instanceof Error) return error.message;
  return String(error);
}

function statusName(status: string | undefined): string {
  return (status ?? "LEARNWARE_STATUS_UNSPECIFIED").replace("LEARNWARE_STATUS_", "");
}

function options(values: string[], any: boolean): string {
  return (any ? '<option value="">Any</option>' : "") + values.map((v) => `<option>${escape(v)}</option>`).join("");
}

function selected(form: HTMLFormElement, name: string): string[] {
  const field = form.elements.namedItem(name) as HTMLSelectElement | null;
  if (!field) return [];
  return Array.from(field.selectedOptions).map((o) => o.value).filter((v) => v);
}

function text(form: HTMLFormElement, name: string): string {
  return ((form.elements.namedItem(name) as HTMLInputElement | null)?.value ?? "").trim();
}

function learnwareLink(info: LearnwareInfo): string {
  return `<a href="#/learnware/${escape(info.id)}">${escape(info.semanticSpec?.name || info.id)}</a>`;
}

// ---- search ----

let vocabularyCache: Vocabulary | undefined;

/** The tag lists of the forms: the market's semantic vocabulary, served by lwm web (fetched once it answers). */
async function vocabulary(): Promise<Vocabulary> {
  vocabularyCache ??= await call<Vocabulary>("GET", "/ui/vocabulary.json");
  return vocabularyCache;
}

/** A whole number from `min` to `max` typed in a field, or undefined if the field is empty; else an error naming the field. */
function wholeNumber(form: HTMLFormElement, name: string, label: string, min: number, max: number): number | undefined {
  const value = text(form, name);
  if (!value) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) throw new Error(`${label} must be a whole number from ${min} to ${max} (not "${value}").`);
  return number;
}

const FEATURES_FIELDSET = `
  <fieldset id="features">
    <legend>Feature descriptions (a Hetero market also finds learnwares whose columns differ from yours)</legend>
    <div class="grid"><label>Input dimension <input name="inputDimension" type="number" min="1" max="${MAX_DESCRIBED_FEATURES}" step="1" /></label></div>
    <div id="feature-fields" class="grid"></div>
  </fieldset>`;

/** One description field per input column; values typed before are kept. */
function renderFeatureFields(form: HTMLFormElement): void {
  const box = document.getElementById("feature-fields") as HTMLElement;
  const typed = Array.from(box.querySelectorAll("input")).map((field) => field.value);
  let dimension: number | undefined;
  try {
    dimension = wholeNumber(form, "inputDimension", "Input dimension", 1, MAX_DESCRIBED_FEATURES);
    say("");
  } catch (error) {
    say(describe(error));
  }
  box.innerHTML = Array.from({ length: dimension ?? 0 }, (_, i) => `<label>Feature ${i} <input name="feature-${i}" type="text" value="${escape(typed[i] ?? "")}" /></label>`).join("");
}

/** The search's "Input": the dimension and the described columns (the reference's {"Dimension", "Description"}). */
function featureInput(form: HTMLFormElement): SemanticSpec["input"] {
  if (!form.elements.namedItem("inputDimension")) return undefined;
  const dimension = wholeNumber(form, "inputDimension", "Input dimension", 1, MAX_DESCRIBED_FEATURES);
  if (dimension === undefined) return undefined;
  const descriptions: Record<string, string> = {};
  for (let i = 0; i < dimension; i++) {
    const description = text(form, `feature-${i}`);
    if (description) descriptions[String(i)] = description;
  }
  return { dimension, descriptions };
}

/** The vocabulary a form offers; undefined (the page says why) when it cannot be read or the user went elsewhere. */
async function formVocabulary(form: string): Promise<Vocabulary | undefined> {
  const shown = navigation;
  main.innerHTML = "<p>Loading…</p>";
  try {
    const tags = await vocabulary();
    return shown === navigation ? tags : undefined;
  } catch (error) {
    if (shown !== navigation) return undefined;
    main.innerHTML = `<p>The ${form} form needs the market's vocabulary, which cannot be read.</p>`;
    say(describe(error));
    return undefined;
  }
}

async function searchView(): Promise<void> {
  const shown = navigation;
  const tags = await formVocabulary("search");
  if (tags === undefined) return;
  let hetero = false;
  try {
    hetero = (await call<MarketInfo>("GET", "/v1/market")).kind === "MARKET_KIND_HETERO";
  } catch (error) {
    say(`The market's kind cannot be read (${describe(error)}); the form is that of an Easy market.`);
  }
  if (shown !== navigation) return;
  main.innerHTML = `
    <h2>Search learnwares</h2>
    <form id="search-form" novalidate>
      <div class="grid">
        <label>Data type <select name="data">${options(tags.data, true)}</select></label>
        <label>Task type <select name="task">${options(tags.task, true)}</select></label>
        <label>Library <select name="library">${options(tags.library, true)}</select></label>
        <label>Scenario <select name="scenario" multiple size="4">${options(tags.scenario, false)}</select></label>
        <label>Name <input name="name" type="text" /></label>
        <label>Description <input name="description" type="text" /></label>
        <label>Statistical specification (JSON file) <input name="spec" type="file" accept=".json,application/json" /></label>
        <label>Most results <input name="max" type="number" min="1" max="100" value="10" /></label>
      </div>
      ${hetero ? FEATURES_FIELDSET : ""}
      <button type="submit">Search</button>
    </form>
    <section id="results" aria-live="polite"></section>`;
  const form = document.getElementById("search-form") as HTMLFormElement;
  (form.elements.namedItem("inputDimension") as HTMLInputElement | null)?.addEventListener("input", () => renderFeatureFields(form));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void runSearch(form);
  });
}

async function runSearch(form: HTMLFormElement): Promise<void> {
  const results = document.getElementById("results") as HTMLElement;
  say("");
  try {
    const semanticSpec: SemanticSpec = { data: selected(form, "data"), task: selected(form, "task"), library: selected(form, "library"), scenario: selected(form, "scenario"), name: text(form, "name"), description: text(form, "description") };
    const input = featureInput(form);
    if (input) semanticSpec.input = input;
    const request: Record<string, unknown> = { semanticSpec, maxResults: wholeNumber(form, "max", "Most results", 1, 100) ?? 10, minRevision: minRevision() };
    const file = (form.elements.namedItem("spec") as HTMLInputElement).files?.[0];
    if (file) request.statSpecs = [statSpecOf(await file.text(), "RKMETableSpecification")];
    results.innerHTML = "<p>Searching…</p>";
    const response = await call<SearchResponse>("POST", "/v1/learnwares:search", request);
    const singles = response.singleResults ?? [];
    const mixtures = response.multipleResults ?? [];
    results.innerHTML = `
      <h3>Single learnwares (${singles.length}, ${escape(response.searchPath)} search)</h3>
      ${singles.length ? `<ol class="results">${singles.map((r) => `<li>${learnwareLink(r.learnware)} <span class="score">score ${(r.score ?? 0).toFixed(3)}</span> <span class="status">${escape(r.learnware.semanticSpec?.task?.join(", "))}</span></li>`).join("")}</ol>` : "<p>No learnware matches.</p>"}
      ${mixtures.map((m) => `<h3>Mixture (score ${(m.score ?? 0).toFixed(3)})</h3><ul>${m.learnwares.map((l, i) => `<li>${learnwareLink(l)} weight ${(m.weights?.[i] ?? 0).toFixed(3)}</li>`).join("")}</ul>`).join("")}
      ${(response.messages ?? []).map((m) => `<p class="note">${escape(m)}</p>`).join("")}`;
  } catch (error) {
    results.innerHTML = "";
    say(describe(error));
  }
}

// ---- one learnware ----

function reportHtml(info: LearnwareInfo): string {
  const steps = info.checkReport?.steps ?? [];
  if (!steps.length) return "<p>Not checked yet.</p>";
  return `<table><caption>Check report</caption><thead><tr><th scope="col">Step</th><th scope="col">Result</th><th scope="col">Messages</th></tr></thead><tbody>
    ${steps.map((s) => `<tr><td>${escape(s.name)}</td><td>${s.passed ? "passed" : "failed"}</td><td>${(s.messages ?? []).map(escape).join("<br />")}</td></tr>`).join("")}
    </tbody></table>`;
}

async function learnwareView(id: string): Promise<void> {
  const shown = navigation;
  main.innerHTML = "<p>Loading…</p>";
  try {
    const { learnware: info } = await call<{ learnware: LearnwareInfo }>("GET", `/v1/learnwares/${encodeURIComponent(id)}`);
    if (shown !== navigation) return;
    const spec = info.semanticSpec ?? {};
    const row = (name: string, value: unknown) => `<dt>${name}</dt><dd>${escape(Array.isArray(value) ? value.join(", ") : value) || "—"}</dd>`;
    main.innerHTML = `
      <h2>${escape(spec.name || info.id)}</h2>
      <p>Status: <strong id="status">${statusName(info.status)}</strong></p>
      <dl>
        ${row("Id", info.id)}${row("Owner", info.owner)}${row("Description", spec.description)}${row("Data type", spec.data)}
        ${row("Task type", spec.task)}${row("Library", spec.library)}${row("Scenario", spec.scenario)}${row("License", spec.license)}
        ${row("Input dimension", spec.input?.dimension)}${row("Output dimension", spec.output?.dimension)}
        ${row("Specification types", info.statSpecTypes)}${row("Zip size (bytes)", info.zipSize)}
      </dl>
      <p><a id="download" href="/v1/learnwares/${encodeURIComponent(info.id)}:download" download="${escape(info.id)}.zip">Download zip</a></p>
      ${reportHtml(info)}
      <p><button type="button" id="delete">Delete</button> <button type="button" id="recheck">Check again (admin)</button></p>`;
    document.getElementById("delete")?.addEventListener("click", () => void remove(info.id));
    document.getElementById("recheck")?.addEventListener("click", () => void recheck(info.id));
  } catch (error) {
    if (shown !== navigation) return;
    main.innerHTML = "<p>This learnware cannot be shown.</p>";
    say(describe(error));
  }
}

async function remove(id: string): Promise<void> {
  if (!window.confirm(`Delete learnware ${id}?`)) return;
  try {
    await call("DELETE", `/v1/learnwares/${encodeURIComponent(id)}`);
    notice = `Deleted ${id}.`;
    location.hash = "#/admin";
  } catch (error) {
    say(describe(error));
  }
}

async function recheck(id: string): Promise<void> {
  try {
    say("Checking again…", "info");
    await call("POST", `/v1/learnwares/${encodeURIComponent(id)}:recheck`, { waitForCheck: true });
    say(`Checked ${id} again.`, "info");
    await route();
  } catch (error) {
    say(describe(error));
  }
}

// ---- upload ----

async function uploadView(): Promise<void> {
  const tags = await formVocabulary("upload");
  if (tags === undefined) return;
  main.innerHTML = `
    <h2>Upload a learnware</h2>
    <form id="upload-form">
      <div class="grid">
        <label>Name <input name="name" type="text" required /></label>
        <label>Description <input name="description" type="text" /></label>
        <label>Data type <select name="data">${options(tags.data, false)}</select></label>
        <label>Task type <select name="task">${options(tags.task, false)}</select></label>
        <label>Library <select name="library">${options(tags.library, false)}</select></label>
        <label>Scenario <select name="scenario" multiple size="4">${options(tags.scenario, false)}</select></label>
        <label>License <select name="license">${options(tags.license, false)}</select></label>
        <label>Input dimension <input name="input" type="number" min="1" /></label>
        <label>Output dimension <input name="output" type="number" min="1" /></label>
        <label>Learnware zip <input name="zip" type="file" accept=".zip,application/zip" required /></label>
      </div>
      <button type="submit">Upload and check</button>
    </form>
    <progress id="progress" max="1" value="0" aria-label="Upload progress" hidden></progress>
    <section id="upload-result" aria-live="polite"></section>`;
  const form = document.getElementById("upload-form") as HTMLFormElement;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void runUpload(form);
  });
}

async function runUpload(form: HTMLFormElement): Promise<void> {
  say("");
  const zip = (form.elements.namedItem("zip") as HTMLInputElement).files?.[0];
  if (!zip) return say("Choose a learnware zip.");
  const semanticSpec: SemanticSpec = { name: text(form, "name"), description: text(form, "description"), data: selected(form, "data"), task: selected(form, "task"), library: selected(form, "library"), scenario: selected(form, "scenario"), license: selected(form, "license") };
  try {
    const input = wholeNumber(form, "input", "Input dimension", 1, INT32_MAX);
    const output = wholeNumber(form, "output", "Output dimension", 1, INT32_MAX);
    if (input !== undefined) semanticSpec.input = { dimension: input };
    if (output !== undefined) semanticSpec.output = { dimension: output };
  } catch (error) {
    return say(describe(error));
  }
  const progress = document.getElementById("progress") as HTMLProgressElement;
  const result = document.getElementById("upload-result") as HTMLElement;
  progress.hidden = false;
  try {
    const { learnware } = await upload({ semanticSpec, zipSize: String(zip.size), waitForCheck: false }, zip, (f) => (progress.value = f));
    let info = learnware;
    while (info.status === "LEARNWARE_STATUS_PENDING") {
      result.innerHTML = `<p>Uploaded ${learnwareLink(info)}; status <strong>${statusName(info.status)}</strong>, checking…</p>`;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      info = (await call<{ learnware: LearnwareInfo }>("GET", `/v1/learnwares/${encodeURIComponent(info.id)}`)).learnware;
    }
    result.innerHTML = `<p>Uploaded ${learnwareLink(info)}: status <strong id="upload-status">${statusName(info.status)}</strong></p>${reportHtml(info)}`;
  } catch (error) {
    result.innerHTML = "";
    say(describe(error));
  } finally {
    progress.hidden = true;
  }
}

// ---- lists: the caller's learnwares and the admin view ----

function listHtml(learnwares: LearnwareInfo[]): string {
  if (!learnwares.length) return "<p>No learnwares.</p>";
  return `<table><thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Owner</th><th scope="col">Id</th></tr></thead><tbody>
    ${learnwares.map((l) => `<tr><td>${learnwareLink(l)}</td><td>${statusName(l.status)}</td><td>${escape(l.owner)}</td><td><code>${escape(l.id)}</code></td></tr>`).join("")}</tbody></table>`;
}

async function listView(admin: boolean): Promise<void> {
  const shown = navigation;
  main.innerHTML = "<p>Loading…</p>";
  try {
    const list = await call<{ learnwares?: LearnwareInfo[]; total?: string }>("GET", "/v1/learnwares?page.pageSize=1000");
    if (shown !== navigation) return;
    if (!admin) {
      main.innerHTML = `<h2>My learnwares (${escape(list.total ?? "0")})</h2>${listHtml(list.learnwares ?? [])}`;
      return;
    }
    const market = await call<{ kind?: string; version?: string; learnwareCounts?: Record<string, string> }>("GET", "/v1/market");
    if (shown !== navigation) return;
    const counts = STATUSES.map((s) => statusName(s)).map((s) => `<dt>${s}</dt><dd>${escape(market.learnwareCounts?.[s] ?? "0")}</dd>`).join("");
    main.innerHTML = `<h2>Admin</h2><p>${escape(market.kind)} market, version ${escape(market.version)}</p><dl id="totals">${counts}</dl>
      <h3>All learnwares (${escape(list.total ?? "0")})</h3>${listHtml(list.learnwares ?? [])}`;
  } catch (error) {
    if (shown !== navigation) return;
    main.innerHTML = "";
    say(describe(error));
  }
}

// ---- routing ----

// Counts navigations: a view whose data arrives after the user went elsewhere writes nothing
// (it would replace the newer view, e.g. a slow search form over the upload form).
let navigation = 0;

async function route(): Promise<void> {
  navigation += 1;
  const hash = location.hash || "#/";
  const learnware = /^#\/learnware\/([^/]+)$/.exec(hash);
  if (learnware) await learnwareView(decodeURIComponent(learnware[1]));
  else if (hash === "#/upload") await uploadView();
  else if (hash === "#/mine") await listView(false);
  else if (hash === "#/admin") await listView(true);
  else await searchView();
  main.focus();
}

const tokenInput = document.getElementById("token") as HTMLInputElement;
tokenInput.value = token();
document.getElementById("token-form")?.addEventListener("submit", (event) => {
  event.preventDefault();
  saveToken(tokenInput.value.trim());
  say(tokenInput.value.trim() ? "Token saved." : "Token removed.", "info");
});
window.addEventListener("hashchange", () => {
  say(notice, "info");
  notice = "";
  void route();
});
window.addEventListener("unhandledrejection", (event) => say(describe(event.reason)));
void route();
