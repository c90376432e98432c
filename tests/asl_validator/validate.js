// Validate ASL definitions with amazon-states-language-service (the AWS Toolkit's validator).
// stdin: JSON array of {"name": ..., "definition": "<ASL JSON text>"}; stdout: JSON array of
// {"name": ..., "problems": [{"severity": 1|2|3|4, "message": ..., "line": n}]} (1 = error, 2 = warning).
"use strict";
const { getLanguageService } = require("amazon-states-language-service");
const { TextDocument } = require("vscode-languageserver-textdocument");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const inputs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const ls = getLanguageService({});
  const out = [];
  for (const { name, definition } of inputs) {
    const doc = TextDocument.create(`file:///${name}.asl.json`, "json", 0, definition);
    const diagnostics = await ls.doValidation(doc, ls.parseJSONDocument(doc));
    out.push({
      name,
      problems: diagnostics.map((d) => ({ severity: d.severity, message: d.message, line: d.range.start.line + 1 })),
    });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(2);
});
