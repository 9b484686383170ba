// Validate glTF/GLB files with the Khronos glTF validator (npm "gltf-validator", pinned in package.json).
// Usage: node tests/gltf_validate.js FILE...  Prints one JSON object: {file: {numErrors, numWarnings, messages}}.
"use strict";
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

async function main(files) {
  const out = {};
  for (const file of files) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
      uri: path.basename(file),
      maxIssues: 50,
    });
    out[file] = {
      numErrors: report.issues.numErrors,
      numWarnings: report.issues.numWarnings,
      messages: report.issues.messages.map((m) => `${m.severity} ${m.code} ${m.pointer || ""}: ${m.message}`),
    };
  }
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(2);
});
