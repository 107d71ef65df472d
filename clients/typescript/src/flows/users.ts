// Users, in two steps around the mail the test's SMTP server receives:
// `invite` (as the admin: POST /users) and then, with the token from the mailed link,
// `onboard`: set the password, log in with it, update (If-Match), deactivate, log-in refused.
import { check, connect, logIn, Mismatch, type FlowOptions, type Schemas } from "../client.js";

const ADMIN = "test_admin_user@seita.nl";

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`set ${name}`);
  }
  return value;
}

export async function inviteFlow({ baseUrl, password }: FlowOptions): Promise<{ user_id: number }> {
  const { api } = await logIn(baseUrl, ADMIN, password);
  const invited = await api.POST("/api/v3_0/users", {
    body: {
      email: env("USER_EMAIL"),
      username: "TypeScript User",
      account_id: 1,
      timezone: "Europe/Lisbon",
    } satisfies Schemas["UserCreate"],
  });
  if (invited.data === undefined) {
    throw new Mismatch("invite", 201, { status: invited.response.status, error: invited.error });
  }
  check("invite: status", invited.response.status, 201);
  check("invite: timezone", invited.data.timezone, "Europe/Lisbon");
  return { user_id: invited.data.id };
}

export interface OnboardResult {
  user_id: number;
  username: string;
  active: boolean;
  refused: number;
}

export async function onboardFlow({ baseUrl, password }: FlowOptions): Promise<OnboardResult> {
  const email = env("USER_EMAIL");
  const newPassword = "typescript password";
  const reset = await connect(baseUrl).POST("/api/resetPassword", {
    body: { token: env("RESET_TOKEN"), password: newPassword } satisfies Schemas["PasswordReset"],
  });
  if (reset.data === undefined) {
    throw new Mismatch("set the password", 200, { status: reset.response.status, error: reset.error });
  }
  const userId = reset.data.user_id;
  const own = await logIn(baseUrl, email, newPassword);
  check("log in with the new password", own.userId, userId);

  const { api: admin } = await logIn(baseUrl, ADMIN, password);
  const read = await admin.GET("/api/v3_0/users/{id}", { params: { path: { id: userId } } });
  const etag = read.response.headers.get("ETag");
  if (read.data === undefined || etag === null) {
    throw new Mismatch("read the user", "200 with an ETag", read.response.status);
  }
  const updated = await admin.PATCH("/api/v3_0/users/{id}", {
    params: { path: { id: userId }, header: { "if-match": etag } },
    body: { username: "TypeScript User Renamed" } satisfies Schemas["UserPatch"],
  });
  if (updated.data === undefined) {
    throw new Mismatch("update", 200, { status: updated.response.status, error: updated.error });
  }
  const deactivated = await admin.PATCH("/api/v3_0/users/{id}", {
    params: { path: { id: userId } },
    body: { active: false } satisfies Schemas["UserPatch"],
  });
  if (deactivated.data === undefined) {
    throw new Mismatch("deactivate", 200, deactivated.response.status);
  }
  const refused = await connect(baseUrl).POST("/api/requestAuthToken", {
    body: { email, password: newPassword } satisfies Schemas["TokenRequest"],
  });
  check("log-in refused", refused.response.status, 401);
  check("log-in refused: envelope", refused.error?.status, "UNAUTHORIZED");
  return {
    user_id: userId,
    username: updated.data.username,
    active: deactivated.data.active,
    refused: refused.response.status,
  };
}
