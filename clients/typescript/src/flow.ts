// Runs every flow against BASE_URL and prints one JSON line: {"ok": true, "flows": {name: result}},
// or {"ok": false, "flow": name, "error": ...} and exit status 1 at the first mismatch.
// A new flow is an exported function in src/flows/<name>.ts, added to FLOWS.
import type { FlowOptions } from "./client.js";
import { accountsFlow } from "./flows/accounts.js";
import { inviteFlow, onboardFlow } from "./flows/users.js";

const FLOWS: Record<string, (options: FlowOptions) => Promise<object>> = {
  accounts: accountsFlow,
  invite: inviteFlow,
  onboard: onboardFlow,
};
// Without arguments, the flows that need nothing but the demo world; else the flows named.
const DEFAULT = ["accounts"];

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
  const names = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT;
  for (const name of names) {
    const flow = FLOWS[name];
    if (flow === undefined) {
      console.log(JSON.stringify({ ok: false, flow: name, error: "no such flow" }));
      return 1;
    }
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
