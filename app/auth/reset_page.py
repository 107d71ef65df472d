"""GET /reset-password?token=…: the small page a set-password link opens (SPEC §3).

One HTML document, no external assets: its style and script are inline and allowed by their
hashes in a strict Content-Security-Policy. The script takes the token from the address, removes
it from the address bar at once, and posts it with the new password to /api/resetPassword. The
page links nowhere, and `Referrer-Policy: no-referrer` keeps the token out of any Referer.
"""

from __future__ import annotations

import base64
import hashlib

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; padding: 0 1rem;
       color: #1a1a1a; }
label { display: block; margin-top: 1rem; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }
button { margin-top: 1.5rem; padding: .6rem 1.2rem; font-size: 1rem; }
#result { margin-top: 1.5rem; font-weight: 600; }
#result.ok { color: #0a6b2d; }
#result.failed { color: #a4161a; }
"""

SCRIPT = """
(function () {
  var token = new URLSearchParams(window.location.search).get("token");
  // The token leaves the address bar (and so any later Referer or history entry) at once.
  window.history.replaceState(null, "", window.location.pathname);
  var form = document.getElementById("form");
  var result = document.getElementById("result");
  var button = document.getElementById("submit");
  function say(text, ok) {
    result.textContent = text;
    result.className = ok ? "ok" : "failed";
  }
  var LINK_FAILED = "This link does not work (any more). Ask for a new one.";
  if (!token) {
    say(LINK_FAILED, false);
    button.disabled = true;
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var password = document.getElementById("password").value;
    if (password !== document.getElementById("repeat").value) {
      say("The two passwords differ.", false);
      return;
    }
    button.disabled = true;
    say("Setting your password\\u2026", true);
    fetch("/api/resetPassword", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token: token, password: password}),
      credentials: "omit",
      referrerPolicy: "no-referrer"
    }).then(function (response) {
      if (response.ok) {
        token = null;
        form.reset();
        say("Your password is set. You can now log in.", true);
        return;
      }
      button.disabled = false;
      if (response.status === 401) {
        say(LINK_FAILED, false);
        return;
      }
      return response.json().then(function (body) {
        var reasons = body && body.message && body.message.json;
        say(reasons ? Object.values(reasons).flat().join(" ") :
            "Your password could not be set; please try again.", false);
      });
    }).catch(function () {
      button.disabled = false;
      say("Your password could not be set; please try again.", false);
    });
  });
})();
"""


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Set your password</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>Set your password</h1>
<form id="form" novalidate>
  <label for="password">New password</label>
  <input id="password" name="password" type="password" autocomplete="new-password"
         minlength="8" maxlength="128" required aria-describedby="rules">
  <p id="rules">8 to 128 characters, not your email address.</p>
  <label for="repeat">New password, again</label>
  <input id="repeat" name="repeat" type="password" autocomplete="new-password"
         minlength="8" maxlength="128" required>
  <button id="submit" type="submit">Set password</button>
</form>
<p id="result" role="status" aria-live="polite"></p>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""

HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{_hash(SCRIPT)}'; style-src '{_hash(STYLE)}'; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@router.get("/reset-password", include_in_schema=False)
async def reset_password_page() -> HTMLResponse:
    """The page of a set-password link; its token stays in the browser until it is posted."""
    return HTMLResponse(PAGE, headers=HEADERS)
