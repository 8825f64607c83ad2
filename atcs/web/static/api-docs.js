// The API documentation page: reads ../openapi.json and lists every operation, its
// parameters, request body and answers, then every schema. Self-hosted (no CDN), no
// inline script or style, text only through textContent (the schema is data, not markup).

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

function typeOf(schema) {
  if (!schema) return "";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  if (schema.oneOf) return schema.oneOf.map(typeOf).join(" | ");
  if (schema.allOf) return schema.allOf.map(typeOf).join(" & ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  if (schema.type === "object" && schema.additionalProperties) {
    return `{string: ${typeOf(schema.additionalProperties)}}`;
  }
  return schema.format ? `${schema.type} (${schema.format})` : schema.type || "any";
}

function schemaLink(schema) {
  const name = typeOf(schema);
  if (schema && schema.$ref) return el("a", { href: `#schema-${name}`, class: "type" }, name);
  return el("span", { class: "type" }, name);
}

function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c))))),
  );
}

function operation(path, method, op) {
  const id = `op-${method}-${path}`.replace(/[^A-Za-z0-9-]/g, "-");
  const body = el("div");
  if (op.description) body.append(el("p", {}, op.description));
  const params = op.parameters || [];
  if (params.length) {
    body.append(el("h4", {}, "Parameters"));
    body.append(
      table(
        ["name", "in", "type", "required"],
        params.map((p) => [el("code", {}, p.name), p.in, schemaLink(p.schema), p.required ? "yes" : "no"]),
      ),
    );
  }
  const content = op.requestBody && op.requestBody.content;
  if (content) {
    body.append(el("h4", {}, "Request body"));
    for (const [type, media] of Object.entries(content)) {
      body.append(el("p", {}, el("code", {}, type), " ", schemaLink(media.schema)));
    }
  }
  const answers = Object.entries(op.responses || {}).map(([status, answer]) => {
    const media = answer.content ? Object.entries(answer.content) : [];
    const what = media.length
      ? el("span", {}, ...media.map(([type, m]) => el("span", {}, el("code", {}, type), " ", schemaLink(m.schema), " ")))
      : "";
    return [el("code", {}, status), answer.description || "", what];
  });
  body.append(el("h4", {}, "Answers"), table(["status", "meaning", "body"], answers));
  return el(
    "details",
    { class: "op", id },
    el(
      "summary",
      {},
      el("span", { class: `method method-${method}` }, method),
      el("span", { class: "path" }, path),
      el("span", { class: "muted" }, op.summary || ""),
    ),
    body,
  );
}

function schemaBlock(name, schema) {
  const required = new Set(schema.required || []);
  const rows = Object.entries(schema.properties || {}).map(([prop, s]) => [
    el("code", {}, prop, required.has(prop) ? el("span", { class: "required", title: "required" }, " *") : null),
    schemaLink(s),
    s.description || s.title || "",
  ]);
  return el(
    "section",
    { class: "schema-block", id: `schema-${name}` },
    el("h3", {}, name),
    schema.description ? el("p", {}, schema.description) : null,
    rows.length ? table(["field", "type", "meaning"], rows) : el("p", { class: "type" }, typeOf(schema)),
  );
}

function render(doc) {
  $("#api-title").textContent = doc.info.title;
  $("#api-version").textContent = `version ${doc.info.version} · OpenAPI ${doc.openapi}`;
  $("#api-description").textContent = doc.info.description || "";
  const byTag = new Map();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op));
    }
  }
  const toc = el("ul");
  for (const [tag, ops] of byTag) {
    $("#api-operations").append(el("h2", {}, tag), ...ops);
    for (const op of ops) {
      const label = op.querySelector("summary").textContent.replace(/\s+/g, " ");
      toc.append(el("li", {}, el("a", { href: `#${op.id}` }, label)));
    }
  }
  $("#api-toc").append(toc);
  const schemas = (doc.components && doc.components.schemas) || {};
  $("#schemas-heading").hidden = Object.keys(schemas).length === 0;
  for (const [name, schema] of Object.entries(schemas)) $("#api-schemas").append(schemaBlock(name, schema));
  $("#api-status").textContent = `${Object.keys(doc.paths).length} paths, ${Object.keys(schemas).length} schemas.`;
}

async function main() {
  const status = $("#api-status");
  try {
    const r = await fetch("../openapi.json", { credentials: "same-origin" });
    if (r.status === 401) {
      status.textContent = "Log in on the dashboard first: reading the API needs a login here.";
      return;
    }
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json());
  } catch (err) {
    status.textContent = `The OpenAPI document cannot be read: ${err.message}`;
  }
}

main();
