// What analytics.d.ts declares beside what the module and its classic build export, as JSON for
// tests/browser/test_client.py to compare. The module is imported by the package's name, through
// package.json's `exports`, as an application imports it; the classic build runs in a bare context.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import ts from "typescript";

const root = fileURLToPath(new URL("..", import.meta.url));
const kind = (value) => (typeof value === "function" ? "function" : typeof value);

/** "function", or the declared type of a constant or property ("string", "number"), as typeof says. */
function declaredKind(checker, symbol, functionFlag) {
  return symbol.flags & functionFlag ? "function" : checker.typeToString(checker.getTypeOfSymbol(symbol));
}

function declared() {
  const file = `${root}analytics.d.ts`;
  const options = { strict: true, noEmit: true, types: [], lib: ["lib.es2020.d.ts", "lib.dom.d.ts"] };
  const program = ts.createProgram([file], options);
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(file));
  const exports = {};
  for (const symbol of checker.getExportsOfModule(module)) {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    if (!(target.flags & ts.SymbolFlags.Value)) continue; // types only
    exports[symbol.name] = declaredKind(checker, target, ts.SymbolFlags.Function);
  }
  const client = {};
  const analytics = checker.getExportsOfModule(module).find((s) => s.name === "Analytics");
  for (const property of checker.getDeclaredTypeOfSymbol(analytics).getProperties()) {
    client[property.name] = declaredKind(checker, property, ts.SymbolFlags.Method);
  }
  return { exports, client };
}

const module = await import("analytics-pipeline-client");
const client = module.createAnalytics({ storage: null });
const context = vm.createContext({});
vm.runInContext(readFileSync(`${root}dist/analytics.min.js`, "utf8"), context);

console.log(
  JSON.stringify({
    declared: declared(),
    module: {
      exports: Object.fromEntries(Object.entries(module).map(([name, value]) => [name, kind(value)])),
      client: Object.fromEntries(Object.keys(client).map((name) => [name, kind(client[name])])),
      defaultIsCreateAnalytics: module.default === module.createAnalytics,
      version: module.VERSION,
    },
    classic: {
      globals: Object.keys(context),
      exports: Object.keys(context.AnalyticsClient || {}).sort(),
      version: context.AnalyticsClient ? context.AnalyticsClient.VERSION : null,
    },
    packageVersion: JSON.parse(readFileSync(`${root}package.json`, "utf8")).version,
  }),
);
