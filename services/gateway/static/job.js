// The mail data pages' script (no inline script: the CSP allows only this site's files).
// 1. The copy form's confirmation in place: 確認する shows the entries (passwords as "entered")
//    above 実行する and 戻る, without sending anything; without this script the server's
//    confirmation page asks for the passwords again.
// 2. The job page: while the job runs, its state part is asked for again every few seconds and
//    replaced; the asking stops when the job has ended and its notification mail is sent (or after
//    a few more asks: a mail may be retried for hours). A 429 only delays the next ask.
"use strict";

(function confirmInPlace() {
  const form = document.getElementById("copy-form");
  const fields = document.getElementById("copy-fields");
  const confirmation = document.getElementById("copy-confirm");
  if (!form || !fields || !confirmation) return;
  const show = (confirming) => {
    fields.hidden = confirming;
    confirmation.hidden = !confirming;
    (confirming ? confirmation : form.querySelector("input:not([type=hidden]):not([hidden])")).focus();
  };
  form.querySelector("[data-confirm]").addEventListener("click", (event) => {
    event.preventDefault();
    for (const echo of confirmation.querySelectorAll("[data-echo]")) {
      const input = form.elements.namedItem(echo.dataset.echo);
      echo.textContent = input ? input.value.trim() : "";
    }
    show(true);
  });
  confirmation.querySelector("[data-back]").addEventListener("click", () => show(false));
})();

(function followJob() {
  const current = () => document.getElementById("job-status");
  const start = current();
  const changing = (part) => part.hasAttribute("data-running") || part.hasAttribute("data-waiting-mail");
  if (!start || !changing(start)) return;
  let afterEnd = 10;
  const url = start.dataset.statusUrl;
  const every = Math.max(2, Number(start.dataset.pollEvery) || 3) * 1000;
  const ask = async () => {
    let wait = every;
    try {
      const reply = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (reply.ok) {
        const page = new DOMParser().parseFromString(await reply.text(), "text/html");
        const fresh = page.getElementById("job-status");
        if (fresh) {
          current().replaceWith(document.adoptNode(fresh));
          if (!changing(fresh) || (!fresh.hasAttribute("data-running") && afterEnd-- <= 0)) return;
        }
      } else if (reply.status === 429) {
        wait = Math.max(every, (Number(reply.headers.get("Retry-After")) || 3) * 1000);
      } else {
        return; // the session ended or the job is not to be seen: the refresh link says why
      }
    } catch (error) {
      wait = every * 2;
    }
    window.setTimeout(ask, wait);
  };
  window.setTimeout(ask, every);
})();
