// Accounts, as an admin: log in, one sorted page, one account, a PATCH with If-Match, the
// read-back, and two typed error answers (an unknown id, a stale ETag).
import {
  check,
  logIn,
  Mismatch,
  type ErrorEnvelope,
  type FlowOptions,
  type Query,
  type Schemas,
} from "../client.js";

export interface AccountsResult {
  user_id: number;
  page: { names: string[]; num_records: number; filtered_records: number };
  account: { id: number; name: string };
  primary_color: { before: string | null; after: string | null };
  etag_changed: boolean;
  unknown_account: { status: number; body: ErrorEnvelope };
  stale_etag: { status: number; body: ErrorEnvelope };
}

const ADMIN = "test_admin_user@seita.nl";
const UNKNOWN_ACCOUNT_ID = 987_654;
const NEW_COLOR = "#0a7e3b";

export async function accountsFlow({ baseUrl, password }: FlowOptions): Promise<AccountsResult> {
  const { api, userId } = await logIn(baseUrl, ADMIN, password);

  const listed = await api.GET("/api/v3_0/accounts", {
    params: { query: { page: 1, per_page: 5, sort_by: "name" } satisfies Query<"list_accounts"> },
  });
  // With `page` the answer is the envelope; without it a bare list: the type is the union of both.
  if (listed.data === undefined || Array.isArray(listed.data)) {
    throw new Mismatch("list a page of accounts", "the page envelope", listed.data ?? listed.error);
  }
  const page = listed.data;
  const first = page.data[0];
  if (first === undefined) {
    throw new Mismatch("list a page of accounts", "at least one row", page);
  }

  const read = await api.GET("/api/v3_0/accounts/{id}", { params: { path: { id: first.id } } });
  if (read.data === undefined) {
    throw new Mismatch(`read account ${first.id}`, 200, read.error);
  }
  const etag = read.response.headers.get("ETag");
  if (etag === null) {
    throw new Mismatch(`read account ${first.id}`, "an ETag header", null);
  }
  check(`read account ${first.id}: its name`, read.data.name, first.name);
  if (read.data.primary_color === NEW_COLOR) {
    throw new Mismatch("the seeded primary_color", `anything but ${NEW_COLOR}`, NEW_COLOR);
  }

  const patched = await api.PATCH("/api/v3_0/accounts/{id}", {
    params: { path: { id: first.id }, header: { "if-match": etag } },
    body: { primary_color: NEW_COLOR } satisfies Schemas["AccountPatch"],
  });
  if (patched.data === undefined) {
    throw new Mismatch(`patch account ${first.id}`, 200, patched.error);
  }
  check("the PATCH answer's primary_color", patched.data.primary_color, NEW_COLOR);

  const again = await api.GET("/api/v3_0/accounts/{id}", { params: { path: { id: first.id } } });
  if (again.data === undefined) {
    throw new Mismatch(`read account ${first.id} back`, 200, again.error);
  }
  check("the read-back primary_color", again.data.primary_color, NEW_COLOR);
  check("the read-back name", again.data.name, first.name);

  const unknown = await api.GET("/api/v3_0/accounts/{id}", {
    params: { path: { id: UNKNOWN_ACCOUNT_ID } },
  });
  const notFound = expectError("read an unknown account", unknown.response, unknown.error, 404);
  check("the 404's status", notFound.status, "NOT_FOUND");
  check("the 404's message", notFound.message, `Account ${UNKNOWN_ACCOUNT_ID} not found`);

  // The ETag of the first read no longer matches: the service refuses and changes nothing.
  const stale = await api.PATCH("/api/v3_0/accounts/{id}", {
    params: { path: { id: first.id }, header: { "if-match": etag } },
    body: { primary_color: "#000" } satisfies Schemas["AccountPatch"],
  });
  const refused = expectError("patch with a stale ETag", stale.response, stale.error, 412);
  check("the 412's status", refused.status, "PRECONDITION_FAILED");

  return {
    user_id: userId,
    page: {
      names: page.data.map((account) => account.name),
      num_records: page["num-records"],
      filtered_records: page["filtered-records"],
    },
    account: { id: first.id, name: first.name },
    primary_color: { before: read.data.primary_color, after: again.data.primary_color },
    etag_changed: again.response.headers.get("ETag") !== etag,
    unknown_account: { status: unknown.response.status, body: notFound },
    stale_etag: { status: stale.response.status, body: refused },
  };
}

function expectError(
  step: string,
  response: Response,
  error: ErrorEnvelope | undefined,
  status: number,
): ErrorEnvelope {
  check(`${step}: the HTTP status`, response.status, status);
  if (error === undefined) {
    throw new Mismatch(step, "an error envelope", undefined);
  }
  return error;
}
