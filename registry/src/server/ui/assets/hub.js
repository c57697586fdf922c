// sealos hub: renders the repositories, a repository's tags and an image from the JSON API under /ui/api/.
// Plain DOM (no framework, no build step); text is always set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function status(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

function size(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let n = bytes, i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
}

function short(digest) {
  const [alg, hex] = String(digest).split(":");
  return hex ? alg + ":" + hex.slice(0, 12) : digest;
}

function when(created) {
  if (!created) return "";
  const d = new Date(created);
  return isNaN(d) ? created : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

const api = (path, params) => "/ui/api/" + path + "?" + new URLSearchParams(params).toString();

async function fetchJson(url) {
  const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (!resp.ok) {
    const msg = body && body.errors && body.errors[0] ? body.errors[0].message : resp.statusText;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function crumbs(items) {
  const ol = $("crumbs");
  ol.replaceChildren(...items.map(([text, href], i) =>
    el("li", {}, i === items.length - 1 ? el("span", { "aria-current": "page" }, text) : el("a", { href }, text))));
}

function title(text) {
  $("title").textContent = text;
  document.title = text + " · sealos hub";
}

function who(data) {
  const p = $("who");
  if (!data.auth) { p.replaceChildren(); return; }
  p.replaceChildren(data.user ? "Signed in as " + data.user : el("a", { href: "/ui/login" }, "Sign in"));
}

function signInHint(err) {
  status(err.message, true);
  if (err.status === 401) {
    $("content").replaceChildren(el("p", {}, el("a", { href: "/ui/login" }, "Sign in"), " to see more."));
    $("who").replaceChildren(el("a", { href: "/ui/login" }, "Sign in"));
  }
}

function table(caption, heads, rows, id) {
  return el("table", { id },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) =>
      c && c.num !== undefined ? el("td", { class: "num" }, c.num) : el("td", {}, c))))));
}

// --- the repository list, with search by name ---

let searchTimer = null;

async function showRepositories() {
  title("Repositories");
  crumbs([["Repositories", "/ui/"]]);
  const q = new URLSearchParams(location.search).get("q") || "";
  const input = el("input", { type: "search", id: "search", name: "q", value: q, autocomplete: "off",
    "aria-controls": "repositories" });
  const form = el("form", { role: "search", action: "/ui/", method: "get" },
    el("label", { for: "search" }, "Search repositories by name"), input);
  const list = el("ul", { id: "repositories", class: "repos" });
  $("content").replaceChildren(form, list);
  form.addEventListener("submit", (e) => { e.preventDefault(); loadRepositories(input.value, list); });
  input.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadRepositories(input.value, list), 150);
  });
  await loadRepositories(q, list);
}

async function loadRepositories(q, list) {
  const url = new URL(location.href);
  if (q) url.searchParams.set("q", q); else url.searchParams.delete("q");
  history.replaceState(null, "", url);
  status("Loading…");
  let data;
  try {
    data = await fetchJson(api("repositories", q ? { q } : {}));
  } catch (err) {
    list.replaceChildren();
    signInHint(err);
    return;
  }
  who(data);
  list.replaceChildren(...data.repositories.map((r) =>
    el("li", {}, el("a", { href: "/ui/repository?" + new URLSearchParams({ name: r.name }) }, r.name),
      el("span", { class: "count" }, r.tags === 1 ? "1 tag" : r.tags + " tags"))));
  const n = data.repositories.length;
  status(n === 0 ? (q ? "No repository matches “" + q + "”." : "No repositories yet.")
    : n + (n === 1 ? " repository" : " repositories") + (q ? " match “" + q + "”." : "."));
}

// --- one repository's tags ---

async function showRepository() {
  const name = new URLSearchParams(location.search).get("name") || "";
  title(name);
  crumbs([["Repositories", "/ui/"], [name, location.href]]);
  let data;
  try {
    data = await fetchJson(api("tags", { repository: name }));
  } catch (err) { signInHint(err); return; }
  const rows = data.tags.map((t) => [
    el("a", { href: "/ui/image?" + new URLSearchParams({ repository: name, reference: t.tag }) }, t.tag),
    el("code", { title: t.digest }, short(t.digest)),
    { num: size(t.size) },
    t.platforms.join(", "),
    when(t.created),
  ]);
  $("content").replaceChildren(
    table("Tags of " + name, ["Tag", "Digest", "Size", "Platforms", "Created"], rows, "tags"));
  status(rows.length === 1 ? "1 tag." : rows.length + " tags.");
}

// --- one image ---

function commandRow(id, label, text) {
  const input = el("input", { id, class: "command", readonly: "", value: text, "aria-label": label });
  const button = el("button", { type: "button", "aria-label": "Copy the " + label.toLowerCase() + " command" }, "Copy");
  button.addEventListener("click", async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(text);
      status("Copied: " + text);
    } catch (_) {
      status("Selected; press Ctrl+C to copy.");
    }
  });
  return [el("label", { for: id }, label), input, button];
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function argv(list) {
  return list && list.length ? el("code", {}, JSON.stringify(list)) : "none";
}

async function showImage() {
  const params = new URLSearchParams(location.search);
  const repository = params.get("repository") || "";
  const reference = params.get("reference") || "";
  const label = repository + (reference.includes(":") ? "@" + short(reference) : ":" + reference);
  title(label);
  crumbs([["Repositories", "/ui/"],
    [repository, "/ui/repository?" + new URLSearchParams({ name: repository })], [reference, location.href]]);
  let img;
  try {
    img = await fetchJson(api("image", { repository, reference }));
  } catch (err) { signInHint(err); return; }
  const parts = [];
  parts.push(el("h2", {}, "Use it"), el("div", { class: "commands" },
    commandRow("pull-command", "Pull", img.commands.pull), commandRow("run-command", "Run", img.commands.run)));
  if (img.cluster) {
    parts.push(el("h2", { id: "cluster-heading" }, "Cluster image"), facts([
      ["Type", el("span", { class: "badge", id: "cluster-type" }, img.cluster.type)],
      ["Version", img.cluster.version],
    ]));
    const rows = img.cluster.embedded.map((e) => [
      e.name, el("code", { title: e.digest }, short(e.digest)), e.platforms.join(", "), { num: size(e.size) }]);
    parts.push(rows.length
      ? table("Embedded images", ["Image", "Digest", "Platforms", "Layer size"], rows, "embedded")
      : el("p", { id: "embedded" }, "No embedded images."));
  }
  if (img.config) {
    const c = img.config;
    parts.push(el("h2", {}, "Runs" + (img.kind === "index" ? " (" + c.platform + ")" : "")), facts([
      ["ENTRYPOINT", argv(c.entrypoint)],
      ["CMD", argv(c.cmd)],
      ["WORKDIR", c.workingDir],
    ]));
    parts.push(c.env.length
      ? table("ENV", ["Variable", "Value"], c.env.map((kv) => {
        const i = kv.indexOf("=");
        return i < 0 ? [kv, ""] : [el("code", {}, kv.slice(0, i)), el("code", {}, kv.slice(i + 1))];
      }), "env")
      : el("p", {}, "No ENV."));
    const labels = Object.entries(c.labels);
    parts.push(labels.length
      ? table("Labels", ["Label", "Value"], labels.map(([k, v]) => [el("code", {}, k), v]), "labels")
      : el("p", {}, "No labels."));
  }
  parts.push(el("h2", {}, "Summary"), facts([
    ["Digest", el("code", {}, img.digest)],
    ["Kind", img.kind === "index" ? "index (several platforms)" : "image"],
    ["Media type", img.mediaType],
    ["Artifact type", img.artifactType],
    ["Size", size(img.size)],
    ["Platforms", img.platforms.join(", ")],
    ["Created", when(img.created)],
  ]));
  if (img.manifests.length) {
    parts.push(el("h2", {}, "Platforms"), table("Manifests of the index", ["Platform", "Digest", "Size"],
      img.manifests.map((m) => [m.platform || "", m.present
        ? el("a", { href: "/ui/image?" + new URLSearchParams({ repository, reference: m.digest }) },
          el("code", {}, short(m.digest)))
        : [el("code", {}, short(m.digest)), " (not stored here)"], { num: size(m.size) }]), "manifests"));
  }
  if (img.layers.length) {
    parts.push(el("h2", {}, "Layers"), table("Layers, base first", ["#", "Digest", "Size", "Made by"],
      img.layers.map((l, i) => [String(i + 1), el("code", { title: l.digest }, short(l.digest)), { num: size(l.size) },
        l.createdBy ? el("code", {}, l.createdBy) : ""]), "layers"));
  }
  parts.push(el("h2", {}, "Referrers"), img.referrers.length
    ? table("Signatures, SBOMs and attestations of this manifest", ["Artifact type", "Digest", "Size"],
      img.referrers.map((r) => [r.artifactType || r.mediaType, el("code", { title: r.digest }, short(r.digest)),
        { num: size(r.size) }]), "referrers")
    : el("p", { id: "referrers" }, "None."));
  $("content").replaceChildren(...parts);
  status("");
}

function route() {
  const path = location.pathname.replace(/\/+$/, "");
  if (path === "/ui/repository") return showRepository();
  if (path === "/ui/image") return showImage();
  return showRepositories();
}

document.addEventListener("DOMContentLoaded", () => {
  route().catch((err) => status(String(err), true));
});
