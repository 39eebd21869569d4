#!/bin/sh
# Builds the playground's and the docs viewer's files into ../dist from the
# npm packages pinned in package-lock.json. Run by `go generate
# ./internal/web`; the output is committed so that `go build` needs no npm.
set -eu
cd "$(dirname "$0")"
out=../dist
# No install scripts: esbuild finds its platform's binary package without
# its own, and swagger-ui-dist's dependency would only report the download.
npm ci --ignore-scripts --no-audit --no-fund
rm -rf "$out"
mkdir -p "$out"
esbuild=node_modules/.bin/esbuild
meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
"$esbuild" src/main.js --bundle --minify --format=iife --target=es2020 --metafile="$meta" --outfile="$out/playground.js"
# The licences of every package in the bundle (MIT ones ask for their
# notice to travel with the code).
node -e '
const fs = require("fs"), path = require("path");
const dirs = new Set(Object.keys(JSON.parse(fs.readFileSync(process.argv[1])).inputs)
	.map((f) => f.match(/^node_modules\/((?:@[^/]+\/)?[^/]+)\//)?.[1]).filter(Boolean));
for (const d of [...dirs].sort()) {
	const dir = path.join("node_modules", d);
	const lic = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
	const v = JSON.parse(fs.readFileSync(path.join(dir, "package.json"))).version;
	process.stdout.write(`${d} ${v}\n\n${lic ? fs.readFileSync(path.join(dir, lic), "utf8").trim() : "(no licence file)"}\n\n`);
}' "$meta" >"$out/playground.LICENSES.txt"
"$esbuild" src/docs.js --minify --target=es2020 --outfile="$out/docs.js"
"$esbuild" style.css --minify --outfile="$out/playground.css"
"$esbuild" docs.css --minify --outfile="$out/docs.css"
cp index.html docs.html "$out/"
# Swagger UI as published, without its source-map comments: the maps are
# not shipped, and a browser's developer tools would ask for them.
swagger=node_modules/swagger-ui-dist
sed '/^\/\/# sourceMappingURL=/d' "$swagger/swagger-ui-bundle.js" >"$out/swagger-ui-bundle.js"
sed 's|/\*# sourceMappingURL=[^*]*\*/||' "$swagger/swagger-ui.css" >"$out/swagger-ui.css"
cp "$swagger/LICENSE" "$out/swagger-ui.LICENSE"
