// Validate AsyncAPI documents with the official parser: `node validate.mjs FILE...`.
// Prints one JSON line per file ({file, valid, version, errors, warnings}); exits 1 if any is invalid.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"));
  // severity 0 = error, 1 = warning (Spectral's scale)
  const errors = diagnostics.filter((d) => d.severity === 0);
  const warnings = diagnostics.filter((d) => d.severity === 1);
  const show = (d) => `${d.code}: ${d.message} at ${JSON.stringify(d.path)}`;
  const valid = document !== undefined && errors.length === 0;
  failed ||= !valid;
  console.log(JSON.stringify({
    file,
    valid,
    version: document?.version() ?? null,
    channels: document ? document.channels().all().map((c) => c.address()) : [],
    operations: document ? document.operations().all().map((o) => o.id()) : [],
    errors: errors.map(show),
    warnings: warnings.map(show),
  }));
}
process.exit(failed ? 1 : 0);
