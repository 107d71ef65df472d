// The typed client every flow uses: openapi-fetch over the paths that `npm run generate` writes
// into schema.d.ts from the committed app/openapi.json, so a drifted document fails `tsc`.
import { isDeepStrictEqual } from "node:util";
import createClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type Api = Client<paths>;
export type Schemas = components["schemas"];
export type ErrorEnvelope = Schemas["ErrorEnvelope"];
/** The query parameters of an operation, by its operationId. */
export type Query<Id extends keyof operations> = operations[Id]["parameters"]["query"];

// openapi-fetch checks the types of what a call sends but lets unknown keys of a body or query
// object through (openapi-ts/openapi-typescript#1769, #2329): `{ primary_colour: "#fff" }` would
// compile and earn a 422 at run time. Every body and query literal therefore says what it must be
// with `satisfies`, which does reject unknown keys.

/** What every flow gets from flow.ts. */
export interface FlowOptions {
  baseUrl: string;
  /** The demo world's password (app/demo.py's DEMO_PASSWORD). */
  password: string;
}

// Node's fetch has no overall time limit of its own; a hung server must fail the run, not stall it.
const REQUEST_TIMEOUT_MS = 10_000;

export function connect(baseUrl: string, token?: string): Api {
  return createClient<paths>({
    baseUrl,
    // The security scheme is the raw Authorization header: no "Bearer" prefix needed.
    headers: token === undefined ? {} : { Authorization: token },
    fetch: (request) => fetch(request, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }),
  });
}

/** Log in through POST /api/requestAuthToken; a client that sends the token, and who it is for. */
export async function logIn(
  baseUrl: string,
  email: string,
  password: string,
): Promise<{ api: Api; userId: number }> {
  const { data, error, response } = await connect(baseUrl).POST("/api/requestAuthToken", {
    body: { email, password } satisfies Schemas["TokenRequest"],
  });
  if (data === undefined) {
    throw new Mismatch(`log-in as ${email}`, 200, { status: response.status, error });
  }
  return { api: connect(baseUrl, data.auth_token), userId: data.user_id };
}

/** What a flow throws when the service answers something other than what it expected. */
export class Mismatch extends Error {
  constructor(
    readonly step: string,
    readonly expected: unknown,
    readonly actual: unknown,
  ) {
    super(`${step}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    this.name = "Mismatch";
  }
}

export function check<T>(step: string, actual: T, expected: T): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Mismatch(step, expected, actual);
  }
}
