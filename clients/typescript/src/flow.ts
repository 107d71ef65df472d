// Runs every flow against BASE_URL and prints one JSON line: {"ok": true, "flows": {name: result}},
// or {"ok": false, "flow": name, "error": ...} and exit status 1 at the first mismatch.
// A new flow is an exported function in src/flows/<name>.ts, added to FLOWS.
import type { FlowOptions } from "./client.js";
import { accountsFlow } from "./flows/accounts.js";

const FLOWS: Record<string, (options: FlowOptions) => Promise<object>> = {
  accounts: accountsFlow,
};

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`set ${name}`);
  }
  return value;
}

// fetch's own failures ("fetch failed") keep what went wrong, e.g. ECONNREFUSED, in `cause`.
function describe(error: unknown): string {
  if (!(error instanceof Error)) {
    return String(error);
  }
  return error.cause === undefined ? error.message : `${error.message}: ${describe(error.cause)}`;
}

async function main(): Promise<number> {
  const options: FlowOptions = {
    baseUrl: required("BASE_URL"),
    password: required("DEMO_PASSWORD"),
  };
  const results: Record<string, object> = {};
  for (const [name, flow] of Object.entries(FLOWS)) {
    try {
      results[name] = await flow(options);
    } catch (error) {
      const message = describe(error);
      console.log(JSON.stringify({ ok: false, flow: name, error: message }));
      return 1;
    }
  }
  console.log(JSON.stringify({ ok: true, flows: results }));
  return 0;
}

process.exitCode = await main();
